// The server's side of layouts: where the objects and page digest runs of a slinked file in the
// store sit (see FileLayout in protocol.ts). Read from the file's own trailer and manifest
// (docs/FORMAT.md, "Slinked file"), through the store's verified chunks.
import { digestToString } from '../chunking/digest';
import { decodeManifest, decodeTrailer, SlinkedFormatError, TRAILER_SIZE } from '../elf/manifest';
import type { ChunkSource } from '../store/chunkSource';
import { readCommitted } from '../store/fileContent';
import type { InodeRecord } from '../store/records';
import type { Store } from '../store/store';
import { type FileLayout, PAGE_HASH_BYTES } from './protocol';

/** A manifest larger than this is not read (1024 objects with all their page digests fit easily). */
const MAX_MANIFEST = 16 << 20;
const SHA256_ID = 1;

async function readRange(store: Store, source: ChunkSource, rec: InodeRecord, offset: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  await readCommitted(store, source, rec.ino, offset, b);
  return b;
}

/** The layout of a slinked file, or undefined for any other file (or one whose chunks are not here). */
export async function slinkedLayout(store: Store, source: ChunkSource, rec: InodeRecord): Promise<FileLayout | undefined> {
  if (rec.size < TRAILER_SIZE + 64) return undefined;
  try {
    const trailer = decodeTrailer(await readRange(store, source, rec, rec.size - TRAILER_SIZE, TRAILER_SIZE), rec.size);
    if (!trailer || trailer.manifestLength > MAX_MANIFEST) return undefined;
    const m = await readRange(store, source, rec, trailer.manifestOffset, trailer.manifestLength);
    const manifest = decodeManifest(m, trailer.manifestOffset);
    const runsOffset = m.readUInt32LE(36);
    const digestsOffset = m.readUInt32LE(48);
    const objectsOffset = m.readUInt32LE(24);
    // Digest runs are given only for sha256 tables: those a receiver can recompute.
    const sha256 = m.readUInt8(56) === SHA256_ID && m.readUInt8(57) === PAGE_HASH_BYTES;
    return {
      objects: manifest.objects.map((o, i) => {
        const rec128 = objectsOffset + i * 128;
        const firstRun = m.readUInt32LE(rec128 + 32);
        const runs = sha256
          ? o.runs.map((r, k) => {
              const first = m.readUInt32LE(runsOffset + (firstRun + k) * 16 + 12);
              return { firstPage: r.firstPage, count: r.digests.length, at: trailer.manifestOffset + digestsOffset + first * PAGE_HASH_BYTES };
            })
          : [];
        return { offset: o.offset, size: o.size, digest: digestToString(o.digest), runs };
      }),
    };
  } catch (err) {
    if (err instanceof SlinkedFormatError || (err as Error).name === 'ChunkMissingError' || err instanceof RangeError) return undefined;
    throw err;
  }
}
