// `mount --peer URL` and `mount --serve HOST:PORT`: what the daemon's chunk source becomes.
// At mount time each peer's tree (the URL's path, "/" by default) is mirrored into the store as
// names and recipes whose chunks are absent; names that exist locally are kept (a mount that
// mirrors none of its peers' trees into an empty store fails rather than show an empty tree;
// one whose store has a tree goes ahead with a warning, to work offline). A read then
// finds its chunk in the store, in the seeds, or on the peers (in turn), verified; whatever
// arrives is filled into the store, so a program from a peer starts before all of it is here,
// and a background prefetch brings the rest.
import { encodeChunkAsync } from '../chunking/compress';
import type { Digest } from '../chunking/digest';
import type { ChunkSource } from '../store/chunkSource';
import { LocalChunkSource } from '../store/localSource';
import { isReg } from '../store/records';
import { SeedIndex, SeedSource } from '../store/seedSource';
import type { Store, StoredChunk } from '../store/store';
import { SLINKY_NAME } from '../pagecache/layout';
import { ROOT_INO } from '../store/records';
import { PeerClient } from './client';
import { type MirrorReport, type NetworkReport, type PrefetchState, failedMirror } from './networkReport';
import { FailoverSource, PeerSource } from './peerSource';
import { requestPathComponents } from './protocol';
import { PeerServer } from './server';
import { createEntries, ensureDir, processOwner } from './storeTree';
import { batches, planFromPeer, type Plan, uniqueChunks } from './transfer';

export interface LazyMountOptions {
  peers: readonly string[];
  /** HOST:PORT to serve the mounted store on. */
  serve?: { host: string; port: number };
  prefetch?: boolean;
  /** Seconds without a byte from a peer before it counts as failed, mirroring or fetching. */
  timeoutSeconds: number;
  /** Called once the background prefetch has brought every absent chunk it could. */
  onPrefetched?: () => void;
}

/** Fills absent chunks in the store as they arrive, a transaction per batch. */
class Filler {
  private pending: Array<Promise<{ digest: Digest; enc: StoredChunk }>> = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  filled = 0;

  constructor(private readonly store: Store, private readonly log: (l: string) => void) {}

  add(digest: Digest, plain: Buffer): void {
    if (!this.store.isChunkAbsent(digest)) return;
    this.pending.push(encodeChunkAsync(plain).then((enc) => ({ digest, enc })));
    if (this.pending.length >= 256) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), 50);
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return this.chain;
    this.chain = this.chain.then(async () => {
      try {
        const items = await Promise.all(batch);
        const bytes = items.reduce((n, it) => n + it.enc.data.length + 64, 0);
        const n = await this.store.txn(() => items.filter((it) => this.store.fillChunk(it.digest, it.enc)).length, bytes);
        this.filled += n;
      } catch (err) {
        // Not fatal: the chunk stays absent and is fetched again when next needed.
        this.log(`storing fetched chunks failed: ${(err as Error).message}`);
      }
    });
    return this.chain;
  }
}

/** The peers of a lazy mount: their clients, the failover group over them, what mirroring found. */
interface Peers {
  clients: PeerClient[];
  sources: PeerSource[];
  group: FailoverSource;
  mirrors: MirrorReport[];
}

export class LazySource implements ChunkSource {
  readonly name = 'store+peers';
  readonly counters = { local: 0, seeded: 0, fetched: 0, missing: 0 };
  private stopped = false;
  private prefetching: Promise<void> | undefined;
  private readonly prefetchStatus: NetworkReport['prefetch'] = { state: 'off', wanted: 0, fetched: 0 };
  /** Peers that could not be mirrored, one line each, for `mount` to print. */
  warnings: readonly string[] = [];
  /** Set by lazyMountSource when the daemon also serves the store. */
  server: { address: string; counters: PeerServer['counters'] } | undefined;

  constructor(
    private readonly store: Store,
    private readonly local: LocalChunkSource,
    private readonly seeds: ChunkSource | undefined,
    private readonly peers: Peers | undefined,
    private readonly filler: Filler,
    private readonly log: (l: string) => void,
    private readonly closers: Array<() => Promise<void> | void>,
  ) {}

  private get remote(): ChunkSource | undefined {
    return this.peers?.group;
  }

