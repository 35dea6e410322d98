// A ChunkSource wrapper that keeps recently used plaintext chunks (already verified by the inner
// source) in a byte-bounded LRU, and merges concurrent requests for the same digest into one
// request to the inner source. FUSE reads of a 64 KiB chunk arrive as several smaller requests,
// and a program start faults the same chunk from several threads: both hit here.
import type { Digest } from '../chunking/digest';
import { copyPart, getChunks, readParts, type ChunkPart, type ChunkSource } from './chunkSource';

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

  /**
   * Batch form: cached chunks answer at once, chunks already on their way are shared, and all
   * the rest go to the inner source as one batch (one decode job for the local store).
   */
  async getChunks(digests: readonly Digest[]): Promise<(Buffer | undefined)[]> {
    const out: (Buffer | undefined | Promise<Buffer | undefined>)[] = new Array(digests.length);
    const missing: Digest[] = [];
    const missingKeys: string[] = [];
    for (let i = 0; i < digests.length; i++) {
      const hit = this.peek(digests[i]);
      if (hit) {
        out[i] = hit;
        continue;
      }
      const k = CachedSource.key(digests[i]);
      const pending = this.inflight.get(k);
      if (pending) {
        out[i] = pending;
      } else if (!missingKeys.includes(k)) {
        missing.push(digests[i]);
        missingKeys.push(k);
      }
    }
    if (missing.length > 0) {
      this.misses += missing.length;
      const batch = getChunks(this.inner, missing);
      missingKeys.forEach((k, j) => {
        const p = batch.then((all) => all[j]).finally(() => this.inflight.delete(k));
        this.inflight.set(k, p);
        p.then((b) => b && this.add(k, b), () => undefined);
      });
      for (let i = 0; i < digests.length; i++) if (out[i] === undefined) out[i] = this.inflight.get(CachedSource.key(digests[i]));
    }
    return Promise.all(out);
  }

  /**
   * Gather form: parts of cached or already requested chunks are copied from them; all the rest
   * go to the inner source as one gather (decoded in place there, and not cached: a sequential
   * reader does not come back for them, and the kernel keeps its own page cache).
   */
  async readInto(parts: readonly ChunkPart[], out: Buffer): Promise<boolean[]> {
    const ok: boolean[] = new Array(parts.length).fill(false);
    const rest: number[] = [];
    const waits: Promise<void>[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      const hit = this.peek(p.digest);
      if (hit) {
        ok[i] = copyPart(hit, p, out);
        continue;
      }
      const pending = this.inflight.get(CachedSource.key(p.digest));
      if (pending) waits.push(pending.then((b) => void (ok[i] = copyPart(b, p, out))));
      else rest.push(i);
    }
    if (rest.length > 0) {
      this.misses += rest.length;
      waits.push(readParts(this.inner, rest.map((i) => parts[i]), out).then((got) => got.forEach((v, j) => (ok[rest[j]] = v))));
    }
    await Promise.all(waits);
    return ok;
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
