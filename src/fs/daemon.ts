// The mount daemon: opens the store, mounts it through our libfuse 3 low-level binding
// (lowlevel.ts) and serves until SIGINT/SIGTERM or an external unmount, then commits what is
// pending and closes the store. Runs in its own process (the CLI forks it): a synchronous fs
// call on the mount from this process would deadlock the event loop that has to answer it.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { acquireLock } from '../store/lock';
import { LocalChunkSource } from '../store/localSource';
import { setReadahead } from './readahead';
import { recoverStore } from '../store/recovery';
import { Store } from '../store/store';
import type { ChunkSource } from '../store/chunkSource';
import { Filesystem } from './filesystem';
import { createPageCache, type PageCache } from '../pagecache';
import { Compactor } from '../store/compactor';
import { makeLowLevelOps } from './fuseOps';
import { LowLevelError, mountLowLevel, type LowLevelSession } from './lowlevel';
import { toErrno } from './errno';
import { findSlinkyMount, isMountpoint } from './mountTable';
import { makeDirs } from '../store/dirs';

const run = promisify(execFile);

export interface DaemonOptions {
  mountpoint: string;
  storeDir: string;
  /** Size limit of the store's database in bytes (ENOSPC beyond it). */
  maxBytes?: number;
  /** LMDB flushes every commit itself (see StoreOptions.syncEveryCommit). */
  syncEveryCommit?: boolean;
  /** Delay of the background flush after a commit (see StoreOptions.flushDelayMs). */
  flushDelayMs?: number;
  /** Microseconds the FUSE loop keeps polling after a request (lowlevel.ts spinMicros). */
  spinMicros?: number;
  /** The kernel's read-ahead for the mount, KiB (readahead.ts; root only). */
  readaheadKib?: number;
  /** Raw bytes that may wait for the idle-time compactor, MiB (DEFAULT_COMPRESS_BACKLOG_MIB). */
  compressBacklogMib?: number;
  /** Serve extended attributes (fuseOps.ts FuseOpsOptions.xattr; default true). */
  xattr?: boolean;
  /** Back published objects with identical system files through FUSE passthrough where the
   *  kernel offers it (src/pagecache/twins.ts; default true). */
  passthrough?: boolean;
  /** Extra chunk sources behind the local store (peers, seeds): set up by the caller. */
  extraSources?: (store: Store, log: (line: string) => void, events: SourceEvents) => Promise<ExtraSource | undefined>;
  log: (line: string) => void;
}

/**
 * Polling after each request, in microseconds. Waking a sleeping thread costs 50-220 us on a
 * virtual machine without halt polling, and a program start or a copy sends its next request
 * within that: measured side by side (hyperfine, 4 alternating rounds), slinked `true` and `ls /`
 * from the mount 1.92x/1.94x of dynamic with 0, 1.55x/1.49x with 300, 1.48x/1.42x with 1000;
 * `cp -a /usr/bin` 4.4-5.0 s with 0, 4.1 s with 2000. The cost: up to this much CPU after the
 * last request of a burst.
 */
export const DEFAULT_SPIN_US = 500;

/**
 * How much raw data may wait for compression, MiB. Below it a copy runs at the speed of chunking
 * and hashing and compression waits for a quiet moment; past it, commits compress their own new
 * chunks. Without a bound, one long copy left the database file at the raw size of all it wrote
 * (LMDB never gives space back to the filesystem): 1.70 GiB for 583 MiB stored.
 */
export const DEFAULT_COMPRESS_BACKLOG_MIB = 256;

/** The backlog is counted in chunks (LMDB counts the queue's entries for free), at the chunker's mean (2 KiB minimum + 8 KiB). */
const MEAN_CHUNK_BYTES = 10 << 10;

/** The chunk source a caller puts behind the store, and what it reports for `stats --net`. */
export interface ExtraSource extends ChunkSource {
  report?(): unknown;
  /** What the user should hear about though the mount went ahead (a peer that failed). */
  readonly warnings?: readonly string[];
}

/** What extra chunk sources tell the daemon. */
export interface SourceEvents {
  /** Absent chunks of mirrored files have been filled in (e.g. a prefetch finished). */
  chunksArrived(): void;
}

export class MountError extends Error {
  override name = 'MountError';
  readonly exitCode = 3;
}

/** A mountpoint or store path that cannot be mounted whatever the machine's state: bad usage. */
export class MountTargetError extends Error {
  override name = 'MountTargetError';
  readonly exitCode = 2;
}

/**
 * The mountpoint is a directory (or a stale mount, cleared later) and the store path can be a
 * FUSE mount option (where commas separate options). The CLI asks before it makes the store
 * directory, the daemon again before it mounts.
 */
export async function checkMountTarget(mountpoint: string, storeDir: string): Promise<void> {
  if (storeDir.includes(',')) throw new MountTargetError(`store path must not contain a comma: ${storeDir}`);
  const st = await fs.promises.stat(mountpoint).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOTCONN') return undefined; // stale mount: cleared by startDaemon
    throw new MountTargetError(`mountpoint ${mountpoint} does not exist`);
  });
  if (st && !st.isDirectory()) throw new MountTargetError(`mountpoint ${mountpoint} is not a directory`);
}

/** A mount left by a daemon that died answers ENOTCONN; clear it so we can mount again. */
export async function clearStaleMount(mountpoint: string, log: (l: string) => void): Promise<void> {
  const entry = findSlinkyMount(mountpoint);
  if (!entry) {
    if (isMountpoint(mountpoint)) throw new MountError(`${mountpoint} is already a mountpoint (not slinkyfs)`);
    return;
  }
  const alive = await fs.promises.stat(mountpoint).then(
    () => true,
    (err) => (err as NodeJS.ErrnoException).code !== 'ENOTCONN',
  );
  if (alive) throw new MountError(`${mountpoint} is already mounted by a running slinkyfs daemon`);
  log(`clearing stale mount at ${mountpoint}`);
  await run('fusermount', ['-uz', mountpoint]).catch(() => run('umount', ['-l', mountpoint]));
}

