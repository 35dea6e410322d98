// Extended attributes live with the inode in the store (`xattrs`, docs/FORMAT.md): one record
// per name, shared by hard links, gone with the inode's last name.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Filesystem } from '../../src/fs/filesystem';
import { LocalChunkSource } from '../../src/store/localSource';
import { Store } from '../../src/store/store';

const ROOT = { uid: 0, gid: 0 };
let dir: string;
let store: Store;
let fsys: Filesystem;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-xattrs-'));
  store = await Store.open(dir);
  fsys = new Filesystem(store, new LocalChunkSource(store));
});
afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('names list in byte order and values come back exactly', async () => {
  await fsys.mknod('/f', 0o100644, ROOT);
  const ino = (await fsys.getattr('/f')).ino;
  const value = Buffer.from([0, 1, 2, 255]);
  await fsys.setxattrIno(ino, 'user.zeta', value, 0);
  await fsys.setxattrIno(ino, 'trusted.alpha', Buffer.from('t'), 0);
  expect(await fsys.listxattrIno(ino)).toEqual(['trusted.alpha', 'user.zeta']);
  expect((await fsys.getxattrIno(ino, 'user.zeta')).equals(value)).toBe(true);
});

test('the attributes go with the last name of the inode, not before', async () => {
  await fsys.mknod('/f', 0o100644, ROOT);
  const ino = (await fsys.getattr('/f')).ino;
  await fsys.setxattrIno(ino, 'user.a', Buffer.from('1'), 0);
  await fsys.linkAt(ino, 1, 'g');
  await fsys.unlink('/f');
  expect(store.xattrNames(ino)).toEqual(['user.a']);
  await fsys.unlink('/g');
  expect(store.xattrNames(ino)).toEqual([]);
});

test('they survive closing and opening the store', async () => {
  await fsys.mkdir('/d', 0o755, ROOT);
  const ino = (await fsys.getattr('/d')).ino;
  await fsys.setxattrIno(ino, 'security.label', Buffer.from('kept'), 0);
  await store.close();
  store = await Store.open(dir);
  expect(store.getXattr(ino, 'security.label')?.toString()).toBe('kept');
});
