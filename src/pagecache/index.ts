// src/pagecache: the shared page cache. Slinked files committed to the mount have their embedded
// objects published once each as read-only files /.slinky/objects/<digest> (publish.ts); the
// stub (native/stub.c) hands those paths to the loader, so every process running any slinked
// file that contains, say, libc maps the same inode and shares its pages in the kernel's page
// cache, as dynamically linked programs share libc.so.6. Reads of those files are answered from
// the digest-keyed page pool, the GDT (pool.ts), or from the store with every page verified
// against the object's page table first (reader.ts). Which processes map which objects comes
// from /proc (procMaps.ts); statistics go out over a socket (statsServer.ts); guard.ts is what
// the FUSE operations need. An object with a verified identical file on this machine (its
// "twin", twins.ts: the system's own libc.so.6) is backed by that file through FUSE passthrough
// (backing.ts), so slinked programs share the pages dynamic programs use. docs/FORMAT.md ("Page
// cache") and README ("Shared page cache") say more.
//
// Integration (the daemon): create it, pass `onContentCommitted` to the Filesystem, wrap the
// low-level ops with `wrapOps`, `start()` before mounting, `attach(session)` once mounted (object
// files are then opened and closed by the FUSE binding in C, without JS) and `close()` before the
// store closes.
import fs from 'node:fs';
import path from 'node:path';
import { readCommitted } from '../store/fileContent';
import { NotFoundError } from '../store/errors';
import type { ChunkSource } from '../store/chunkSource';
import type { Store } from '../store/store';
import { isReg, ROOT_INO, S_IFDIR, S_IFMT, S_IFREG } from '../store/records';
import type { Caller, Filesystem } from '../fs/filesystem';
import type { FastPathCounters, LowLevelOps, LowLevelSession } from '../fs/lowlevel';
import { guardOps } from './guard';
import { OBJECTS_DIR, PAGES_DIR, SLINKY_DIR, SLINKY_NAME, TMP_DIR, digestOfName, objectPath, pageTablePath } from './layout';
import { ObjectIndex, type ObjectEntry } from './objectIndex';
import { decodePageTable, pageKey, PAGE_CODE, storeTableKey, type PageTable } from './pageTable';
import { DEFAULT_POOL_BYTES, PagePool, type PoolCounters } from './pool';
import { mapsDeviceOf, scanProcesses, type Mapping } from './procMaps';
import { Publisher, TableBuilder, type PublishCounters } from './publish';
import { PageVerificationError, VerifiedReader } from './reader';
import { serveStats, socketPath } from './statsServer';
import { TwinFinder } from './twins';
import { TwinBacking } from './backing';
import { algorithmOf } from '../chunking/digest';
import { TRAILER_SIZE } from '../elf/manifest';
import { hasTrailer } from './manifestReader';

export { requestStats, NoDaemonError, socketPath } from './statsServer';
export { OBJECTS_DIR, SLINKY_DIR } from './layout';

export interface PageCacheOptions {
  store: Store;
  /** Where chunks come from (the store, peers): not the Filesystem's cached source, so pages
   *  are cached once, here. */
  source: ChunkSource;
  filesystem: Filesystem;
  /** Absolute mountpoint: to recognise the mount's device in /proc/PID/maps. */
  mountpoint: string;
  /** Store directory: the statistics socket goes there (false: no socket). */
  storeDir: string | false;
  log: (line: string) => void;
  /** Memory bound of the page pool in bytes (default 4 MiB). */
  poolBytes?: number;
  /** Owner of published objects (default: the daemon's uid/gid; root when mounted by root). */
  owner?: Caller;
  /** Back objects with identical system files when the mount has passthrough (default true). */
  twins?: boolean;
  /** More of the daemon's figures, answered beside the page cache's on the statistics socket
   *  (the network part of a mount with peers). */
  moreStats?: () => Record<string, unknown>;
}