export interface RunningDaemon {
  fs: Filesystem;
  /** Mounted, but something the user asked for did not work out: one line each. */
  warnings: readonly string[];
  stop: () => Promise<void>;
  stopped: Promise<void>;
}

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { log } = opts;
  const mountpoint = path.resolve(opts.mountpoint);
  const storeDir = path.resolve(opts.storeDir);
  await checkMountTarget(mountpoint, storeDir);
  await makeDirs(storeDir);
  const unlock = acquireLock(storeDir, mountpoint);
  let store: Store | undefined;
  try {
    await clearStaleMount(mountpoint, log);
    // Before anything is mounted: the page walk's synchronous reads (Store.open) hold up no request.
    store = await Store.open(storeDir, { maxBytes: opts.maxBytes, syncEveryCommit: opts.syncEveryCommit, flushDelayMs: opts.flushDelayMs });
    const check = store.pageCheck;
    log(check.kind === 'walked' ? `checked ${check.pages} database pages in ${Math.round(check.ms)} ms` : `database file unchanged since a clean close: page walk skipped`);
    const recovered = await recoverStore(store);
    if (recovered.orphans) log(`recovered ${recovered.orphans} orphaned files`);
    const local = new LocalChunkSource(store, (d, why) => log(`corrupt chunk in store: ${why}`));
    // Files mirrored from peers are published once their chunks are all here. Like the
    // filesystem's hook below, this runs only after `pages` exists (a prefetch starts later).
    const events: SourceEvents = { chunksArrived: () => pages.lookAgain() };
    const extra = opts.extraSources ? await opts.extraSources(store, log, events) : undefined;
    const source = extra ?? local;
    // New chunks go in raw; the compactor compresses them once writes pause, and past the
    // backlog bound commits compress their own (README: ingest).
    // Slinked files committed here have their objects published for the shared page cache.
    const compressBacklogChunks = Math.ceil(((opts.compressBacklogMib ?? DEFAULT_COMPRESS_BACKLOG_MIB) * 2 ** 20) / MEAN_CHUNK_BYTES);
    const filesystem = new Filesystem(store, source, { log, compressLater: true, compressBacklogChunks, onContentCommitted: (ino, tail) => pages.onContentCommitted(ino, tail) });
    const moreStats = () => (extra?.report ? { network: extra.report() } : {});
    const pages: PageCache = createPageCache({ store, source, filesystem, mountpoint, storeDir, log, twins: opts.passthrough !== false, moreStats });
    const compactor = new Compactor(store, { isIdle: () => Date.now() - filesystem.lastWriteMs > 500, log });
    let session: LowLevelSession | undefined;
    const ops = pages.wrapOps(makeLowLevelOps(filesystem, {
      statfs: async () => {
        const s = await fs.promises.statfs(storeDir);
        return { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, namemax: 255 };
      },
      // A directory's nlink/mtime changed under the kernel's attribute cache: drop that entry.
      dirChanged: (ino) => setImmediate(() => void session?.invalidateInode(ino, -1).catch(() => undefined)),
      xattr: opts.xattr,
    }));
    // The index of published objects is loaded before the first request can ask for one.
    await pages.start();
    const isRoot = process.getuid?.() === 0;
    try {
      session = await mountLowLevel(mountpoint, ops, {
        allowOther: isRoot,
        defaultPermissions: true,
        fsname: storeDir,
        subtype: 'slinkyfs',
        // 1 MiB requests (the kernel's largest): an eighth of the requests for large reads and
        // writes, each one decode or chunking batch.
        maxWrite: 1 << 20,
        passthrough: opts.passthrough !== false,
        posixAcl: opts.xattr !== false,
        spinMicros: opts.spinMicros ?? DEFAULT_SPIN_US,
        toErrno,
        onError: (op, err) => log(`${op}: ${(err as Error)?.message ?? String(err)}`),
      });
    } catch (err) {
      // The binding's errors already say what could not be mounted.
      throw new MountError(err instanceof LowLevelError ? err.message : `cannot mount ${mountpoint}: ${(err as Error).message}`);
    }
    pages.attach(session);
    log(`mounted ${storeDir} at ${mountpoint} (pid ${process.pid})`);
    if (isRoot) {
      const why = await setReadahead(path.resolve(mountpoint), opts.readaheadKib);
      if (why) log(`read-ahead left at the kernel's default: ${why}`);
    }
    compactor.start();

    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    let stopping: Promise<void> | undefined;
    const openStore = store;
    const liveSession = session;
    const stop = () =>
      (stopping ??= (async () => {
        await pages.close();
        await filesystem.commitAll();
        await compactor.stop();
        await liveSession.unmount().catch((err: Error) => log(`unmount: ${err.message}`));
        if (findSlinkyMount(mountpoint)) await run('fusermount3', ['-uz', mountpoint]).catch(() => undefined);
        // Peers, prefetching and a server (mount --peer/--serve) use the store: they stop first.
        await extra?.close?.().catch((err: Error) => log(`closing chunk sources: ${err.message}`));
        await openStore.flushed().catch(() => undefined);
        await openStore.close();
        unlock();
        log('unmounted');
        resolveStopped();
      })());
    // An external `fusermount -u` ends the session: stop too.
    void liveSession.closed.then(() => stop());
    return { fs: filesystem, warnings: extra?.warnings ?? [], stop, stopped };
  } catch (err) {
    await store?.close().catch(() => undefined);
    unlock();
    throw err;
  }
}
