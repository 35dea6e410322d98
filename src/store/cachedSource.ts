// A ChunkSource wrapper that keeps recently used plaintext chunks (already verified by the inner
// source) in a byte-bounded LRU, and merges concurrent requests for the same digest into one
// request to the inner source. FUSE reads of a 64 KiB chunk arrive as several smaller requests,
// and a program start faults the same chunk from several threads: both hit here.
import type { Digest } from '../chunking/digest';
import type { ChunkSource } from './chunkSource';

export class CachedSource implements ChunkSource {
  readonly name: string;
  private readonly lru = new Map<string, Buffer>();
  private bytes = 0;
  private readonly inflight = new Map<string, Promise<Buffer | undefined>>();
  hits = 0;
  misses = 0;

  constructor(private readonly inner: ChunkSource, private readonly maxBytes = 64 << 20) {
    this.name = inner.name;
  }

  private static key(d: Digest): string {
    return d.toString('latin1');
  }

  /** The cached chunk, or undefined; never goes to the inner source. */
  peek(digest: Digest): Buffer | undefined {
    const k = CachedSource.key(digest);
    const hit = this.lru.get(k);
    if (hit) {
      this.lru.delete(k);
      this.lru.set(k, hit);
      this.hits++;
    }
    return hit;
  }

  async getChunk(digest: Digest): Promise<Buffer | undefined> {
    const hit = this.peek(digest);
    if (hit) return hit;
    const k = CachedSource.key(digest);
    let p = this.inflight.get(k);
    if (!p) {
      this.misses++;
      p = this.inner.getChunk(digest).finally(() => this.inflight.delete(k));
      this.inflight.set(k, p);
      p.then((b) => b && this.add(k, b), () => undefined);
    }
    return p;
  }

  /** Put a chunk known to be verified (e.g. just written) into the cache. */
  add(k: string | Digest, chunk: Buffer): void {
    const key = typeof k === 'string' ? k : CachedSource.key(k);
    if (this.lru.has(key) || chunk.length > this.maxBytes) return;
    this.lru.set(key, chunk);
    this.bytes += chunk.length;
    for (const [old, buf] of this.lru) {
      if (this.bytes <= this.maxBytes) break;
      this.lru.delete(old);
      this.bytes -= buf.length;
    }
  }

}
