// Reading an existing slinked file: its trailer, manifest and embedded objects, and replacing its
// manifest (the digest command). The writer is slink.ts; the format is in manifest.ts.
import fs from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { DEFAULT_ALGORITHM, digestOf, verifyDigest, type HashAlgorithm } from '../chunking/digest';
import { requireNative } from '../chunking/native';
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
 * the new one. The same holds for the owner and the extended attributes (ACLs, file
 * capabilities, user.* and trusted.* ones): a copy that cannot keep them is not renamed over.
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
  const attrs = await readXattrs(target);
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
      // The attributes after the writes and chown, each of which removes security.capability,
      // and while the owner may write the file (user.* attributes need that); the ACL they may
      // carry sets the mode's group bits from its mask, which are the old file's anyway.
      keepXattrs(fh.fd, attrs, file.path);
      // After chown, which clears set-id bits. A chmod rewrites an ACL's owner, mask and other
      // entries from the mode, which the old file's ACL and mode agreed on, and keeps capabilities.
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

interface Xattr {
  /** Bytes, as the kernel has it: a name need not be UTF-8. */
  readonly name: Buffer;
  readonly value: Buffer;
}

const errnoCode = (err: unknown) => (err as NodeJS.ErrnoException).code;
/** The addon's "fsetxattr: Operation not permitted" without the call's name. */
const reason = (err: unknown) => (err as Error).message.replace(/^[a-z]+: /, '');

function xattrNames(fd: number): Buffer[] {
  let list: Buffer;
  try {
    list = requireNative('keeping extended attributes').xattrList(fd);
  } catch (err) {
    if (errnoCode(err) === 'EOPNOTSUPP') return []; // a filesystem without attributes
    throw err;
  }
  const names: Buffer[] = [];
  for (let at = 0; at < list.length; ) {
    const end = list.indexOf(0, at);
    names.push(list.subarray(at, end));
    at = end + 1;
  }
  return names;
}

/**
 * Every extended attribute of the file that this user can see: all of them for root; others are
 * not shown trusted.* ones, which a rewrite by them therefore cannot keep.
 */
async function readXattrs(file: string): Promise<Xattr[]> {
  const fh = await fs.open(file, 'r');
  try {
    const out: Xattr[] = [];
    for (const name of xattrNames(fh.fd)) {
      try {
        out.push({ name, value: requireNative('keeping extended attributes').xattrGet(fh.fd, name) });
      } catch (err) {
        if (errnoCode(err) !== 'ENODATA') throw err; // else removed since the list was read
      }
    }
    return out;
  } catch (err) {
    if (errnoCode(err)) (err as Error).message = `cannot read the extended attributes of ${file}: ${reason(err)}`;
    throw err;
  } finally {
    await fh.close();
  }
}

/**
 * Gives the open new file exactly the attributes `attrs` of the file it replaces: each of them,
 * and none it got on its own (an access ACL from its directory's default ACL, say).
 */
function keepXattrs(fd: number, attrs: readonly Xattr[], file: string): void {
  const addon = requireNative('keeping extended attributes');
  const wanted = new Set(attrs.map((a) => a.name.toString('latin1')));
  for (const name of xattrNames(fd)) {
    if (wanted.has(name.toString('latin1'))) continue;
    try {
      addon.xattrRemove(fd, name);
    } catch (err) {
      if (errnoCode(err) === 'ENODATA') continue;
      throw new SlinkOutputError(
        `the new file that replaces ${file} gets the extended attribute ${name}, which the file does not have, and it cannot be removed: ${reason(err)}`,
      );
    }
  }
  for (const { name, value } of attrs) {
    try {
      addon.xattrSet(fd, name, value, 0);
    } catch (err) {
      const code = errnoCode(err);
      if ((code === 'EPERM' || code === 'EACCES') && process.getuid?.() !== 0) {
        throw new SlinkOutputError(`${file} has the extended attribute ${name}, which this user may not set on the new file that replaces it (digest it as root)`);
      }
      throw new SlinkOutputError(
        `${file} has the extended attribute ${name}, which the new file that replaces it cannot keep: ${reason(err)} (remove it with setfattr -x, digest, then set it again)`,
      );
    }
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
