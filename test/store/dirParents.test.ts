// Each directory's name is indexed (`dirparents`, docs/FORMAT.md), so finding a directory's
// parent (a readdir's "..", the check that a directory is not moved into itself) is two reads
// instead of a scan of every directory entry in the store, which made `ls -laR` of a large tree
// quadratic. The index must follow every change, be built for a store written before it
// existed, and never be trusted over the entries themselves.
import type { Filesystem } from '../../src/fs/filesystem';
import { Store } from '../../src/store/store';
import { direntKey, inoKey, ROOT_INO } from '../../src/store/records';
import { asFromBefore, ROOT, useTempStore } from '../helpers/store';

const temp = useTempStore('parents');
const withFs = temp.withFs;

const inoOf = async (fsys: Filesystem, p: string) => (await fsys.getattr(p)).ino;
/** The index record of a directory: the dirents key of its one name. */
const record = (store: Store, ino: number) =>
  (store as unknown as { dirParents: { getBinary(k: Buffer): Buffer | undefined } }).dirParents.getBinary(inoKey(ino));

test('a directory’s parent follows mkdir, rename and rmdir', async () => {
  await withFs(async (store, fsys) => {
    await fsys.mkdir('/a', 0o755, ROOT);
    await fsys.mkdir('/a/b', 0o755, ROOT);
    await fsys.mkdir('/c', 0o755, ROOT);
    const [a, b, c] = [await inoOf(fsys, '/a'), await inoOf(fsys, '/a/b'), await inoOf(fsys, '/c')];
    expect(store.findParent(a)).toBe(ROOT_INO);
    expect(store.findParent(b)).toBe(a);
    await fsys.rename('/a/b', '/c/b2');
    expect(record(store, b)).toEqual(direntKey(c, 'b2'));
    expect(store.findParent(b)).toBe(c);
    await fsys.rename('/c', '/a/c');
    expect(store.findParent(c)).toBe(a);
    await fsys.rmdir('/a/c/b2');
    expect(record(store, b)).toBeUndefined();
    expect(store.findParent(b)).toBeUndefined();
  });
});

test('moving a directory into its own subtree is still refused', async () => {
  await withFs(async (_store, fsys) => {
    await fsys.mkdir('/top', 0o755, ROOT);
    await fsys.mkdir('/top/mid', 0o755, ROOT);
    await fsys.mkdir('/top/mid/low', 0o755, ROOT);
    await expect(fsys.rename('/top', '/top/mid/low/top')).rejects.toThrow(/into itself/);
    await fsys.rename('/top/mid/low', '/low');
    await expect(fsys.rename('/low', '/top/mid/low')).resolves.toBeUndefined();
  });
});

test('a store written before the index gets it built when opened', async () => {
  let mid = 0;
  let top = 0;
  await withFs(async (_store, fsys) => {
    await fsys.mkdir('/top', 0o755, ROOT);
    await fsys.mkdir('/top/mid', 0o755, ROOT);
    top = await inoOf(fsys, '/top');
    mid = await inoOf(fsys, '/top/mid');
  });
  await asFromBefore(temp.dir, 'dirparents');
  // Read-only (stats, verify of a stopped store), nothing is built: the parent is found anyway.
  const ro = await Store.open(temp.dir, { readOnly: true });
  try {
    expect(ro.findParent(mid)).toBe(top);
  } finally {
    await ro.close();
  }
  await withFs(async (store) => {
    expect(record(store, mid)).toEqual(direntKey(top, 'mid'));
    expect(store.findParent(mid)).toBe(top);
    expect(store.findParent(top)).toBe(ROOT_INO);
  });
});

test('a record that disagrees with the directory entries is not trusted', async () => {
  await withFs(async (store, fsys) => {
    await fsys.mkdir('/p', 0o755, ROOT);
    await fsys.mkdir('/p/child', 0o755, ROOT);
    const [p, child] = [await inoOf(fsys, '/p'), await inoOf(fsys, '/p/child')];
    await fsys.rename('/p/child', '/moved');
    // As if an older slinkyfs had made that move: the record still names (p, "child").
    const env = (store as unknown as { env: { openDB(o: object): { put(k: Buffer, v: Buffer): Promise<boolean> } } }).env;
    await env.openDB({ name: 'dirparents', encoding: 'binary', keyEncoding: 'binary', cache: false }).put(inoKey(child), direntKey(p, 'child'));
    expect(store.findParent(child)).toBe(ROOT_INO);
  });
});
