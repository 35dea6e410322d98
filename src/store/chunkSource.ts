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
  close?(): Promise<void>;
}

export class ChunkVerificationError extends Error {
  override name = 'ChunkVerificationError';
}

/** Fetch many chunks through `source`, using its batch path when it has one. */
export async function getChunks(source: ChunkSource, digests: readonly Digest[]): Promise<(Buffer | undefined)[]> {
  if (source.getChunks) return source.getChunks(digests);
  return Promise.all(digests.map((d) => source.getChunk(d)));
}
