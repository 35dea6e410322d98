// src/store: the LMDB store behind the filesystem. One LMDB environment holds its databases
// (see docs/FORMAT.md, "Store"): inodes, directory entries and each directory's name, extended
// attributes, file recipes as extent maps, chunk reference records, chunk bytes, orphans and the
// compression queue. Every filesystem change the daemon acknowledges is one call to
// Store.txn(): an LMDB child transaction, so a crash or an exception leaves the previous or the
// new state, never a mix. Reads are synchronous (LMDB reads are memory-mapped and take
// microseconds). Writes are group-committed: the changes asked for in one turn of the event loop
// share one LMDB transaction, committed on this thread at the end of the turn (see txn()).
import fs from 'node:fs';
import path from 'node:path';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { asDigest, type Digest, DEFAULT_ALGORITHM } from '../chunking/digest';
import {
  type ChunkRef,
  CODEC_ABSENT,
  type Extent,
  type Run,
  runEnd,
  type InodeRecord,
  type Ino,
  ROOT_INO,
  S_IFDIR,
  decodeChunkRef,
  isDir,
  isReg,
  decodeExtent,
  decodeInode,
  direntKey,
  encodeChunkRef,
  encodeExtentValue,
  encodeInode,
  extentKey,
  inoKey,
  readIno,
} from './records';
import { CorruptStoreError, InvalidError, StoreError, StoreFullError, isSpaceError } from './errors';
import { decodeName } from './names';
import { checkDataTree } from './dataTree';
import { checkDataFile } from './dataFile';
import { forgetCleanClose, recordCleanClose, unchangedSinceCleanClose } from './cleanClose';
import { HOLE_CHUNK_LENGTH, isHoleChunk } from '../chunking/zeros';
import { makeDirs } from './dirs';

/**
 * Format 2 may hold run records in `extents` (docs/FORMAT.md, "Recipes"); format 1 does not. A
 * format 1 store stays format 1 until the first run is written into it, so an older slinkyfs
 * refuses a store it would misread, and keeps reading one it would not.
 */
export const STORE_FORMAT_VERSION = 2;
const READABLE_FORMATS = [1, 2];
/** `meta` key set once the directory parent index (`dirparents`) covers every directory. */
const PARENTS_INDEXED = 'dirparentsIndexed';
const HOLES_INDEXED = 'holesIndexed';
/** `meta` key set once `unexamined` holds every file whose content changed since it was looked at. */
const EXAMINE_INDEXED = 'unexaminedIndexed';

export interface StoreOptions {
  readOnly?: boolean;
  /** Upper bound on the database file in bytes; writes beyond it fail with StoreFullError. */
  maxBytes?: number;
  /**
   * Let LMDB flush every commit to disk itself (safe across a power cut at any instant, slower)
   * instead of acknowledging on write and flushing shortly behind (the default).
   */
  syncEveryCommit?: boolean;
  /**
   * How long the background flush waits after a commit before it starts (default
   * DEFAULT_FLUSH_DELAY_MS; 0: at once). An acknowledged change reaches the disk within this
   * delay plus one flush; fsync(2) never waits for it.
   */
  flushDelayMs?: number;
  /**
   * Walk every page even when the file is as a clean close left it (verify does): by default
   * such a file gets only the meta-page check (src/store/cleanClose.ts).
   */
  checkEveryPage?: boolean;
}

/** What Store.open checked of the database file before LMDB mapped it. */
export type PageCheck = { kind: 'walked'; pages: number; ms: number } | { kind: 'unchanged since a clean close' };

/**
 * The background flush's delay after a commit. Flushing right behind every commit kept an
 * fdatasync running during a whole copy, and each one wrote back B-tree pages that the next
 * commits dirtied again: `cp -a /usr/bin` into a fresh mount took 3.39-3.53 s and 466-493 CPU
 * ticks with it, 2.69-3.25 s and 348-425 ticks with this delay (four alternating rounds;
 * README, "Durability", has five more). The price: a power cut may lose the changes of the last
 * fifth of a second or so (and, unsynced as before, may damage the store: verify tells), as
 * with PostgreSQL's asynchronous commit (wal_writer_delay, 200 ms). `kill -9` of the daemon
 * still loses nothing, and --sync-every-commit nothing at all.
 */
export const DEFAULT_FLUSH_DELAY_MS = 200;

export interface StoreFormat {
  format: number;
  hashAlgorithm: string;
  chunker: { name: string; windowSize: number; minSize: number; maxSize: number; maskBits: number; polynomial: string };
  createdMs: number;
}

/** Encoded chunk bytes as they sit in the chunks database. */
export interface StoredChunk {
  codec: number;
  data: Buffer;
  /** Stored raw for now; the compactor compresses it when the mount is idle. */
  compressLater?: boolean;
}

const EMPTY = Buffer.alloc(0);