export interface ObjectStats {
  name: string;
  ino: number;
  size: number;
  pages: number;
  codePages: number;
  /** Live processes mapping the object. */
  mappings: number;
  /** Distinct pages of it mapped by at least one process, and by at least two. */
  mappedPages: number;
  sharedPages: number;
  /** The identical system file its opens pass through to, if any (then the kernel serves its
   *  pages from that file and this daemon reads none of them). */
  twin?: string;
}

export interface PageCacheStats {
  gdt: PoolCounters & { entries: number; bytes: number; limitBytes: number; referencedEntries: number };
  /** Σ over object pages mapped by k ≥ 2 processes of (k − 1) × 4096: what private copies
   *  (standalone mode) would have added. */
  bytesShared: number;
  /** Processes mapping at least one published object at the last scan (the PDTs). */
  processes: number;
  scannedAt: string | null;
  published: PublishCounters & { objects: number };
  objects: ObjectStats[];
  /** Opens, flushes and releases of object files answered by the FUSE binding without JS
   *  (zeros before `attach`). */
  fastPath: FastPathCounters;
  /** Objects backed by an identical file of this machine (passthrough), objects still to be
   *  looked at for one, and objects whose twin no process mapped (left to the daemon). */
  twins: { objects: number; pending: number; unused: number };
  /** The daemon's own memory (process.memoryUsage()), bytes. */
  daemon: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
}

export interface PageCache {
  /** Filesystem hook: queue the file for publishing if it is a slinked file. `tail`: the file's
   *  last bytes when the commit knows them (a file they show is not slinked is not queued). */
  onContentCommitted(ino: number, tail?: Buffer): Promise<void>;
  /** True for the inode of a published object (served by `read`). */
  isObject(ino: number): boolean;
  /** True for inodes under /.slinky: the mount must refuse to change them. */
  isProtected(ino: number): boolean;
  /** Verified bytes of a published object; rejects with errno EIO on a page that fails. */
  read(ino: number, offset: number, size: number): Promise<Buffer>;
  /** The mount's low-level operations with the page cache in front (see guard.ts). */
  wrapOps(ops: LowLevelOps): LowLevelOps;
  /** Loads the index of published objects and serves statistics. Call before mounting. */
  start(): Promise<void>;
  /** The mount's session: every published object (now and later) is marked immutable there, so
   *  its opens and closes are answered in C (src/fs/lowlevel.ts, "Immutable inodes"). */
  attach(session: AttachedSession): void;
  /** Look at every file of the store again (chunks of files mirrored from peers have arrived). */
  lookAgain(): void;
  /** Settles when every queued file has been looked at (tests, unmount). */
  idle(): Promise<void>;
  stats(): Promise<PageCacheStats>;
  close(): Promise<void>;
}

/** What the page cache needs of the mount's session. */
export type AttachedSession = Pick<LowLevelSession, 'setImmutable' | 'setBacking' | 'fastPath'>;

const SCAN_INTERVAL_MS = 5000;
/** Looked-at files whose marks are cleared together: at most this many, at most this late. */
const LOOKED_BATCH = 4096;
const LOOKED_DELAY_MS = 1000;
/** In the store directory: the twins verified so far (twins.ts), so a new daemon hashes none. */
const TWINS_FILE = 'twins.json';
const PAGE = 4096;

class SharedPageCache implements PageCache {
  private readonly index = new ObjectIndex();
  private readonly pool: PagePool;
  private readonly reader: VerifiedReader;
  private readonly publisher: Publisher;
  private readonly log: (line: string) => void;
  private readonly key: Buffer;
  private closeSocket: () => Promise<void> = async () => undefined;
  private timer: NodeJS.Timeout | undefined;
  private device: string | undefined;
  private processes = new Map<number, Mapping[]>();
  private scannedAt = 0;
  private scanning: Promise<void> | undefined;
  private nextScan: Promise<void> | undefined;
  private closed = false;
  private existing: Promise<void> = Promise.resolve();
  private readonly lookedAt = new Map<number, number>();
  private lookedTimer: NodeJS.Timeout | undefined;
  private settling: Promise<void> = Promise.resolve();
  /** After close: the store is about to close, nothing more is written to it. */
  private settledForGood = false;
  private session: AttachedSession | undefined;
  private readonly twins: TwinFinder;
  private backing: TwinBacking | undefined;

