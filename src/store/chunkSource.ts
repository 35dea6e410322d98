// The one interface every chunk source implements: the local LMDB store, seed files, remote
// peers, and wrappers (failover groups, request-merging queues). Readers ask for a chunk by
// digest and never care where it comes from. A source must only ever return bytes that hash to
// the requested digest: verification is part of the contract, not the caller's job.
import type { Digest } from '../chunking/digest';

export interface ChunkSource {
  /** Human-readable name for logs and errors ("store", "peer 127.0.0.1:7070", ...). */
  readonly name: string;
  /**
   * The chunk's plaintext, verified against `digest`, or undefined when this source does not
   * have it. A source that finds bytes which do not match must not return them: it counts or
   * logs the failure and answers undefined (or throws ChunkVerificationError when it cannot
   * continue).
   */
  getChunk(digest: Digest): Promise<Buffer | undefined>;
  /** Batch form; sources that can pipeline (peers) override it. Same order as `digests`. */
  getChunks?(digests: readonly Digest[]): Promise<(Buffer | undefined)[]>;
  /**
   * Gather form: put the wanted part of each chunk into `out`, verified, without handing out
   * whole chunks (the FUSE read path: no Buffer per chunk). True per part that arrived. Sources
   * that can decode in place implement it; readParts() serves the others through getChunks.
   */
  readInto?(parts: readonly ChunkPart[], out: Buffer): Promise<boolean[]>;
  close?(): Promise<void>;
}

/** Bytes [skip, skip+take) of the chunk `digest`, wanted at out[at]. */
export interface ChunkPart {
  digest: Digest;
  skip: number;
  take: number;
  at: number;
  /** The whole chunk's length, when the caller knows it (a file's extents say it). */
  length?: number;
}

export class ChunkVerificationError extends Error {
  override name = 'ChunkVerificationError';
}

/** Fetch many chunks through `source`, using its batch path when it has one. */
export async function getChunks(source: ChunkSource, digests: readonly Digest[]): Promise<(Buffer | undefined)[]> {
  if (source.getChunks) return source.getChunks(digests);
  return Promise.all(digests.map((d) => source.getChunk(d)));
}

/** Gather parts of chunks into `out` through `source`, using its gather path when it has one. */
export async function readParts(source: ChunkSource, parts: readonly ChunkPart[], out: Buffer): Promise<boolean[]> {
  if (source.readInto) return source.readInto(parts, out);
  const chunks = await getChunks(source, parts.map((p) => p.digest));
  return parts.map((p, i) => copyPart(chunks[i], p, out));
}

/** Copy one part out of a whole chunk; false when the chunk is missing or too short. */
export function copyPart(chunk: Buffer | undefined, p: ChunkPart, out: Buffer): boolean {
  if (!chunk || chunk.length < p.skip + p.take) return false;
  chunk.copy(out, p.at, p.skip, p.skip + p.take);
  return true;
}
