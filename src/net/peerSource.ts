// Peers as ChunkSources. PeerSource gathers the single-chunk requests that arrive in the same
// turn of the event loop (a FUSE read of 128 KiB asks for ~16 chunks at once, a program start
// faults many pages) into one batched request. FailoverSource asks its sources in turn, and
// sets a source that failed aside for a while so a dead peer costs one timeout, not one per read.
import type { Digest } from '../chunking/digest';
import type { ChunkSource } from '../store/chunkSource';
import type { PeerClient } from './client';
import { LIMITS } from './protocol';

interface Waiter {
  digest: Digest;
  resolve: (b: Buffer | undefined) => void;
  reject: (e: unknown) => void;
}

export class PeerSource implements ChunkSource {
  readonly name: string;
  private queue: Waiter[] = [];
  private scheduled = false;

  constructor(readonly client: PeerClient, private readonly level = 0) {
    this.name = client.name;
  }

  getChunk(digest: Digest): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ digest, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length) {
      const batch = this.queue.splice(0, 256);
      this.getChunks(batch.map((w) => w.digest)).then(
        (got) => batch.forEach((w, i) => w.resolve(got[i])),
        (err) => batch.forEach((w) => w.reject(err)),
      );
    }
  }

  async getChunks(digests: readonly Digest[]): Promise<(Buffer | undefined)[]> {
    const out: (Buffer | undefined)[] = new Array(digests.length).fill(undefined);
    for (let i = 0; i < digests.length; i += LIMITS.batchChunks) {
      const part = digests.slice(i, i + LIMITS.batchChunks);
      await this.client.chunks(part.map((digest) => ({ digest })), { level: this.level }, (c) => {
        out[i + c.index] = c.plain;
      });
    }
    return out;
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

export class FailoverSource implements ChunkSource {
  readonly name: string;
  private readonly downUntil = new Map<ChunkSource, number>();

  constructor(
    private readonly sources: readonly ChunkSource[],
    private readonly log: (line: string) => void = () => undefined,
    private readonly setAsideMs = 10_000,
  ) {
    this.name = sources.map((s) => s.name).join(', ');
  }

  /** True while `s` is set aside after a failure. */
  isSetAside(s: ChunkSource): boolean {
    return (this.downUntil.get(s) ?? 0) > Date.now();
  }

  /** Sources to ask now: those not set aside, or all of them when every one is. */
  private order(): ChunkSource[] {
    const now = Date.now();
    const up = this.sources.filter((s) => (this.downUntil.get(s) ?? 0) <= now);
    return up.length ? up : [...this.sources];
  }

  private failed(s: ChunkSource, err: unknown): void {
    this.downUntil.set(s, Date.now() + this.setAsideMs);
    this.log(`${s.name} failed, trying the next peer: ${(err as Error).message}`);
  }

  async getChunk(digest: Digest): Promise<Buffer | undefined> {
    for (const s of this.order()) {
      try {
        const b = await s.getChunk(digest);
        if (b) return b;
      } catch (err) {
        this.failed(s, err);
      }
    }
    return undefined;
  }

  async getChunks(digests: readonly Digest[]): Promise<(Buffer | undefined)[]> {
    const out: (Buffer | undefined)[] = new Array(digests.length).fill(undefined);
    let left = digests.map((_, i) => i);
    for (const s of this.order()) {
      if (left.length === 0) break;
      try {
        const got = s.getChunks ? await s.getChunks(left.map((i) => digests[i])) : await Promise.all(left.map((i) => s.getChunk(digests[i])));
        left.forEach((i, j) => (out[i] = got[j]));
        left = left.filter((i) => !out[i]);
      } catch (err) {
        this.failed(s, err);
      }
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close?.()));
  }
}
