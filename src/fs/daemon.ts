// The mount daemon: opens the store, mounts it with fuse-native and serves until SIGINT/SIGTERM
// or an external unmount, then commits what is pending and closes the store. Runs in its own
// process (the CLI forks it): a synchronous fs call on the mount from this process would
// deadlock the event loop that has to answer it.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { acquireLock } from '../store/lock';
import { LocalChunkSource } from '../store/localSource';
import { recoverStore } from '../store/recovery';
import { Store } from '../store/store';
import type { ChunkSource } from '../store/chunkSource';
import { Filesystem } from './filesystem';
import { makeFuseOps } from './fuseOps';
import { findSlinkyMount, isMountpoint } from './mountTable';

const run = promisify(execFile);

export interface DaemonOptions {
  mountpoint: string;
  storeDir: string;
  /** Size limit of the store's database in bytes (ENOSPC beyond it). */
  maxBytes?: number;
  /** Extra chunk sources behind the local store (peers, seeds): set up by the caller. */
  extraSources?: (store: Store, log: (line: string) => void) => Promise<ChunkSource | undefined>;
  log: (line: string) => void;
}

export class MountError extends Error {
  override name = 'MountError';
  readonly exitCode = 3;
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
  stop: () => Promise<void>;
  stopped: Promise<void>;
}

export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { log } = opts;
  const mountpoint = path.resolve(opts.mountpoint);
  const storeDir = path.resolve(opts.storeDir);
  if (storeDir.includes(',')) throw new MountError(`store path must not contain a comma: ${storeDir}`);
  const st = await fs.promises.stat(mountpoint).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOTCONN') return undefined; // stale mount: cleared below
    throw new MountError(`mountpoint ${mountpoint} does not exist`);
  });
  if (st && !st.isDirectory()) throw new MountError(`mountpoint ${mountpoint} is not a directory`);
  await fs.promises.mkdir(storeDir, { recursive: true });
  const unlock = acquireLock(storeDir, mountpoint);
  let store: Store | undefined;
  try {
    await clearStaleMount(mountpoint, log);
    store = await Store.open(storeDir, { maxBytes: opts.maxBytes });
    const recovered = await recoverStore(store);
    if (recovered.orphans || recovered.hidden) log(`recovered ${recovered.orphans} orphaned and ${recovered.hidden} hidden files`);
    const local = new LocalChunkSource(store, (d, why) => log(`corrupt chunk in store: ${why}`));
    const extra = opts.extraSources ? await opts.extraSources(store, log) : undefined;
    const source = extra ?? local;
    const filesystem = new Filesystem(store, source, { log });
    const ops = makeFuseOps(filesystem, {
      caller: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      log,
      statfs: async () => {
        const s = await fs.promises.statfs(storeDir);
        return { bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255 };
      },
    });
    const fuse = await mountFuse(mountpoint, storeDir, ops);
    log(`mounted ${storeDir} at ${mountpoint} (pid ${process.pid})`);

    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    let stopping: Promise<void> | undefined;
    const openStore = store;
    const stop = () =>
      (stopping ??= (async () => {
        await filesystem.commitAll();
        await new Promise<void>((resolve) => fuse.unmount((err: Error | null) => {
          if (err) log(`unmount: ${err.message}; detaching lazily`);
          resolve();
        }));
        if (findSlinkyMount(mountpoint)) await run('fusermount', ['-uz', mountpoint]).catch(() => undefined);
        // Peers, prefetching and a server use the store: they stop before it closes.
        await extra?.close?.().catch((err: Error) => log(`closing chunk sources: ${err.message}`));
        await openStore.flushed().catch(() => undefined);
        await openStore.close();
        unlock();
        log('unmounted');
        resolveStopped();
      })());
    // An external `fusermount -u` ends the FUSE session: notice it and stop too.
    const watch = setInterval(() => {
      if (!findSlinkyMount(mountpoint)) void stop();
    }, 2000);
    watch.unref();
    void stopped.then(() => clearInterval(watch));
    return { fs: filesystem, stop, stopped };
  } catch (err) {
    await store?.close().catch(() => undefined);
    unlock();
    throw err;
  }
}

/** Mount with the options a shared bin directory needs (see NOTES.md and the README). */
async function mountFuse(mountpoint: string, storeDir: string, ops: Record<string, Function>): Promise<any> {
  const Fuse: new (mnt: string, ops: object, opts: object) => any = require('fuse-native');
  const isRoot = process.getuid?.() === 0;
  class SlinkyFuse extends Fuse {
    _fuseOptions(): string {
      const base: string = super._fuseOptions();
      // big_writes/max_write: 128 KiB writes instead of 4 KiB ones (20x the write throughput).
      // use_ino: st_ino is ours, so hard links show one inode number. attr/entry timeouts 0:
      // what one process changes (link, chmod, rename) is what the next stat sees.
      // auto_cache: keep the kernel's page cache across opens while a file is unchanged.
      const extra = ['big_writes', 'max_write=131072', 'use_ino', 'attr_timeout=0', 'entry_timeout=0', 'auto_cache', 'subtype=slinkyfs'];
      return base ? `${base},${extra.join(',')}` : `-o${extra.join(',')}`;
    }
  }
  const fuse = new SlinkyFuse(mountpoint, ops, {
    fsname: storeDir,
    allowOther: isRoot,
    defaultPermissions: true,
    timeout: false,
  });
  await new Promise<void>((resolve, reject) =>
    fuse.mount((err: Error | null) => (err ? reject(new MountError(`cannot mount ${mountpoint}: ${err.message}`)) : resolve())),
  );
  return fuse;
}
