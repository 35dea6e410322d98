// One daemon per store: a pid file taken with O_EXCL. A pid file whose process is gone (a
// daemon killed with -9) is stale and is taken over; a live one is a clear error.
import fs from 'node:fs';
import path from 'node:path';
import { StoreLockedError } from './errors';

export interface LockInfo {
  pid: number;
  mountpoint?: string;
}

export function lockPath(storeDir: string): string {
  return path.join(storeDir, 'daemon.pid');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A recycled pid belongs to some other program: only a slinkyfs/node process counts.
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /slinkyfs|node/.test(cmd);
  } catch {
    return false;
  }
}

export function readLock(storeDir: string): LockInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(lockPath(storeDir), 'utf8')) as LockInfo;
    return typeof info.pid === 'number' && alive(info.pid) ? info : undefined;
  } catch {
    return undefined;
  }
}

export function acquireLock(storeDir: string, mountpoint?: string): () => void {
  const file = lockPath(storeDir);
  const body = JSON.stringify({ pid: process.pid, mountpoint } satisfies LockInfo);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, body, { flag: 'wx' });
      return () => {
        try {
          if (JSON.parse(fs.readFileSync(file, 'utf8')).pid === process.pid) fs.unlinkSync(file);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readLock(storeDir);
      if (holder && holder.pid !== process.pid) {
        const where = holder.mountpoint ? ` (mounted at ${holder.mountpoint})` : '';
        throw new StoreLockedError(`store ${storeDir} is in use by slinkyfs daemon pid ${holder.pid}${where}`);
      }
      fs.rmSync(file, { force: true }); // stale: its daemon died
    }
  }
  throw new StoreLockedError(`cannot lock store ${storeDir}`);
}
