// Zero bytes and the chunks made of them. A hole (truncate -s, a write far past the end, a
// punched range) is chunked as maximal chunks of zeros, never read or hashed: these give the
// bytes and digests those chunks have without allocating or hashing per use.
import { algorithmOf, digestOf, type Digest } from './digest';
import { LBFS_PARAMS } from './chunker';

let zeros = Buffer.alloc(0);

/** `length` zero bytes from one shared buffer: read-only, never to be written into. */
export function zeroBytes(length: number): Buffer {
  if (zeros.length < length) zeros = Buffer.alloc(Math.max(length, 1 << 16));
  return zeros.subarray(0, length);
}

/**
 * `chunk` itself, or, when it is all zeros, the same bytes from the shared buffer. A plan keeps
 * every new chunk's bytes until its transaction: without this, a file extended by a large hole
 * held a copy of the whole hole (4 GiB of memory for `truncate -s 4G`).
 */
export function shareZeros(chunk: Buffer): Buffer {
  const z = zeroBytes(chunk.length);
  return chunk.equals(z) ? z : chunk;
}

// A hole's chunks are all maxSize long but one (its last, shorter): few lengths in practice, yet
// every hole's tail may add one, so the memo is cleared rather than left to grow.
const MEMO_LIMIT = 256;
const zeroDigests = new Map<number, Digest>();

/** The digest of the chunk of `length` zero bytes. */
export function zeroDigest(length: number): Digest {
  let d = zeroDigests.get(length);
  if (!d) {
    if (zeroDigests.size >= MEMO_LIMIT) zeroDigests.clear();
    zeroDigests.set(length, (d = digestOf(zeroBytes(length))));
  }
  return d;
}

/** True when every byte of `b` is zero. */
export function isZeros(b: Uint8Array): boolean {
  return zeroBytes(b.length).equals(b);
}

/** The maximal chunk of zeros, the unit of a hole: what SEEK_HOLE and st_blocks count. */
export const HOLE_CHUNK_LENGTH = LBFS_PARAMS.maxSize;
const holeDigests = new Map<string, Digest>();

/** True for a chunk that is a hole's unit: maxSize zero bytes (under any digest algorithm). */
export function isHoleChunk(length: number, digest: Digest): boolean {
  if (length !== HOLE_CHUNK_LENGTH) return false;
  const alg = algorithmOf(digest);
  let z = holeDigests.get(alg);
  if (!z) holeDigests.set(alg, (z = digestOf(zeroBytes(length), alg)));
  return z.equals(digest);
}