  /** What the peers sent and what was found here instead (`slinkyfs stats --net`). */
  report(): NetworkReport {
    const p = this.peers;
    const peers = p
      ? p.clients.map((c, i) => ({
          name: c.name,
          mirror: p.mirrors[i],
          bytesIn: c.bytesIn(),
          bytesOut: c.bytesOut(),
          payloadBytes: c.chunkPayloadIn,
          ...c.counters,
          setAside: p.group.isSetAside(p.sources[i]),
          ...(c.lastError ? { lastError: c.lastError } : {}),
        }))
      : [];
    const s = this.server;
    return {
      peers,
      reads: { ...this.counters },
      prefetch: { ...this.prefetchStatus },
      stored: this.filler.filled,
      ...(s ? { serving: { address: s.address, ...s.counters } } : {}),
    };
  }

  private setPrefetch(state: PrefetchState, error?: string): void {
    this.prefetchStatus.state = state;
    if (error) this.prefetchStatus.error = error;
  }

  async getChunk(digest: Digest): Promise<Buffer | undefined> {
    const hit = this.local.getChunkSync(digest);
    if (hit) {
      this.counters.local++;
      return hit;
    }
    const seeded = this.seeds && (await this.seeds.getChunk(digest));
    if (seeded) {
      this.counters.seeded++;
      this.filler.add(digest, seeded);
      return seeded;
    }
    const b = this.remote && (await this.remote.getChunk(digest));
    if (b) {
      this.counters.fetched++;
      this.filler.add(digest, b);
    } else this.counters.missing++;
    return b;
  }

  /** Fetch every absent chunk, in file order, a batch at a time, until done or closed. */
  startPrefetch(done?: () => void): void {
    this.setPrefetch('running');
    this.prefetching ??= this.prefetch().then(
      (absent) => {
        this.setPrefetch(this.stopped ? 'stopped' : 'done');
        if (absent > 0) done?.();
      },
      (err) => {
        this.setPrefetch('stopped', (err as Error).message);
        this.log(`prefetch stopped: ${(err as Error).message}`);
      },
    );
  }

  /** The prefetch will start shortly (lazyMountSource delays it past the mount). */
  prefetchSoon(): void {
    this.setPrefetch('waiting');
  }

  /** Returns how many chunks were absent when it started (0: nothing to do). */
  private async prefetch(): Promise<number> {
    const wanted: Array<{ digest: Digest; length: number }> = [];
    const seen = new Set<string>();
    for (const rec of this.store.allInodes()) {
      if (!isReg(rec)) continue;
      for (const e of this.store.runs(rec.ino)) {
        const k = e.digest.toString('latin1');
        if (seen.has(k) || !this.store.isChunkAbsent(e.digest)) continue;
        seen.add(k);
        wanted.push({ digest: e.digest, length: e.length });
      }
    }
    if (wanted.length === 0) return 0;
    this.prefetchStatus.wanted = wanted.length;
    this.log(`prefetching ${wanted.length} chunks`);
    let got = 0;
    for (const batch of batches(wanted, 2 << 20)) {
      if (this.stopped) return 0;
      const left = batch.filter((w) => this.store.isChunkAbsent(w.digest));
      const fromRemote: typeof left = [];
      for (const w of left) {
        const s = this.seeds && (await this.seeds.getChunk(w.digest));
        if (s) this.filler.add(w.digest, s);
        else fromRemote.push(w);
      }
      if (!this.remote || fromRemote.length === 0) continue;
      const chunks = await (this.remote.getChunks?.(fromRemote.map((w) => w.digest)) ?? Promise.resolve([]));
      chunks.forEach((b, i) => {
        if (b) {
          got++;
          this.prefetchStatus.fetched++;
          this.filler.add(fromRemote[i].digest, b);
        }
      });
      await this.filler.flush();
    }
    this.log(`prefetch done: ${got} chunks fetched`);
    return wanted.length;
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.prefetching;
    await this.filler.flush();
    for (const c of this.closers) await c();
  }
}

/** No peer's tree could be mirrored and the store has nothing to show instead. */
export class PeerMirrorError extends Error {
  override name = 'PeerMirrorError';
  readonly exitCode = 3;
}

async function planMirror(client: PeerClient): Promise<{ parts: string[]; plan: Plan }> {
  const where = client.address.path || '/';
  const parts = requestPathComponents(where);
  if (typeof parts === 'string') throw new Error(`bad path ${where}: ${parts}`);
  const plan = await planFromPeer(client, where, true);
  if (plan.kind !== 'dir') throw new Error(`${where} is not a directory`);
  return { parts, plan };
}

