// A store that a writer closed cleanly opens without the page walk; every other file is walked
// (src/store/cleanClose.ts). Real LMDB files, a real daemon for the kill -9 case.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { recordCleanClose } from '../../src/store/cleanClose';
import { CorruptStoreError } from '../../src/store/errors';
import { Store, type PageCheck, type StoreOptions } from '../../src/store/store';
import { slinkyfs } from '../helpers/cli';
import { startMount } from '../helpers/mount';
import { ROOT, useTempStore } from '../helpers/store';

const st = useTempStore('clean');
const dbDir = () => path.join(st.dir, 'db');
const record = () => path.join(dbDir(), 'closed-clean');

let files = 0;
async function storeWithAFile(): Promise<void> {
  await st.withFs(async (_store, fsys) => {
    const fh = await fsys.create(`/f${++files}`, 0o644, ROOT);
    const data = Buffer.alloc(100_000, 7);
    await fsys.write(fh, data, data.length, 0);
    await fsys.release(fh);
  });
}

/**
 * Overwrite the low byte of the page number in the header of the main database's root page, as a
 * bad sector might; returns what the walk will say of it.
 */
function damageMainRoot(): string {
  const file = path.join(dbDir(), 'data.mdb');
  const fd = fs.openSync(file, 'r+');
  try {
    const metas = Buffer.alloc(8192);
    fs.readSync(fd, metas, 0, 8192, 0);
    const meta = metas.readBigUInt64LE(4096 + 152) > metas.readBigUInt64LE(152) ? 4096 : 0;
    const root = Number(metas.readBigUInt64LE(meta + 136));
    expect(root & 0xff).not.toBe(0x77);
    fs.writeSync(fd, Buffer.from([0x77]), 0, 1, root * 4096);
    return `database of databases: page ${root} says it is page ${(root & ~0xff) | 0x77}`;
  } finally {
    fs.closeSync(fd);
  }
}

/** What opening the store checked; the store is closed again. */
async function checkOnOpen(options: StoreOptions = {}): Promise<PageCheck> {
  const store = await Store.open(st.dir, options);
  await store.close();
  return store.pageCheck;
}

test('a store a writer closed cleanly opens again without walking its pages', async () => {
  await storeWithAFile();
  expect(await checkOnOpen()).toEqual({ kind: 'unchanged since a clean close' });
});

test('a store with no record of a clean close is walked page by page', async () => {
  await storeWithAFile();
  fs.rmSync(record());
  const check = await checkOnOpen({ readOnly: true });
  expect(check).toMatchObject({ kind: 'walked' });
  expect((check as { pages: number }).pages).toBeGreaterThan(5);
});

test('a writer removes the record as it opens, so a crash leaves none', async () => {
  await storeWithAFile();
  expect(fs.existsSync(record())).toBe(true);
  const store = await Store.open(st.dir);
  try {
    expect(fs.existsSync(record())).toBe(false);
  } finally {
    await store.close();
  }
  expect(fs.existsSync(record())).toBe(true);
});

test('a record of an earlier close does not vouch for a file committed to since', async () => {
  await storeWithAFile();
  const earlier = fs.readFileSync(record());
  await storeWithAFile();
  fs.writeFileSync(record(), earlier);
  expect(await checkOnOpen({ readOnly: true })).toMatchObject({ kind: 'walked' });
});

test('a file written after a clean close is walked even with its modification time set back, and its damage found', async () => {
  await storeWithAFile();
  const file = path.join(dbDir(), 'data.mdb');
  const before = fs.statSync(file, { bigint: true });
  const damage = damageMainRoot();
  const stamp = `@${before.mtimeNs / 1_000_000_000n}.${String(before.mtimeNs % 1_000_000_000n).padStart(9, '0')}`;
  expect(spawnSync('touch', ['-m', '-d', stamp, file]).status).toBe(0);
  expect(fs.statSync(file, { bigint: true }).mtimeNs).toBe(before.mtimeNs);
  const opening = Store.open(st.dir, { readOnly: true });
  await expect(opening).rejects.toThrow(CorruptStoreError);
  await expect(opening).rejects.toThrow(`the store's database file ${file} is damaged (${damage})`);
});

test('verify walks the pages even of a file a clean close vouches for', async () => {
  await storeWithAFile();
  const damage = damageMainRoot();
  await recordCleanClose(dbDir()); // damage the record cannot see, as a disk's own would be
  const r = slinkyfs(['verify', '--store', st.dir]);
  expect(r.status).toBe(1);
  expect(r.stderr).toBe(`slinkyfs: cannot open store ${st.dir}: the store's database file ${dbDir()}/data.mdb is damaged (${damage})\n`);
});

describe('the daemon', () => {
  const lastCheck = (store: string) =>
    fs
      .readFileSync(path.join(store, 'slinkyfs.log'), 'utf8')
      .split('\n')
      .filter((l) => /database pages in|page walk skipped/.test(l))
      .pop();

  test('mounts a store it unmounted cleanly without the page walk', () => {
    const m = startMount();
    try {
      fs.copyFileSync('/usr/bin/ls', path.join(m.mountpoint, 'ls'));
      m.unmount();
      m.remount();
      expect(lastCheck(m.store)).toMatch(/database file unchanged since a clean close: page walk skipped$/);
      m.unmount();
    } finally {
      m.cleanup();
    }
  });

  test('walks the pages of a store whose daemon was killed', () => {
    const m = startMount();
    try {
      fs.copyFileSync('/usr/bin/ls', path.join(m.mountpoint, 'ls'));
      m.kill9();
      m.remount();
      expect(lastCheck(m.store)).toMatch(/checked [1-9]\d* database pages in \d+ ms$/);
      expect(fs.readFileSync(path.join(m.mountpoint, 'ls')).equals(fs.readFileSync('/usr/bin/ls'))).toBe(true);
      m.unmount();
    } finally {
      m.cleanup();
    }
  });
});
