// Compression off the write path. With compressLater, new chunks are stored raw and queued; the
// compactor compresses them (zstd, on the threadpool) whenever the mount has been quiet for a
// moment, in small batches, each one transaction. Ingest then runs at the speed of chunking and
// hashing, and the store still ends up compressed. A chunk that does not shrink stays raw.
import { encodeChunkAsync } from '../chunking/compress';
import type { Store } from './store';

export interface CompactorOptions {
  /** True when the filesystem is quiet enough to spend CPU on compression. */
  isIdle: () => boolean;
  log?: (line: string) => void;
  batch?: number;
  /** How long to wait before looking again when busy or when the queue is empty. */
  pollMs?: number;
}

export class Compactor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  compressed = 0;

  constructor(private readonly store: Store, private readonly opts: CompactorOptions) {}

  start(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => (this.running = undefined));
    }, ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const poll = this.opts.pollMs ?? 250;
    if (!this.opts.isIdle()) return this.schedule(poll);
    const n = await this.runBatch().catch((err) => {
      this.opts.log?.(`compactor: ${(err as Error).message}`);
      return 0;
    });
    this.schedule(n > 0 ? 0 : poll * 4);
  }

  /** Compress one batch of queued chunks; returns how many were handled. */
  async runBatch(): Promise<number> {
    const digests = this.store.pendingCompression(this.opts.batch ?? 64);
    if (digests.length === 0) return 0;
    const results = await Promise.all(
      digests.map(async (d) => {
        const stored = this.store.readStoredChunk(d);
        if (!stored || stored.codec !== 0) return { d, encoded: undefined };
        const enc = await encodeChunkAsync(stored.data);
        return { d, encoded: enc.codec === 0 ? undefined : { codec: enc.codec, data: Buffer.from(enc.data) } };
      }),
    );
    await this.store.txn(() => {
      for (const r of results) this.store.recompressChunk(r.d, r.encoded);
    });
    this.compressed += results.length;
    return results.length;
  }

  /** Compress everything queued now (tests, `slinkyfs gc`). */
  async drain(): Promise<void> {
    while ((await this.runBatch()) > 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
