// Reading an existing slinked file: its trailer, manifest and embedded objects, and replacing its
// manifest (the digest command). The writer is slink.ts; the format is in manifest.ts.
import fs from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { DEFAULT_ALGORITHM, digestOf, verifyDigest, type HashAlgorithm } from '../chunking/digest';
import { parseElf } from './elfFile';
import { SlinkOutputError } from './errors';
import { pageDigest, pageDigestRuns } from './pageDigests';
import {
  PAGE_SIZE,
  TRAILER_SIZE,
  decodeManifest,
  decodeTrailer,
  encodeManifest,
  encodeTrailer,
  type Manifest,
  type ManifestObject,
  type Trailer,
} from './manifest';

export interface SlinkedFile {
  readonly path: string;
  readonly size: number;
  readonly trailer: Trailer;
  readonly manifest: Manifest;
}

/** The file is not a slinked file at all (as opposed to a corrupt one: SlinkedFormatError). */
export class NotSlinkedError extends Error {
  override name = 'NotSlinkedError';
}

async function readAt(fh: fs.FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) throw new NotSlinkedError(`unexpected end of file at offset ${offset + done}`);
    done += bytesRead;
  }
  return buf;
}

/** The trailer if the open file ends with one; null when it does not look slinked at all. */
export async function readTrailer(fh: fs.FileHandle, size: number): Promise<Trailer | null> {
  if (size < TRAILER_SIZE) return null;
  return decodeTrailer(await readAt(fh, size - TRAILER_SIZE, TRAILER_SIZE), size);
}

export async function isSlinked(file: string): Promise<boolean> {
  const fh = await fs.open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size < TRAILER_SIZE) return false;
    const tail = await readAt(fh, size - TRAILER_SIZE, TRAILER_SIZE);
    return tail.subarray(0, 8).toString('latin1') === 'SLINKYTR';
  } finally {
    await fh.close();
  }
}

export async function openSlinked(file: string): Promise<SlinkedFile> {
  const fh = await fs.open(file, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new NotSlinkedError(`${file} is not a regular file`);
    const trailer = await readTrailer(fh, st.size);
    if (!trailer) throw new NotSlinkedError(`${file} is not a slinked file (no slinky trailer)`);
    const manifest = decodeManifest(await readAt(fh, trailer.manifestOffset, trailer.manifestLength), trailer.manifestOffset);
    return { path: file, size: st.size, trailer, manifest };
  } finally {
    await fh.close();
  }
}

/** The bytes of one embedded object. */
export async function readObject(file: SlinkedFile, object: ManifestObject): Promise<Buffer> {
  const fh = await fs.open(file.path, 'r');
  try {
    return await readAt(fh, object.offset, object.size);
  } finally {
    await fh.close();
  }
}

/**
 * Replaces the manifest (objects unchanged) without ever leaving a half-written file behind:
 * the new file is a copy (reflinked where the filesystem can) renamed over the old one, with the
 * old one's owner and mode. A file with several hard links is refused rather than split (the
 * rename would give one name the new file and leave the others the old): the trailer must end
 * the file and the manifest come right before it, so the new table cannot be written into the
 * same inode without a moment, a crash away, when the file ends in neither the old trailer nor
 * the new one. The same holds for the owner: a copy that cannot keep it is not renamed over.
 */
export async function replaceManifest(file: SlinkedFile, manifest: Manifest): Promise<void> {
  const bytes = encodeManifest(manifest);
  // A symbolic link keeps pointing at the file, which is what changes.
  const target = await fs.realpath(file.path);
  const st = await fs.stat(target);
  if (st.nlink > 1) {
    throw new SlinkOutputError(
      `${file.path} has ${st.nlink} hard links: digest writes a new file in its place, which the other names would not see (digest a copy, then link every name to it)`,
    );
  }
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.slinky-${process.pid}.tmp`);
  await fs.copyFile(target, tmp);
  try {
    // The copy has the file's mode: a read-only one could not be opened for writing by its owner.
    await fs.chmod(tmp, 0o600);
    const fh = await fs.open(tmp, 'r+');
    try {
      const trailer = encodeTrailer({ manifestOffset: file.trailer.manifestOffset, manifestLength: bytes.length });
      await fh.truncate(file.trailer.manifestOffset);
      await fh.write(Buffer.concat([bytes, trailer]), 0, bytes.length + trailer.length, file.trailer.manifestOffset);
      await keepOwner(fh, file.path, st);
      // After chown, which clears set-id bits.
      await fh.chmod(st.mode & 0o7777);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

async function keepOwner(fh: fs.FileHandle, name: string, st: Stats): Promise<void> {
  try {
    await fh.chown(st.uid, st.gid);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    throw new SlinkOutputError(`${name} belongs to uid ${st.uid} gid ${st.gid}, which a rewritten copy made by this user cannot keep (digest it as its owner or as root)`);
  }
}

/** The manifest with fresh object and page digests, computed from the embedded objects' bytes. */
export async function recomputeDigests(file: SlinkedFile, algorithm: HashAlgorithm = DEFAULT_ALGORITHM): Promise<Manifest> {
  const objects: ManifestObject[] = [];
  for (const o of file.manifest.objects) {
    const bytes = await readObject(file, o);
    const elf = parseElf(bytes, `${file.path}: embedded ${o.name}`);
    objects.push({ ...o, digest: digestOf(bytes), runs: pageDigestRuns(bytes, elf.programHeaders, algorithm) });
  }
  return { objects, pageDigestAlgorithm: algorithm };
}

export interface Mismatch {
  readonly object: string;
  /** Page number within the object, or null for the whole-object digest. */
  readonly page: number | null;
  /** Offset in the slinked file. */
  readonly offset: number;
}

/**
 * Recomputes every stored digest from the bytes now in the file: each page of the digest table
 * and each whole-object digest (which also covers bytes outside code pages).
 */
export async function verifyDigests(file: SlinkedFile): Promise<Mismatch[]> {
  const algorithm = file.manifest.pageDigestAlgorithm;
  if (!algorithm) throw new NotSlinkedError(`${file.path} has no digest table (add one with \`slinkyfs digest\`)`);
  const out: Mismatch[] = [];
  for (const o of file.manifest.objects) {
    const bytes = await readObject(file, o);
    for (const run of o.runs) {
      run.digests.forEach((d, i) => {
        const page = run.firstPage + i;
        if (!pageDigest(bytes, page, algorithm).equals(d)) out.push({ object: o.name, page, offset: o.offset + page * PAGE_SIZE });
      });
    }
    if (!verifyDigest(o.digest, bytes)) out.push({ object: o.name, page: null, offset: o.offset });
  }
  return out;
}
