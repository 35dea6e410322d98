// The local LMDB store as a ChunkSource. Chunks are verified against their digest as they are
// decoded: the store's disk is not trusted more than a peer (a flipped bit or a tampered
// database must surface as a missing chunk, never as wrong bytes handed to a program).
import { verifyDigest, type Digest } from '../chunking/digest';
import { decodeChunk, decodeVerifiedAsync } from '../chunking/compress';
import type { ChunkSource } from './chunkSource';
import type { Store } from './store';

export interface SourceCounters {
  hits: number;
  misses: number;
  verifyFailures: number;
}

export class LocalChunkSource implements ChunkSource {
  readonly name = 'store';
  readonly counters: SourceCounters = { hits: 0, misses: 0, verifyFailures: 0 };
  constructor(private readonly store: Store, private readonly onCorrupt?: (digest: Digest, why: string) => void) {}

  /** Decoding and hashing run on the threadpool: concurrent reads use every core. */
  async getChunk(digest: Digest): Promise<Buffer | undefined> {
    const ref = this.store.chunkRef(digest);
    const stored = ref && this.store.readStoredChunk(digest);
    if (!ref || !stored) {
      this.counters.misses++;
      return undefined;
    }
    try {
      const plain = await decodeVerifiedAsync(stored.codec, stored.data, ref.length, digest);
      this.counters.hits++;
      return plain;
    } catch (err) {
      this.counters.verifyFailures++;
      this.onCorrupt?.(digest, (err as Error).message);
      return undefined;
    }
  }

  /** Synchronous form for the FUSE read path: LMDB reads are memory-mapped, decoding is fast. */
  getChunkSync(digest: Digest): Buffer | undefined {
    const ref = this.store.chunkRef(digest);
    const stored = ref && this.store.readStoredChunk(digest);
    if (!ref || !stored) {
      this.counters.misses++;
      return undefined;
    }
    let plain: Buffer;
    try {
      plain = decodeChunk(stored.codec, stored.data, ref.length);
    } catch (err) {
      this.counters.verifyFailures++;
      this.onCorrupt?.(digest, (err as Error).message);
      return undefined;
    }
    if (!verifyDigest(digest, plain)) {
      this.counters.verifyFailures++;
      this.onCorrupt?.(digest, 'bytes do not match digest');
      return undefined;
    }
    this.counters.hits++;
    return plain;
  }
}