/** What mirroring found, per peer, and the one-line reasons of those that failed. */
interface Mirrored {
  reports: MirrorReport[];
  failures: string[];
}

/**
 * Mirror each peer's tree into the store (missing names only). Returns, per peer, what its files
 * need and how much of that the store already had: the chunks a mount never fetches. A peer
 * that fails is logged and left to the others.
 */
async function mirrorNamespaces(store: Store, clients: PeerClient[], log: (l: string) => void): Promise<Mirrored> {
  // Asked side by side, so that silent peers cost one timeout in all, not one each; mirrored in
  // the order given, so that the first peer's names win.
  const plans = await Promise.allSettled(clients.map((c) => planMirror(c)));
  const out: Mirrored = { reports: [], failures: [] };
  for (const [i, client] of clients.entries()) {
    const where = client.address.path || '/';
    try {
      const planned = plans[i];
      if (planned.status === 'rejected') throw planned.reason;
      const { parts, plan } = planned.value;
      const report: MirrorReport = { path: where, entries: plan.entries.length, created: 0, chunks: 0, chunkBytes: 0, localChunks: 0, localBytes: 0 };
      for (const c of uniqueChunks(plan).values()) {
        report.chunks++;
        report.chunkBytes += c.length;
        if (store.hasChunk(c.digest)) {
          report.localChunks++;
          report.localBytes += c.length;
        }
      }
      const owner = processOwner();
      const top = await store.txn(() => ensureDir(store, parts, owner));
      report.created = await createEntries(store, top, plan.entries, plan.recipes, owner, { merge: true });
      log(`${client.name}: mirrored ${report.created} of ${plan.entries.length} entries of ${where}`);
      out.reports.push(report);
    } catch (err) {
      const why = (err as Error).message;
      const reason = why.startsWith(client.name) ? why : `${client.name}: ${why}`;
      log(`cannot mirror ${where}: ${reason}`);
      out.failures.push(reason);
      out.reports.push(failedMirror(where, why));
    }
  }
  return out;
}

/** Anything to show besides the hidden page-cache tree: a tree mirrored before, files of its own. */
function hasContent(store: Store): boolean {
  for (const e of store.entries(ROOT_INO)) if (e.name !== SLINKY_NAME) return true;
  return false;
}

/** The daemon's extraSources hook for --peer/--serve. */
export async function lazyMountSource(store: Store, opts: LazyMountOptions, log: (l: string) => void): Promise<LazySource> {
  const closers: Array<() => Promise<void> | void> = [];
  const clients = opts.peers.map((p) => new PeerClient(p, { idleTimeoutMs: opts.timeoutSeconds * 1000 }));
  const { reports: mirrors, failures } = await mirrorNamespaces(store, clients, log);
  // With no peer's tree and nothing of its own, the mount would only show an empty directory; a
  // store that has a tree (mirrored before, while the peer was up) is still worth mounting.
  if (clients.length > 0 && failures.length === clients.length && !hasContent(store)) {
    for (const c of clients) c.close();
    throw new PeerMirrorError(`cannot mirror ${clients.length === 1 ? 'the peer' : 'any peer'}: ${failures.join('; ')}`);
  }
  const seedIndex = await SeedIndex.open(store.dir, { readOnly: true }).catch(() => undefined);
  if (seedIndex) closers.push(() => seedIndex.close());
  let peers: Peers | undefined;
  if (clients.length) {
    const sources = clients.map((c) => new PeerSource(c));
    peers = { clients, sources, group: new FailoverSource(sources, log), mirrors };
    const group = peers.group;
    closers.push(() => group.close());
  }
  const local = new LocalChunkSource(store, (_d, why) => log(`corrupt chunk in store: ${why}`));
  const lazy = new LazySource(store, local, seedIndex && new SeedSource(seedIndex), peers, new Filler(store, log), log, closers);
  lazy.warnings = failures.map((f) => `not mirrored: ${f}`);
  if (opts.serve) {
    const server = new PeerServer({ store, host: opts.serve.host, port: opts.serve.port, log });
    const addr = await server.listen();
    const address = `${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`;
    log(`serving on http://${address}`);
    lazy.server = { address, counters: server.counters };
    closers.unshift(() => server.close());
  }
  if (peers && opts.prefetch !== false) {
    lazy.prefetchSoon();
    setTimeout(() => lazy.startPrefetch(opts.onPrefetched), 200).unref();
  }
  return lazy;
}