interface BatchedChange<T> {
  fn: () => T;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/** The commit of a batch failed: every change in it is lost, whatever its own outcome. */
class CommitError extends Error {
  constructor(readonly failure: unknown) {
    super((failure as Error)?.message ?? String(failure));
  }
}

/** Free disk space kept back so metadata-only changes (unlink, rename) still commit on a full disk. */
const DISK_RESERVE = 2 << 20;

export class Store {
  private constructor(
    readonly dir: string,
    private readonly env: RootDatabase<Buffer, Buffer>,
    private readonly meta: Database<Buffer, string>,
    private readonly inodes: Database<Buffer, Buffer>,
    private readonly dirents: Database<Buffer, Buffer>,
    private readonly extentsDb: Database<Buffer, Buffer>,
    private readonly chunkRefs: Database<Buffer, Buffer>,
    private readonly chunks: Database<Buffer, Buffer>,
    private readonly orphans: Database<Buffer, Buffer>,
    private readonly compressQueue: Database<Buffer, Buffer>,
    /** Each directory's name: dir ino -> its dirents key (parent ino ‖ name). Absent in a store
     *  that an older slinkyfs wrote and that is open read-only (findParent then scans). */
    private readonly dirParents: Database<Buffer, Buffer> | undefined,
    /** Extended attributes: ino ‖ name -> value. Absent read-only in a store from before them. */
    private readonly xattrs: Database<Buffer, Buffer> | undefined,
    /** Bytes of each file in records of the maximal zero chunk (its holes): ino -> u64 LE. Absent
     *  read-only in a store from before it (every file then counts as having no holes). */
    private readonly holes: Database<Buffer, Buffer> | undefined,
    /** Files whose content changed since the page cache last looked for a slinky trailer in
     *  them: ino -> empty. Absent read-only in a store from before it. */
    private readonly unexamined: Database<Buffer, Buffer> | undefined,
    readonly options: StoreOptions,
  ) {}

  /** What open checked of the database file (the daemon logs it). */
  pageCheck: PageCheck = { kind: 'walked', pages: 0, ms: 0 };

  static async open(dir: string, options: StoreOptions = {}): Promise<Store> {
    const dbDir = path.join(dir, 'db');
    if (options.readOnly && !fs.existsSync(path.join(dbDir, 'data.mdb'))) {
      throw new StoreError(`no slinkyfs store at ${dir}`);
    }
    await makeDirs(dbDir);
    // Every B-tree page LMDB would follow is read first (src/store/dataTree.ts): a damaged page is
    // CorruptStoreError here instead of a crash inside LMDB. ~0.1 s hot for a store holding
    // /usr/bin, 1.4-1.7 s cold for 45,000 chunks; skipped for a file a clean close vouches for.
    const file = path.join(dbDir, 'data.mdb');
    let pageCheck: PageCheck;
    if (!options.checkEveryPage && (await unchangedSinceCleanClose(dbDir))) {
      await checkDataFile(file, !options.readOnly);
      pageCheck = { kind: 'unchanged since a clean close' };
    } else {
      const started = performance.now();
      const pages = await checkDataTree(file, !options.readOnly);
      pageCheck = { kind: 'walked', pages, ms: performance.now() - started };
    }
    if (!options.readOnly) await forgetCleanClose(dbDir);
    let env: RootDatabase<Buffer, Buffer>;
    try {
      env = openLmdb<Buffer, Buffer>({
        path: dbDir,
        maxDbs: 16,
        readOnly: options.readOnly ?? false,
        encoding: 'binary',
        keyEncoding: 'binary',
        // Values are our own binary records; lmdb-js's shared structures and cache add nothing.
        cache: false,
        // Durability policy (see the README): by default a commit is acknowledged once written
        // to the operating system (it survives the daemon being killed) and Store flushes the
        // file to disk shortly behind it (flushLater); fsync(2) flushes at once and waits.
        // LMDB's own per-commit sync costs 1-3 ms per acknowledged change on these machines,
        // against ~0.3 ms without it.
        ...(options.syncEveryCommit ? { separateFlushed: true } : { noSync: true }),
      });
    } catch (err) {
      throw new StoreError(`cannot open store at ${dir}: ${(err as Error).message}`);
    }
    const db = (name: string) => env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary', cache: false });
    const meta = env.openDB<Buffer, string>({ name: 'meta', encoding: 'binary', keyEncoding: 'ordered-binary', cache: false });
    // Read-only, a store from before these databases existed may not have them.
    const later = (name: string): Database<Buffer, Buffer> | undefined => {
      try {
        return db(name);
      } catch (err) {
        if (!options.readOnly) throw new StoreError(`cannot open store at ${dir}: ${(err as Error).message}`);
        return undefined;
      }
    };
    const store = new Store(
      dir, env, meta, db('inodes'), db('dirents'), db('extents'), db('chunkrefs'), db('chunks'), db('orphans'), db('compressq'),
      later('dirparents'), later('xattrs'), later('holes'), later('unexamined'), options,
    );
    store.pageCheck = pageCheck;
    if (!options.readOnly) await store.initialise();
    else store.checkFormat();
    return store;
  }

  private checkFormat(): StoreFormat {
    const raw = this.meta.get('format');
    if (!raw) throw new CorruptStoreError(`${this.dir} is not a slinkyfs store (no format record)`);
    const f = JSON.parse(raw.toString('utf8')) as StoreFormat;
    if (!READABLE_FORMATS.includes(f.format)) {
      throw new CorruptStoreError(`store format ${f.format} is not supported (this slinkyfs reads formats ${READABLE_FORMATS.join(' and ')})`);
    }
    return f;
  }

  private async initialise(): Promise<void> {
    if (this.meta.get('format')) {
      this.checkFormat();
      await this.indexParents();
      await this.indexHoles();
      await this.indexUnexamined();
      return;
    }
    const { LBFS_PARAMS } = await import('../chunking/chunker');
    const now = Date.now();
    const format: StoreFormat = {
      format: STORE_FORMAT_VERSION,
      hashAlgorithm: DEFAULT_ALGORITHM,
      chunker: {
        name: 'rabin-lbfs',
        windowSize: LBFS_PARAMS.windowSize,
        minSize: LBFS_PARAMS.minSize,
        maxSize: LBFS_PARAMS.maxSize,
        maskBits: LBFS_PARAMS.maskBits,
        polynomial: `0x${LBFS_PARAMS.polynomial.toString(16)}`,
      },
      createdMs: now,
    };
    await this.txn(() => {
      if (this.meta.get('format')) return;
      this.meta.put('format', Buffer.from(JSON.stringify(format)));
      this.putInode({ ino: ROOT_INO, mode: S_IFDIR | 0o755, uid: 0, gid: 0, nlink: 2, size: 0, atimeMs: now, mtimeMs: now, ctimeMs: now, target: '' });
      this.setCounter('nextIno', ROOT_INO + 1);
      this.meta.put(PARENTS_INDEXED, Buffer.from('1'));
      this.meta.put(HOLES_INDEXED, Buffer.from('1'));
      this.meta.put(EXAMINE_INDEXED, Buffer.from('1'));
    });
  }