  constructor(private readonly o: PageCacheOptions) {
    this.log = o.log;
    this.pool = new PagePool(o.poolBytes ?? DEFAULT_POOL_BYTES);
    this.key = storeTableKey(o.store.dir);
    this.twins = new TwinFinder({ cacheFile: o.storeDir ? path.join(o.storeDir, TWINS_FILE) : undefined });
    const raw = (ino: number, offset: number, target: Buffer) => readCommitted(o.store, o.source, ino, offset, target);
    this.reader = new VerifiedReader(this.pool, raw, (name, page) => this.log(`page cache: REFUSED page ${page} of ${name}: bytes do not match its digest`));
    this.publisher = new Publisher({
      fs: o.filesystem,
      raw,
      sizeOf: (ino) => {
        const rec = o.store.getInode(ino);
        return rec && isReg(rec) ? rec.size : undefined;
      },
      isLocal: (ino, from, to) => o.store.extents(ino, from, to).every((e) => o.store.hasChunk(e.digest)),
      markOf: (ino) => o.store.examinationMark(ino),
      looked: (ino, mark) => this.looked(ino, mark),
      owner: o.owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      index: this.index,
      key: this.key,
      log: o.log,
    });
  }

  async onContentCommitted(ino: number, tail?: Buffer): Promise<void> {
    // Most committed files are not slinked, and the commit has just written their last chunk:
    // deciding from it spares reading that chunk back (a lookup, a decode and a SHA-256), part
    // of which ran before the close that committed it was answered. close(2) of a 20 KB file:
    // 445-507 us before, 381-397 us after (README, "Known limitations").
    if ((tail && tail.length >= TRAILER_SIZE && !hasTrailer(tail.subarray(tail.length - TRAILER_SIZE))) || this.index.isProtected(ino)) {
      this.looked(ino, this.o.store.examinationMark(ino));
      return;
    }
    this.publisher.enqueue(ino);
  }

  isObject(ino: number): boolean {
    return this.index.isObject(ino);
  }

  isProtected(ino: number): boolean {
    return this.index.isProtected(ino);
  }

  wrapOps(ops: LowLevelOps): LowLevelOps {
    return guardOps(ops, this.index, this);
  }

  /**
   * A regular file named like an object found in /.slinky/objects without having been published
   * by this daemon (the tree came from a peer or a copy): from now on it is served like the
   * others, its table believed only if this store wrote it, else rebuilt from the object after
   * checking its bytes against its name.
   */
  adopt(parent: number, name: string, ino: number, mode: number, size: number): void {
    const type = mode & S_IFMT;
    if (type === S_IFDIR) {
      // A tree that arrived before anything was published here: learn where it is.
      if (parent === ROOT_INO && name === SLINKY_NAME) (this.index.slinkyDir = ino), this.index.protect(ino);
      else if (parent === this.index.slinkyDir && parent !== undefined) {
        this.index.protect(ino);
        if (name === 'objects') this.index.objectsDir = ino;
      }
      return;
    }
    if (type !== S_IFREG || parent !== this.index.objectsDir || this.index.isObject(ino)) return;
    const digest = digestOfName(name);
    if (digest) this.index.add({ name, digest, ino, size });
  }

  async read(ino: number, offset: number, size: number): Promise<Buffer> {
    const e = this.index.get(ino);
    if (!e) throw new NotFoundError(`inode ${ino} is not a published object`);
    const table = await this.tableOf(e);
    const out = await this.reader.read({ name: e.name, ino, table }, offset, size);
    if (this.pool.bytes > this.pool.limitBytes / 2) this.scheduleScan();
    return out;
  }

