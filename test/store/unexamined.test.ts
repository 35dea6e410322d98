// The store's list of files to examine (`unexamined`): every change of a file's content marks it
// in the same transaction, so the page cache finds the files that may have become slinked files
// without reading every inode, and a look at older content never clears the mark of a newer
// change. Real LMDB stores through the Filesystem layer.
import { Filesystem } from '../../src/fs/filesystem';
import { Store } from '../../src/store/store';
import { asFromBefore, ROOT, useOpenFs } from '../helpers/store';
import { randomBytes } from '../helpers/prng';

let store: Store;
let fsys: Filesystem;
const opened = useOpenFs('unexamined', (s, f) => {
  store = s;
  fsys = f;
});

async function write(p: string, data: Buffer, at = 0): Promise<number> {
  const fh = await fsys.create(p, 0o644, ROOT).catch(() => fsys.open(p, 2));
  await fsys.write(fh, data, data.length, at);
  await fsys.release(fh);
  return (await fsys.getattr(p)).ino;
}

/** Clears every mark as the page cache would after looking at each file. */
async function lookAtAll(): Promise<void> {
  const marks = new Map(store.unexaminedInodes()!.map((ino) => [ino, store.examinationMark(ino)]));
  await store.txn(() => store.settleExamination(marks));
}

test('a new store has no file to examine', () => {
  expect(store.unexaminedInodes()).toEqual([]);
});

test('writing a file marks it; making a directory, a symlink or an empty file marks nothing', async () => {
  await fsys.mkdir('/d', 0o755, ROOT);
  await fsys.symlink('/d', '/s', ROOT);
  await fsys.release(await fsys.create('/empty', 0o644, ROOT));
  const ino = await write('/f', randomBytes(1, 100_000));
  expect(store.unexaminedInodes()).toEqual([ino]);
});

test('a file looked at is no longer listed, and a later write lists it again', async () => {
  const ino = await write('/f', randomBytes(2, 50_000));
  await lookAtAll();
  expect(store.unexaminedInodes()).toEqual([]);
  await write('/f', Buffer.from('appended'), 50_000);
  expect(store.unexaminedInodes()).toEqual([ino]);
});

test('truncating a file marks it (its last bytes change without a write)', async () => {
  const ino = await write('/f', randomBytes(3, 200_000));
  await lookAtAll();
  await fsys.truncate('/f', 70_000);
  expect(store.unexaminedInodes()).toEqual([ino]);
});

test('a look at older content does not clear the mark of a change made after it began', async () => {
  const ino = await write('/f', randomBytes(4, 50_000));
  const before = store.examinationMark(ino);
  await write('/f', Buffer.from('newer'), 50_000);
  expect(await store.txn(() => store.settleExamination(new Map([[ino, before]])))).toBe(0);
  expect(store.unexaminedInodes()).toEqual([ino]);
  expect(await store.txn(() => store.settleExamination(new Map([[ino, store.examinationMark(ino)]])))).toBe(1);
  expect(store.unexaminedInodes()).toEqual([]);
});

test('a change that is rolled back takes its mark with it, and the next change of the file marks it again', async () => {
  const ino = await write('/f', randomBytes(9, 30_000));
  await lookAtAll();
  const [first] = store.extents(ino);
  const failed = store.txn(() => {
    store.putExtent(ino, first);
    throw new Error('rolled back');
  });
  const next = store.txn(() => store.putExtent(ino, first));
  await expect(failed).rejects.toThrow('rolled back');
  await next;
  expect(store.unexaminedInodes()).toEqual([ino]);
});

test('marks outlive the store being closed, and a removed file takes its mark with it', async () => {
  const a = await write('/a', randomBytes(5, 30_000));
  const b = await write('/b', randomBytes(6, 30_000));
  await store.close();
  await opened.reopen();
  expect(store.unexaminedInodes()).toEqual([a, b]);
  // Marks from before this open carry generation 0: settling with it clears them.
  expect(store.examinationMark(a)).toBe(0);
  await fsys.unlink('/b');
  expect(store.unexaminedInodes()).toEqual([a]);
});

test('a store from before the list gets every regular file marked the first time it is opened for writing', async () => {
  const a = await write('/a', randomBytes(7, 30_000));
  await fsys.mkdir('/d', 0o755, ROOT);
  const b = await write('/d/b', randomBytes(8, 30_000));
  await lookAtAll();
  await store.close();
  await asFromBefore(opened.dir, 'unexamined');
  const ro = await Store.open(opened.dir, { readOnly: true });
  try {
    expect(ro.unexaminedInodes()).toBeUndefined();
  } finally {
    await ro.close();
  }
  await opened.reopen();
  expect(store.unexaminedInodes()).toEqual([a, b]);
});