  /**
   * Build, once, a database that a store written before it existed lacks: one pass, in one
   * transaction, then the `mark` that says writers keep it current from then on.
   */
  private async buildOnce(mark: string, build: () => void): Promise<void> {
    if (this.meta.get(mark)) return;
    await this.txn(() => {
      if (this.meta.get(mark)) return;
      build();
      this.meta.put(mark, Buffer.from('1'));
    });
  }

  /** Each directory's name, from the directory entries. Writers keep it (addEntry, removeEntry). */
  private indexParents(): Promise<void> {
    return this.buildOnce(PARENTS_INDEXED, () => {
      for (const { key, value } of this.dirents.getRange({})) {
        const rec = this.getInode(readIno(value));
        if (rec && isDir(rec)) this.dirParents!.put(inoKey(rec.ino), Buffer.from(key));
      }
    });
  }

  /** Each file's hole bytes, from the recipes. Writers keep them (putExtent, removeExtent). */
  private indexHoles(): Promise<void> {
    return this.buildOnce(HOLES_INDEXED, () => {
      for (const [ino, bytes] of this.countHoles()) this.holes!.put(inoKey(ino), u64(bytes));
    });
  }

  /**
   * Every regular file is unexamined. Writers mark the files they change (putExtent,
   * removeExtent), and the page cache clears the marks.
   */
  private indexUnexamined(): Promise<void> {
    return this.buildOnce(EXAMINE_INDEXED, () => {
      for (const { key, value } of this.inodes.getRange({})) {
        if (isReg(decodeInode(readIno(key), value))) this.unexamined!.put(key, EMPTY);
      }
    });
  }

  /** Hole bytes of every file that has some, from its records (what `holes` must hold). */
  countHoles(): Map<Ino, number> {
    const out = new Map<Ino, number>();
    for (const { ino, extent: r } of this.allExtents()) {
      if (isHoleChunk(r.length, r.digest)) out.set(ino, (out.get(ino) ?? 0) + r.length * r.count);
    }
    return out;
  }

  get format(): StoreFormat {
    return this.checkFormat();
  }

  // ---- transactions -------------------------------------------------------------------------

  /**
   * Run `fn` as one atomic change. `fn` is synchronous and may throw: its writes are then rolled
   * back (a child transaction) and the promise rejects. `newBytes` is an estimate of the space
   * the change adds, checked against the size limit before anything is written. The promise
   * resolves once the change is committed.
   *
   * Group commit: every change asked for in one turn of the event loop (a burst of FUSE requests
   * is dispatched in one turn) joins one LMDB transaction, each in its own child transaction,
   * committed at the end of the turn. By default that commit runs right here, synchronously:
   * LMDB opened without sync writes its pages into the operating system's page cache and waits
   * for no disk (Store flushes to disk shortly behind, off this thread; see flushLater()): 9 us when
   * nothing was written, 67 us for one new chunk. Handed to lmdb-js's writer thread instead, the
   * same commits took 111 and 248 us on these virtual machines, two thread wake-ups more
   * (bench/commitLatency.ts), and every acknowledged create and close waited for them. With
   * syncEveryCommit the commit waits for the disk, so it stays on lmdb-js's writer thread.
   */
  async txn<T>(fn: () => T, newBytes = 0): Promise<T> {
    if (this.options.readOnly) throw new StoreError('store is open read-only');
    this.inflight++;
    try {
      return await this.commitChange(fn, newBytes);
    } finally {
      if (--this.inflight === 0) for (const wake of this.drained.splice(0)) wake();
    }
  }

  /** txn() calls not yet answered, and close() calls waiting for there to be none. */
  private inflight = 0;
  private drained: Array<() => void> = [];

  private async commitChange<T>(fn: () => T, newBytes: number): Promise<T> {
    this.checkSpace(newBytes);
    await this.checkDiskSpace(newBytes);
    try {
      const result = this.options.syncEveryCommit
        ? await this.env.transaction(() => this.env.childTransaction(this.asChange(fn)) as T)
        : await this.inBatch(fn);
      this.committed();
      return result;
    } catch (err) {
      // lmdb-js attaches a second, separately rejected promise to failed commits: claim it so
      // it cannot surface as an unhandled rejection and take the daemon down.
      const commitError = (err as { commitError?: Promise<unknown> }).commitError;
      if (commitError && typeof commitError.catch === 'function') commitError.catch(() => undefined);
      const failedCommit = commitError !== undefined || err instanceof CommitError;
      if (failedCommit) this.commitFailed = true;
      if (isSpaceError(err) || (failedCommit && (await this.diskIsLow(newBytes)))) {
        throw new StoreFullError(`store is full: ${(err as Error).message}`);
      }
      throw err instanceof CommitError ? err.failure : err;
    }
  }

  /** Each change (a child transaction) has a number of its own: see contentChanged. */
  private changeNumber = 0;
  private asChange<T>(fn: () => T): () => T {
    return () => {
      this.changeNumber++;
      return fn();
    };
  }