  private tableOf(e: ObjectEntry): Promise<PageTable> {
    if (e.table) return Promise.resolve(e.table);
    if (e.broken) return Promise.reject(new PageVerificationError(e.broken));
    e.loading ??= this.loadTable(e).then(
      (t) => {
        e.table = t;
        return t;
      },
      (err) => {
        e.loading = undefined;
        if (err instanceof PageVerificationError) e.broken = err.message;
        throw err;
      },
    );
    return e.loading;
  }

  /** The stored page table; rebuilt from the object itself (checked against its name) when the
   *  table is missing or unreadable. */
  private async loadTable(e: ObjectEntry): Promise<PageTable> {
    const f = this.o.filesystem;
    try {
      const attr = await f.getattr(pageTablePath(e.name));
      if (attr.size > 64 << 20) throw new Error('page table too large');
      const b = Buffer.alloc(attr.size);
      await readCommitted(this.o.store, this.o.source, attr.ino, 0, b);
      const t = decodePageTable(b, e.digest, this.key);
      if (t.objectSize !== e.size) throw new Error('page table is for an object of another size');
      this.index.protect(attr.ino);
      return t;
    } catch (err) {
      this.log(`page cache: page table of ${e.name} unusable (${(err as Error).message}); rebuilding it from the object`);
    }
    const builder = new TableBuilder(e.size, algorithmOf(e.digest));
    for (let at = 0; at < e.size; at += 1 << 20) {
      const b = Buffer.alloc(Math.min(1 << 20, e.size - at));
      await readCommitted(this.o.store, this.o.source, e.ino, at, b);
      builder.update(b);
    }
    const { digest, table } = builder.finish();
    if (!digest.equals(e.digest)) {
      this.pool.counters.verificationFailures++;
      this.log(`page cache: REFUSED object ${e.name}: its bytes do not match its name`);
      throw new PageVerificationError(`object ${e.name} does not match its digest`);
    }
    const full: PageTable = { ...table, object: e.digest };
    await this.publisher.writeTable(e.name, full).catch((err) => this.log(`page cache: cannot store the rebuilt table of ${e.name}: ${(err as Error).message}`));
    return full;
  }

  attach(session: AttachedSession): void {
    this.session = session;
    if (this.o.twins !== false && session.fastPath.passthrough) this.backing = new TwinBacking(session, this.index, this.twins, this.log);
    this.index.watch((ino, isObject) => {
      session.setImmutable(ino, isObject);
      if (isObject) this.backing?.add(ino);
    });
  }

  async start(): Promise<void> {
    await this.loadIndex();
    this.lookAgain();
    const more = this.o.moreStats ?? (() => ({}));
    if (this.o.storeDir) this.closeSocket = await serveStats(socketPath(this.o.storeDir), async () => ({ ...(await this.stats()), ...more() }), this.log);
  }

