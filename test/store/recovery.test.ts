// What the next mount cleans up after an unclean stop (src/store/recovery.ts): files unlinked
// while open go, and nothing that still has a name does.
import fs from 'node:fs';
import path from 'node:path';
import type { Filesystem } from '../../src/fs/filesystem';
import { recoverStore } from '../../src/store/recovery';
import { computeStats } from '../../src/store/stats';
import type { Store } from '../../src/store/store';
import { startMount } from '../helpers/mount';
import { randomBytes } from '../helpers/prng';
import { ROOT, useOpenFs } from '../helpers/store';

let store: Store;
let fsys: Filesystem;
const t = useOpenFs('recovery', (s, f) => {
  store = s;
  fsys = f;
});

async function writeFile(p: string, data: Buffer): Promise<number> {
  const fh = await fsys.create(p, 0o644, ROOT);
  await fsys.write(fh, data, data.length, 0);
  await fsys.flush(fh);
  return fh;
}

test('a file unlinked while open when the daemon stopped is removed, with its chunks', async () => {
  const fh = await writeFile('/gone', randomBytes(31, 300_000));
  const { ino } = await fsys.getattr('/gone');
  await fsys.unlink('/gone');
  expect(computeStats(store).chunks).toBeGreaterThan(0);
  void fh; // never released: the daemon died with the file open
  await fsys.commitAll();
  await t.store.close();
  await t.reopen();
  expect(await recoverStore(store)).toEqual({ orphans: 1 });
  expect(store.getInode(ino)).toBeUndefined();
  expect(computeStats(store).chunks).toBe(0);
});

test('an orphan mark on a file that has a name takes away only the mark', async () => {
  const data = randomBytes(32, 200_000);
  await fsys.release(await writeFile('/kept', data));
  const { ino } = await fsys.getattr('/kept');
  await store.txn(() => store.markOrphan(ino));
  expect(await recoverStore(store)).toEqual({ orphans: 1 });
  expect(store.orphanInodes()).toEqual([]);
  const fh = await fsys.open('/kept', 0);
  const out = Buffer.alloc(data.length);
  expect(await fsys.read(fh, out, out.length, 0)).toBe(data.length);
  await fsys.release(fh);
  expect(out.equals(data)).toBe(true);
});

test("a user's file named like libfuse's stand-ins for unlinked open files is kept across a remount", () => {
  const m = startMount();
  try {
    const name = path.join(m.mountpoint, '.fuse_hidden0000abcd00000001');
    fs.writeFileSync(name, 'precious\n');
    m.unmount();
    m.remount();
    expect(fs.readFileSync(name, 'utf8')).toBe('precious\n');
    m.unmount();
  } finally {
    m.cleanup();
  }
});