  /** Changes waiting for the commit at the end of this turn of the event loop. */
  private batch: Array<BatchedChange<unknown>> = [];

  private inBatch<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.batch.length === 0) setImmediate(() => this.commitBatch());
      this.batch.push({ fn, resolve, reject } as BatchedChange<unknown>);
    });
  }

  /**
   * Commit the changes of this turn as one LMDB transaction. A change that throws is rolled back
   * alone (its child transaction) and its caller gets the error; a commit that fails (full disk,
   * full map) fails every change in it, wrapped in CommitError so txn() can tell the two apart.
   */
  private commitBatch(): void {
    const batch = this.batch;
    this.batch = [];
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      this.env.transactionSync(() => {
        for (const change of batch) {
          try {
            outcomes.push({ ok: true, value: this.env.childTransaction(this.asChange(change.fn)) });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      this.commitFailed = true;
      for (const change of batch) change.reject(new CommitError(error));
      return;
    }
    batch.forEach((change, i) => {
      const o = outcomes[i];
      if (o.ok) change.resolve(o.value);
      else change.reject(o.error);
    });
  }

  private diskFree = { bytes: Number.MAX_SAFE_INTEGER, atMs: 0 };

  /** Free bytes on the store's filesystem, refreshed at most twice a second. */
  private async freeDiskBytes(): Promise<number> {
    const now = Date.now();
    if (now - this.diskFree.atMs > 500) {
      const s = await fs.promises.statfs(this.dir).catch(() => undefined);
      this.diskFree = { bytes: s ? s.bavail * s.bsize : Number.MAX_SAFE_INTEGER, atMs: now };
    }
    return this.diskFree.bytes;
  }

  private async diskIsLow(newBytes: number): Promise<boolean> {
    this.diskFree.atMs = 0;
    return (await this.freeDiskBytes()) < DISK_RESERVE + 2 * newBytes;
  }

  /**
   * LMDB is copy-on-write: a commit needs room for new pages before old ones are freed. Refuse a
   * change up front when the disk cannot take it (plus a reserve), rather than fail mid-commit.
   */
  private async checkDiskSpace(newBytes: number): Promise<void> {
    if (newBytes === 0) return;
    const free = await this.freeDiskBytes();
    if (free < DISK_RESERVE + 2 * newBytes) {
      this.diskFree.atMs = 0; // look again next time: space may have been freed
      throw new StoreFullError(`store is full: ${free} bytes free on the disk under ${this.dir}`);
    }
    this.diskFree.bytes -= newBytes;
  }

  /** Resolves once every committed change is on stable storage (fsync). */
  async flushed(): Promise<void> {
    if (this.options.syncEveryCommit || this.options.readOnly) {
      await this.env.flushed;
      return;
    }
    // A flush that started before our last commit does not cover it: wait and flush again.
    const since = this.commits;
    while (this.flushedCommits < since) await this.flushNow();
  }

  private commits = 0;
  private flushedCommits = 0;
  private flushing: Promise<void> | undefined;
  /** The background flush waiting out its delay. */
  private flushTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private dataFile: fs.promises.FileHandle | undefined;

  /** Commits made, and how many of them are known to be on stable storage. */
  durability(): { commits: number; flushed: number } {
    return { commits: this.commits, flushed: this.flushedCommits };
  }

  /** fdatasync the database file; concurrent callers share one flush. */
  private flushNow(): Promise<void> {
    this.flushing ??= (async () => {
      try {
        const upTo = this.commits;
        this.dataFile ??= await fs.promises.open(path.join(this.dir, 'db', 'data.mdb'), 'r');
        await this.dataFile.datasync();
        this.flushedCommits = Math.max(this.flushedCommits, upTo);
      } finally {
        this.flushing = undefined;
        // commits that landed during this flush get the next one
        if (this.commits > this.flushedCommits) this.flushLater();
      }
    })();
    return this.flushing;
  }

  /** After a commit: flush shortly behind it, off the event loop, coalescing bursts. */
  private committed(): void {
    this.commits++;
    this.flushLater();
  }

  private flushLater(): void {
    if (this.options.syncEveryCommit || this.flushing || this.flushTimer || this.closing) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      if (this.commits > this.flushedCommits) void this.flushNow().catch(() => undefined);
    }, this.options.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS);
  }

  /**
   * The id of the last committed LMDB transaction. Concurrent txn() calls share transactions
   * (lmdb-js runs every callback queued before a commit starts in one LMDB transaction, each in
   * its own child transaction), so this counts commits, not changes.
   */
  lastTransactionId(): number {
    return (this.env.getStats() as { lastTxnId: number }).lastTxnId;
  }

  /**
   * Bytes of the database file in pages no database holds: free, or freed and waiting for reuse
   * (raw chunks compressed later leave theirs). LMDB reuses them but never shrinks the file;
   * `gc` (compactFile) gives them back. From the page counts LMDB keeps in each tree's record.
   */
  freeBytes(): number {
    type TreeStats = { treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
    const pages = (t: TreeStats) => t.treeBranchPageCount + t.treeLeafPageCount + t.overflowPages;
    const env = this.env.getStats() as { root: TreeStats; free: TreeStats; pageSize: number; lastPageNumber: number };
    let used = 2 + pages(env.root) + pages(env.free); // the two meta pages, the database of databases, the free list
    const named = [this.meta, this.inodes, this.dirents, this.extentsDb, this.chunkRefs, this.chunks, this.orphans, this.compressQueue, this.dirParents, this.xattrs, this.holes, this.unexamined];
    for (const db of named) if (db) used += pages(db.getStats() as TreeStats);
    return Math.max(0, env.lastPageNumber + 1 - used) * env.pageSize;
  }

  /** Bytes the database file occupies up to its highest used page. */
  usedBytes(): number {
    const s = this.env.getStats() as { pageSize: number; lastPageNumber: number };
    return (s.lastPageNumber + 1) * s.pageSize;
  }

  private checkSpace(newBytes: number): void {
    const max = this.options.maxBytes;
    if (max && this.usedBytes() + newBytes > max) {
      throw new StoreFullError(`store is full: ${this.usedBytes() + newBytes} bytes needed, limit ${max}`);
    }
  }

  /**
   * Rewrite the database file without its free pages (LMDB never shrinks a file by itself; raw
   * chunks compressed later leave their old pages free). Closes the store: open it again to go
   * on. Only safe with no other process using the store (gc checks the daemon lock).
   */
  async compactFile(): Promise<{ beforeBytes: number; afterBytes: number }> {
    const dbDir = path.join(this.dir, 'db');
    const tmp = path.join(this.dir, 'db.compacting');
    await fs.promises.rm(tmp, { recursive: true, force: true });
    await fs.promises.mkdir(tmp);
    const beforeBytes = (await fs.promises.stat(path.join(dbDir, 'data.mdb'))).size;
    await this.flushed();
    await (this.env as unknown as { backup(p: string, compact: boolean): Promise<void> }).backup(tmp, true);
    await this.close();
    const fh = await fs.promises.open(path.join(tmp, 'data.mdb'), 'r');
    await fh.datasync();
    await fh.close();
    // rename(2) replaces the old file atomically: a crash leaves one whole database or the other.
    await fs.promises.rename(path.join(tmp, 'data.mdb'), path.join(dbDir, 'data.mdb'));
    await fs.promises.rm(tmp, { recursive: true, force: true });
    // LMDB wrote the copy from pages this store walked (or a clean close vouched for) as it
    // opened. Without the record the next open walks: the compaction stands either way.
    await recordCleanClose(dbDir).catch(() => undefined);
    const afterBytes = (await fs.promises.stat(path.join(dbDir, 'data.mdb'))).size;
    return { beforeBytes, afterBytes };
  }

  async close(): Promise<void> {
    // A change already asked for is committed (or refused) before the environment closes.
    while (this.inflight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    this.closing = true;
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const flushed = this.options.readOnly ? false : await this.flushed().then(() => true, () => false);
    await this.dataFile?.close().catch(() => undefined);
    await this.env.close();
    // Only a writer whose every commit went through and reached the disk vouches for the file.
    if (flushed && !this.commitFailed) await recordCleanClose(path.join(this.dir, 'db')).catch(() => undefined);
  }

  /** A commit failed during this session (full disk or map, or worse): no clean-close record. */
  private commitFailed = false;

  // ---- counters -----------------------------------------------------------------------------

  private getCounter(name: string): number {
    const raw = this.meta.get(name);
    return raw ? Number(raw.readBigUInt64LE(0)) : 0;
  }
  private setCounter(name: string, value: number): void {
    this.meta.put(name, u64(value));
  }

  /** A fresh inode number (inside txn). Numbers are never reused, so stale handles cannot alias. */
  allocIno(): Ino {
    const ino = this.getCounter('nextIno');
    this.setCounter('nextIno', ino + 1);
    return ino;
  }

  // ---- inodes -------------------------------------------------------------------------------

  getInode(ino: Ino): InodeRecord | undefined {
    const raw = this.inodes.getBinary(inoKey(ino));
    return raw ? decodeInode(ino, raw) : undefined;
  }

  putInode(rec: InodeRecord): void {
    this.inodes.put(inoKey(rec.ino), encodeInode(rec));
  }

  removeInode(ino: Ino): void {
    this.inodes.remove(inoKey(ino));
    this.holes?.remove(inoKey(ino));
    this.unexamined?.remove(inoKey(ino));
    this.orphans.remove(inoKey(ino));
    // Its attributes go by key: their names need no decoding.
    if (this.xattrs) for (const key of this.xattrs.getKeys({ start: inoKey(ino), end: inoKey(ino + 1) })) this.xattrs.remove(key);
  }

  // ---- extended attributes ------------------------------------------------------------------

  getXattr(ino: Ino, name: string): Buffer | undefined {
    return this.xattrs?.getBinary(direntKey(ino, name));
  }

  /** Set one attribute (inside txn). */
  setXattr(ino: Ino, name: string, value: Uint8Array): void {
    if (!this.xattrs) throw new StoreError('store is open read-only');
    this.xattrs.put(direntKey(ino, name), Buffer.from(value.buffer, value.byteOffset, value.length));
  }

  /** Remove one attribute (inside txn); false if it was not there. */
  removeXattr(ino: Ino, name: string): boolean {
    const key = direntKey(ino, name);
    if (!this.xattrs?.doesExist(key)) return false;
    this.xattrs.remove(key);
    return true;
  }

  /** Names of an inode's attributes, in byte order. */
  xattrNames(ino: Ino): string[] {
    if (!this.xattrs) return [];
    const out: string[] = [];
    for (const key of this.xattrs.getKeys({ start: inoKey(ino), end: inoKey(ino + 1) })) out.push(decodeName(key, 8));
    return out;
  }

  *allInodes(): Generator<InodeRecord> {
    for (const { key, value } of this.inodes.getRange({})) yield decodeInode(readIno(key), value);
  }

  /** Inodes with no name left but still open; removed when closed or at the next mount. */
  markOrphan(ino: Ino): void {
    this.orphans.put(inoKey(ino), EMPTY);
  }
  unmarkOrphan(ino: Ino): void {
    this.orphans.remove(inoKey(ino));
  }
  orphanInodes(): Ino[] {
    return Array.from(this.orphans.getKeys({}), (k) => readIno(k));
  }

  // ---- directories --------------------------------------------------------------------------

  lookup(parent: Ino, name: string): Ino | undefined {
    const raw = this.dirents.getBinary(direntKey(parent, name));
    return raw ? readIno(raw) : undefined;
  }

  /** Add a name (inside txn). A directory's inode must be stored first: its name is indexed. */
  addEntry(parent: Ino, name: string, ino: Ino): void {
    const key = direntKey(parent, name);
    this.dirents.put(key, inoKey(ino));
    const rec = this.getInode(ino);
    if (rec && isDir(rec)) this.dirParents?.put(inoKey(ino), key);
  }

  removeEntry(parent: Ino, name: string): void {
    const key = direntKey(parent, name);
    const child = this.dirents.getBinary(key);
    this.dirents.remove(key);
    if (!child || !this.dirParents) return;
    const back = this.dirParents.getBinary(child);
    if (back && key.equals(back)) this.dirParents.remove(child);
  }

  /** Entries of a directory in byte order of their names. */
  *entries(parent: Ino): Generator<{ name: string; ino: Ino }> {
    const start = inoKey(parent);
    const end = inoKey(parent + 1);
    for (const { key, value } of this.dirents.getRange({ start, end })) {
      yield { name: decodeName(key, 8), ino: readIno(value) };
    }
  }

  /**
   * The directory holding directory `dirIno` (directories have exactly one name). The index
   * answers with two reads; a record that does not check out against the entry it names (a
   * store an older slinkyfs changed after the index was built) falls back to scanning every
   * entry, which is also the answer in a read-only store without the index.
   */
  findParent(dirIno: Ino): Ino | undefined {
    const want = inoKey(dirIno);
    const back = this.dirParents?.getBinary(want);
    if (back) {
      const named = this.dirents.getBinary(back);
      if (named && want.equals(named)) return readIno(back);
    }
    for (const { key, value } of this.dirents.getRange({})) {
      if (want.equals(value)) return readIno(key);
    }
    return undefined;
  }

  hasEntries(parent: Ino): boolean {
    for (const _ of this.dirents.getKeys({ start: inoKey(parent), end: inoKey(parent + 1), limit: 1 })) return true;
    return false;
  }

  // ---- recipes (extent maps) ----------------------------------------------------------------

  /**
   * Chunks of `ino` that overlap [from, to), in offset order; at most `limit` of them. A run
   * record gives only its chunks in the range (docs/FORMAT.md, "Recipes"): use runs() to walk a
   * whole recipe.
   */
  extents(ino: Ino, from = 0, to = Number.MAX_SAFE_INTEGER, limit = Number.MAX_SAFE_INTEGER): Extent[] {
    const out: Extent[] = [];
    for (const r of this.runs(ino, from, to, limit)) {
      let i = r.offset < from ? Math.floor((from - r.offset) / r.length) : 0;
      if (r.count === 1) {
        if (out.push({ offset: r.offset, length: r.length, digest: r.digest }) >= limit) break;
        continue;
      }
      for (; i < r.count; i++) {
        const offset = r.offset + i * r.length;
        if (offset >= to || out.push({ offset, length: r.length, digest: r.digest }) >= limit) break;
      }
      if (out.length >= limit) break;
    }
    return out;
  }

  /** The `extents` records of `ino` that overlap [from, to), in offset order; at most `limit`. */
  runs(ino: Ino, from = 0, to = Number.MAX_SAFE_INTEGER, limit = Number.MAX_SAFE_INTEGER): Run[] {
    const out: Run[] = [];
    // The record holding `from` starts at or before it: find it with one reverse step.
    let start = extentKey(ino, from);
    // (reverse ranges exclude `end`: the bare 8-byte inode key sorts before all of its extents)
    for (const { key } of this.extentsDb.getRange({ start, end: inoKey(ino), reverse: true, limit: 1 })) {
      start = Buffer.from(key);
    }
    const end = to >= Number.MAX_SAFE_INTEGER ? inoKey(ino + 1) : extentKey(ino, to);
    for (const { key, value } of this.extentsDb.getRange({ start, end })) {
      const e = decodeExtent(key, value);
      if (runEnd(e) > from && out.push(e) >= limit) break;
    }
    return out;
  }

  /** True when a chunk of `ino` starts exactly at `offset` (a record's first or one inside a run). */
  hasExtentAt(ino: Ino, offset: number): boolean {
    if (this.extentsDb.doesExist(extentKey(ino, offset))) return true;
    const r = this.runs(ino, offset, offset + 1, 1)[0];
    return r !== undefined && r.count > 1 && r.offset <= offset && (offset - r.offset) % r.length === 0;
  }

  /** Write one record (inside txn): an extent, or a run of `count` identical chunks. */
  putExtent(ino: Ino, e: Extent & { count?: number }): void {
    const count = e.count ?? 1;
    if (count > 1) this.allowRuns();
    const key = extentKey(ino, e.offset);
    const holeBytes = isHoleChunk(e.length, e.digest) ? e.length * count : 0;
    this.addHoleBytes(ino, holeBytes - this.holeBytesAt(key));
    this.extentsDb.put(key, encodeExtentValue(e.length, e.digest, count));
    this.contentChanged(ino);
  }

  /** A run is about to be written (inside txn): a format 1 store becomes format 2 with it. */
  private allowRuns(): void {
    const f = this.checkFormat();
    if (f.format < 2) this.meta.put('format', Buffer.from(JSON.stringify({ ...f, format: 2 })));
  }

  /**
   * Remove one record (inside txn). The caller has just read it (every caller walks the records
   * it removes), so its hole bytes leave the count without a second read.
   */
  removeExtent(ino: Ino, record: Extent & { count?: number }): void {
    if (isHoleChunk(record.length, record.digest)) this.addHoleBytes(ino, -record.length * (record.count ?? 1));
    this.extentsDb.remove(extentKey(ino, record.offset));
    this.contentChanged(ino);
  }

  // ---- files to examine ---------------------------------------------------------------------
  // Every record put or removed marks its file unexamined in the same transaction, so the page
  // cache finds each file that may have become a slinked file (its last bytes are what
  // matters, and every change of content or length goes through putExtent or removeExtent)
  // without reading every inode at each mount, and a kill -9 loses no file to look at.
  // Marks of this process carry a generation (in memory) so that a look at older content
  // cannot take away the mark of a newer change (settleExamination).

  private examineGeneration = 0;
  private readonly markedAt = new Map<Ino, number>();
  /** The file last marked, and in which change: a commit puts hundreds of records of one file,
   *  and one mark per change is enough (a change rolled back takes its mark with it). */
  private lastMark = { ino: -1, change: -1 };

  private contentChanged(ino: Ino): void {
    if (!this.unexamined || (this.lastMark.ino === ino && this.lastMark.change === this.changeNumber)) return;
    this.unexamined.put(inoKey(ino), EMPTY);
    this.markedAt.set(ino, ++this.examineGeneration);
    this.lastMark = { ino, change: this.changeNumber };
  }

  /** The files marked unexamined; undefined in a store read-only from before the mark existed. */
  unexaminedInodes(): Ino[] | undefined {
    if (!this.unexamined || !this.meta.get(EXAMINE_INDEXED)) return undefined;
    return Array.from(this.unexamined.getKeys({}), (k) => readIno(k));
  }

  /** The generation of ino's latest mark (0: marked before this process opened the store, or never). */
  examinationMark(ino: Ino): number {
    return this.markedAt.get(ino) ?? 0;
  }

  /**
   * Clears the marks of files looked at (inside txn): each only if it was not marked again
   * after `mark` (from examinationMark, taken before the look). Returns how many went.
   */
  settleExamination(looked: ReadonlyMap<Ino, number>): number {
    if (!this.unexamined) return 0;
    let n = 0;
    for (const [ino, mark] of looked) {
      if ((this.markedAt.get(ino) ?? 0) !== mark) continue;
      this.markedAt.delete(ino);
      const key = inoKey(ino);
      if (!this.unexamined.doesExist(key)) continue;
      this.unexamined.remove(key);
      n++;
    }
    return n;
  }

  /**
   * Bytes of `ino` in records of the maximal zero chunk (HOLE_CHUNK_LENGTH zeros): its holes, as
   * SEEK_HOLE reports them and st_blocks leaves them out.
   */
  holeBytes(ino: Ino): number {
    const raw = this.holes?.getBinary(inoKey(ino));
    return raw && raw.length === 8 ? Number(raw.readBigUInt64LE(0)) : 0;
  }

  /** The `holes` counts are kept in this store (false read-only in a store from before them). */
  get holesCounted(): boolean {
    return this.holes !== undefined && this.meta.get(HOLES_INDEXED) !== undefined;
  }

  /** Hole bytes of the record at `key`, if there is one (a cheap length test comes first): what a put over it replaces. */
  private holeBytesAt(key: Buffer): number {
    if (!this.holes) return 0;
    // Most puts are of a new key, or of a record that is no hole: no copy of the value for those.
    const old = this.extentsDb.getBinaryFast(key);
    if (!old || old.length < 4 || old.readUInt32LE(0) !== HOLE_CHUNK_LENGTH) return 0;
    const r = decodeExtent(key, old);
    return isHoleChunk(r.length, r.digest) ? r.length * r.count : 0;
  }

  private addHoleBytes(ino: Ino, delta: number): void {
    if (delta === 0 || !this.holes) return;
    const next = this.holeBytes(ino) + delta;
    if (next > 0) this.holes.put(inoKey(ino), u64(next));
    else this.holes.remove(inoKey(ino));
  }

  // ---- chunks -------------------------------------------------------------------------------

  chunkRef(digest: Digest): ChunkRef | undefined {
    const raw = this.chunkRefs.getBinary(digest);
    return raw ? decodeChunkRef(raw) : undefined;
  }

  /** True when the chunk's bytes are here (a reference whose bytes are still absent does not count). */
  hasChunk(digest: Digest): boolean {
    const ref = this.chunkRef(digest);
    return ref !== undefined && ref.codec !== CODEC_ABSENT;
  }

  /** True when a recipe references the chunk but its bytes have not arrived yet. */
  isChunkAbsent(digest: Digest): boolean {
    return this.chunkRef(digest)?.codec === CODEC_ABSENT;
  }

  /** The chunk's encoded bytes (a private copy), or undefined. */
  readStoredChunk(digest: Digest): StoredChunk | undefined {
    const ref = this.chunkRef(digest);
    if (!ref) return undefined;
    const data = this.chunks.getBinary(digest);
    if (!data) return undefined;
    return { codec: ref.codec, data };
  }

  /**
   * Copy a chunk's encoded bytes into `target` at `offset` without an intermediate Buffer;
   * returns how many bytes it has, or -1 when the chunk's bytes are not stored. Only as many as
   * fit are copied: a caller that sized `target` from the chunk's reference compares the count.
   */
  copyStoredChunk(digest: Digest, target: Buffer, offset: number): number {
    const data = this.chunks.getBinaryFast(digest);
    if (!data) return -1;
    Buffer.from(data.buffer, data.byteOffset, data.length).copy(target, offset, 0, Math.min(data.length, target.length - offset));
    return data.length;
  }

  /**
   * Take one reference on a chunk (inside txn). A chunk new to the store needs its encoded bytes;
   * returns false when they were needed but not given, so the caller can encode and retry.
   */
  refChunk(digest: Digest, length: number, encoded?: StoredChunk): boolean {
    const ref = this.chunkRef(digest);
    if (ref) {
      // A writer that has the bytes of an absent chunk supplies them: they are no longer remote.
      if (ref.codec === CODEC_ABSENT && encoded) {
        this.chunks.put(digest, encoded.data);
        this.chunkRefs.put(digest, encodeChunkRef({ refs: ref.refs + 1, length, storedLength: encoded.data.length, codec: encoded.codec }));
        return true;
      }
      this.chunkRefs.put(digest, encodeChunkRef({ ...ref, refs: ref.refs + 1 }));
      return true;
    }
    if (!encoded) return false;
    this.chunks.put(digest, encoded.data);
    this.chunkRefs.put(digest, encodeChunkRef({ refs: 1, length, storedLength: encoded.data.length, codec: encoded.codec }));
    if (encoded.compressLater) this.compressQueue.put(digest, EMPTY);
    return true;
  }

  /** Up to `limit` chunks stored raw that wait for compression. */
  pendingCompression(limit: number): Digest[] {
    return Array.from(this.compressQueue.getKeys({ limit }), (k) => asDigest(Buffer.from(k)));
  }

  /** How many chunks wait for compression: read from LMDB's own count, without a scan. */
  compressionBacklog(): number {
    return (this.compressQueue.getStats() as { entryCount: number }).entryCount;
  }

  /**
   * Replace a queued raw chunk's bytes with their compressed form (inside txn); `encoded` is
   * undefined when compression did not pay. Either way the chunk leaves the queue.
   */
  recompressChunk(digest: Digest, encoded: StoredChunk | undefined): void {
    this.compressQueue.remove(digest);
    const ref = this.chunkRef(digest);
    if (!ref || ref.codec !== 0 || !encoded) return;
    this.chunks.put(digest, encoded.data);
    this.chunkRefs.put(digest, encodeChunkRef({ ...ref, storedLength: encoded.data.length, codec: encoded.codec }));
  }

  /**
   * Take one reference on a chunk whose bytes are elsewhere (inside txn): a present or absent
   * chunk gains a reference, an unknown one gets an absent record (see CODEC_ABSENT).
   */
  refAbsentChunk(digest: Digest, length: number): void {
    const ref = this.chunkRef(digest);
    if (ref) this.chunkRefs.put(digest, encodeChunkRef({ ...ref, refs: ref.refs + 1 }));
    else this.chunkRefs.put(digest, encodeChunkRef({ refs: 1, length, storedLength: 0, codec: CODEC_ABSENT }));
  }

  /**
   * Supply the encoded bytes of an absent chunk (inside txn). The caller has verified them against
   * the digest. Returns false, changing nothing, when the chunk is not absent (already filled, or
   * no longer referenced).
   */
  fillChunk(digest: Digest, encoded: StoredChunk): boolean {
    const ref = this.chunkRef(digest);
    if (!ref || ref.codec !== CODEC_ABSENT) return false;
    this.chunks.put(digest, encoded.data);
    this.chunkRefs.put(digest, encodeChunkRef({ ...ref, storedLength: encoded.data.length, codec: encoded.codec }));
    return true;
  }

  /** Drop one reference (inside txn); the chunk's bytes go with its last reference. */
  unrefChunk(digest: Digest): void {
    const ref = this.chunkRef(digest);
    if (!ref) throw new CorruptStoreError(`reference to a chunk the store does not have`);
    if (ref.refs <= 1) {
      this.chunkRefs.remove(digest);
      this.chunks.remove(digest);
      this.compressQueue.remove(digest);
    } else {
      this.chunkRefs.put(digest, encodeChunkRef({ ...ref, refs: ref.refs - 1 }));
    }
  }

  /** Replace the reference count outright (gc's repair path). */
  setChunkRefs(digest: Digest, refs: number): void {
    const ref = this.chunkRef(digest);
    if (!ref) return;
    if (refs === 0) {
      this.chunkRefs.remove(digest);
      this.chunks.remove(digest);
    } else this.chunkRefs.put(digest, encodeChunkRef({ ...ref, refs }));
  }

  /** Remove chunk bytes that have no reference record (gc's repair path). */
  removeChunkBytes(digest: Digest): void {
    this.chunks.remove(digest);
  }

  *allChunkRefs(): Generator<{ digest: Digest; ref: ChunkRef }> {
    for (const { key, value } of this.chunkRefs.getRange({})) {
      yield { digest: asDigest(Buffer.from(key)), ref: decodeChunkRef(value) };
    }
  }

  *allChunkKeys(): Generator<Digest> {
    for (const key of this.chunks.getKeys({})) yield asDigest(Buffer.from(key));
  }

  /** Every `extents` record (runs as one record each). */
  *allExtents(): Generator<{ ino: Ino; extent: Run }> {
    for (const { key, value } of this.extentsDb.getRange({})) {
      yield { ino: readIno(key), extent: decodeExtent(key, value) };
    }
  }

  assertWritable(): void {
    if (this.options.readOnly) throw new InvalidError('store is open read-only');
  }
}

export { StoreFullError };

/** A u64 LE value. */
function u64(value: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64LE(BigInt(value));
  return b;
}