  private async loadIndex(): Promise<void> {
    const f = this.o.filesystem;
    const exists = (p: string) => f.getattr(p).then((a) => a, (err) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    for (const dir of [SLINKY_DIR, OBJECTS_DIR, PAGES_DIR, TMP_DIR]) {
      const a = await exists(dir);
      if (a) this.index.protect(a.ino);
      if (a && dir === OBJECTS_DIR) this.index.objectsDir = a.ino;
      if (a && dir === SLINKY_DIR) this.index.slinkyDir = a.ino;
    }
    const names = async (dir: string) => (await f.readdir(dir)).filter((n) => n !== '.' && n !== '..');
    if (!(await exists(OBJECTS_DIR))) return;
    for (const name of await names(OBJECTS_DIR)) {
      const digest = digestOfName(name);
      const a = digest && (await exists(objectPath(name)));
      if (digest && a) this.index.add({ name, digest, ino: a.ino, size: a.size });
    }
    if (await exists(PAGES_DIR)) {
      for (const name of await names(PAGES_DIR)) {
        const a = await exists(pageTablePath(name));
        if (a) this.index.protect(a.ino);
      }
    }
    if (await exists(TMP_DIR)) {
      for (const name of await names(TMP_DIR)) await f.unlink(`${TMP_DIR}/${name}`).catch(() => undefined);
    }
    if (this.index.size) this.log(`page cache: ${this.index.size} published objects`);
  }

  /**
   * The files the store marks unexamined (src/store/store.ts, "files to examine"): written
   * offline (`get`, `seed`, an older version), mirrored lazily and not yet whole, or committed
   * just before a daemon was killed. Looked at in the background: only those whose chunks are
   * all here (a lazily mirrored file is not fetched for this; it stays marked). Reading every
   * inode instead took 5-6 s of the daemon's time after each mount of a 50,000-file store.
   */
  private async queueExisting(): Promise<void> {
    const store = this.o.store;
    const marked = store.unexaminedInodes();
    if (!marked) return this.log('page cache: this store keeps no list of files to examine');
    let n = 0;
    for (const ino of marked) {
      if (this.closed) return;
      const rec = store.getInode(ino);
      if (rec && isReg(rec) && rec.size >= TRAILER_SIZE && !this.index.isProtected(ino)) this.publisher.enqueue(ino);
      else this.looked(ino, store.examinationMark(ino));
      if (++n % 256 === 0) await new Promise((r) => setImmediate(r));
    }
  }

  lookAgain(): void {
    if (this.closed) return;
    this.existing = this.existing.then(() => this.queueExisting()).catch((err) => this.log(`page cache: looking for slinked files failed: ${(err as Error).message}`));
  }

  /**
   * A file was looked at (`mark`: its examinationMark from before the look). Its mark leaves
   * the store with those of other files a second later, in one transaction, not one each.
   */
  private looked(ino: number, mark: number): void {
    if (this.settledForGood) return;
    this.lookedAt.set(ino, mark);
    if (this.lookedAt.size >= LOOKED_BATCH) void this.settleLooked();
    else if (!this.lookedTimer) {
      this.lookedTimer = setTimeout(() => void this.settleLooked(), LOOKED_DELAY_MS);
      this.lookedTimer.unref();
    }
  }

  /** Clears the marks of the files looked at so far; settles after every earlier call did. */
  private settleLooked(): Promise<void> {
    this.settling = this.settling.then(() => this.settleBatch());
    return this.settling;
  }

  private async settleBatch(): Promise<void> {
    if (this.lookedTimer) clearTimeout(this.lookedTimer);
    this.lookedTimer = undefined;
    if (this.lookedAt.size === 0) return;
    const batch = new Map(this.lookedAt);
    this.lookedAt.clear();
    // A failure only leaves the marks: those files are looked at again at the next start.
    await this.o.store.txn(() => this.o.store.settleExamination(batch)).catch((err) => this.log(`page cache: clearing examined files failed: ${(err as Error).message}`));
  }

  async idle(): Promise<void> {
    await this.existing;
    await this.publisher.idle();
    await this.settleLooked();
  }

  private scheduleScan(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.scan().then(() => this.pool.trimTo(this.pool.limitBytes), () => undefined);
    }, Math.max(0, SCAN_INTERVAL_MS - (Date.now() - this.scannedAt)));
    this.timer.unref();
  }

  /**
   * Re-reads every process's mappings of published objects and updates the references. A call
   * during a scan gets the next one (started after it), shared with the other calls meanwhile.
   */
  private scan(): Promise<void> {
    if (this.scanning) {
      this.nextScan ??= this.scanning.catch(() => undefined).then(() => {
        this.nextScan = undefined;
        return this.scan();
      });
      return this.nextScan;
    }
    this.scanning = (async () => {
      try {
        this.device ??= mapsDeviceOf(await fs.promises.readFile('/proc/self/mountinfo', 'utf8'), this.o.mountpoint);
        this.processes = this.device ? await scanProcesses(this.device, (ino) => this.index.isObject(ino)) : new Map();
        this.scannedAt = Date.now();
        const refs = new Map<string, number>();
        for (const maps of this.processes.values()) {
          for (const key of pageKeysOf(maps, this.index)) refs.set(key, (refs.get(key) ?? 0) + 1);
        }
        this.pool.setReferences(refs);
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  async stats(): Promise<PageCacheStats> {
    // Always a fresh scan: a process that exited a moment ago must not be counted.
    await this.scan();
    const perObject = new Map<number, { procs: number; pages: Map<number, number> }>();
    for (const maps of this.processes.values()) {
      const seen = new Map<number, Set<number>>();
      for (const m of maps) {
        let s = seen.get(m.ino);
        if (!s) seen.set(m.ino, (s = new Set()));
        const e = this.index.get(m.ino);
        const limit = e ? Math.ceil(e.size / PAGE) : m.firstPage + m.pages;
        for (let p = m.firstPage; p < Math.min(limit, m.firstPage + m.pages); p++) s.add(p);
      }
      for (const [ino, pages] of seen) {
        let o = perObject.get(ino);
        if (!o) perObject.set(ino, (o = { procs: 0, pages: new Map() }));
        o.procs++;
        for (const p of pages) o.pages.set(p, (o.pages.get(p) ?? 0) + 1);
      }
    }
    let bytesShared = 0;
    const objects: ObjectStats[] = [];
    for (const e of this.index.all()) {
      const o = perObject.get(e.ino);
      let shared = 0;
      for (const k of o?.pages.values() ?? []) if (k > 1) (shared++, (bytesShared += (k - 1) * PAGE));
      objects.push({
        name: e.name,
        ino: e.ino,
        size: e.size,
        pages: Math.ceil(e.size / PAGE),
        codePages: e.table ? e.table.flags.reduce((n, f) => n + (f === PAGE_CODE ? 1 : 0), 0) : -1,
        mappings: o?.procs ?? 0,
        mappedPages: o?.pages.size ?? 0,
        sharedPages: shared,
        ...(e.twin ? { twin: e.twin } : {}),
      });
    }
    objects.sort((a, b) => b.mappings - a.mappings || b.mappedPages - a.mappedPages || a.name.localeCompare(b.name));
    return {
      gdt: { ...this.pool.counters, entries: this.pool.entries, bytes: this.pool.bytes, limitBytes: this.pool.limitBytes, referencedEntries: this.pool.referencedEntries },
      bytesShared,
      processes: this.processes.size,
      scannedAt: this.scannedAt ? new Date(this.scannedAt).toISOString() : null,
      published: { ...this.publisher.counters, objects: this.index.size },
      objects,
      fastPath: this.session?.fastPath ?? { opens: 0, flushes: 0, releases: 0, immutable: 0, passthroughOpens: 0, passthrough: false, getattrs: 0 },
      twins: { objects: this.index.twinCount(), pending: this.backing?.pending ?? 0, unused: this.backing?.unused ?? 0 },
      daemon: (({ rss, heapUsed, external, arrayBuffers }) => ({ rss, heapUsed, external, arrayBuffers }))(process.memoryUsage()),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.existing;
    await this.backing?.close();
    if (this.timer) clearTimeout(this.timer);
    await this.closeSocket();
    await this.publisher.stop();
    await this.settleLooked();
    this.settledForGood = true;
  }
}

/** Pool keys of the pages one process maps (each once, whatever its number of mappings). */
function pageKeysOf(maps: readonly Mapping[], index: ObjectIndex): Set<string> {
  const keys = new Set<string>();
  for (const m of maps) {
    const t = index.get(m.ino)?.table;
    if (!t) continue;
    for (let p = m.firstPage; p < Math.min(t.pageCount, m.firstPage + m.pages); p++) keys.add(pageKey(t, p));
  }
  return keys;
}

export function createPageCache(options: PageCacheOptions): PageCache {
  return new SharedPageCache(options);
}
