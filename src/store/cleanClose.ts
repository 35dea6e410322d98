// The record a writer leaves when it closes a store cleanly, so that the next open can skip the
// page walk (dataTree.ts) when the database file is exactly as that close left it, as e2fsck
// skips a filesystem that was unmounted cleanly. The walk reads every B-tree page and overflow
// header: its time grows with the store (1.4-1.7 s cold for 45,000 chunks), and a daemon pays
// it on every mount. The record names the file (device, inode), its length, its modification
// and change times to the nanosecond and the newest meta page's transaction: any commit moves
// the transaction id, any write through the filesystem moves the change time, which no one can
// set back, and a file put in its place (gc's rename, a restored copy) has another inode. A
// writer deletes the record as it opens, so a daemon killed or crashed leaves none and the next
// open walks. docs/FORMAT.md, "Store".
import fs from 'node:fs';
import path from 'node:path';
import { newestMeta } from './dataFile';

const RECORD = 'closed-clean';
const VERSION = 1;

interface CleanClose {
  version: number;
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  txnid: string;
}

/** How `data.mdb` in `dbDir` looks now, in the record's terms; undefined without a valid meta page. */
async function describe(dbDir: string): Promise<CleanClose | undefined> {
  const handle = await fs.promises.open(path.join(dbDir, 'data.mdb'), 'r');
  try {
    const meta = await newestMeta(handle);
    if (!meta) return undefined;
    const s = await handle.stat({ bigint: true });
    return {
      version: VERSION,
      dev: String(s.dev),
      ino: String(s.ino),
      size: String(s.size),
      mtimeNs: String(s.mtimeNs),
      ctimeNs: String(s.ctimeNs),
      txnid: String(meta.txnid),
    };
  } finally {
    await handle.close();
  }
}

/**
 * After a writer closed the environment with every commit flushed: record the file as it is.
 * The record is written whole and renamed into place, so a crash leaves it or nothing.
 */
export async function recordCleanClose(dbDir: string): Promise<void> {
  const now = await describe(dbDir);
  if (!now) return;
  const tmp = path.join(dbDir, `${RECORD}.tmp`);
  await fs.promises.writeFile(tmp, JSON.stringify(now));
  await fs.promises.rename(tmp, path.join(dbDir, RECORD));
}

/** Whether `data.mdb` is the very file the last clean close recorded, unchanged since. */
export async function unchangedSinceCleanClose(dbDir: string): Promise<boolean> {
  let recorded: CleanClose;
  try {
    recorded = JSON.parse(await fs.promises.readFile(path.join(dbDir, RECORD), 'utf8')) as CleanClose;
  } catch {
    return false; // none, or not readable: walk
  }
  const now = await describe(dbDir).catch(() => undefined);
  if (!now || recorded?.version !== VERSION) return false;
  return (Object.keys(now) as (keyof CleanClose)[]).every((k) => recorded[k] === now[k]);
}

/** A writer opening the store: from here on only its own clean close vouches for the file. */
export async function forgetCleanClose(dbDir: string): Promise<void> {
  await fs.promises.rm(path.join(dbDir, RECORD), { force: true });
}
