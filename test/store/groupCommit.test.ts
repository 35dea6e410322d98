// Group commit: changes requested at the same time share LMDB transactions (each still atomic on
// its own, through a child transaction), and each caller is answered once its change is
// committed. The FUSE layer relies on this to acknowledge concurrent requests without one LMDB
// commit apiece (test/fs/faults.test.ts checks the same through a mount and kill -9).
import { Filesystem } from '../../src/fs/filesystem';
import { LocalChunkSource } from '../../src/store/localSource';
import { Store } from '../../src/store/store';
import { ROOT, useOpenStore } from '../helpers/store';

const t = useOpenStore('group');

test('200 concurrent creates take far fewer than 200 LMDB transactions, and each is there once answered', async () => {
  const fsys = new Filesystem(t.store, new LocalChunkSource(t.store));
  const before = t.store.lastTransactionId();
  const seen: boolean[] = [];
  await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      fsys.mknod(`/f${i}`, 0o100644, ROOT).then(() => {
        seen[i] = t.store.lookup(1, `f${i}`) !== undefined;
      }),
    ),
  );
  expect(seen.filter(Boolean).length).toBe(200);
  expect(t.store.lastTransactionId() - before).toBeLessThan(50);
});

test('a change that fails inside a shared transaction leaves the others committed', async () => {
  const fsys = new Filesystem(t.store, new LocalChunkSource(t.store));
  await fsys.mknod('/taken', 0o100644, ROOT);
  const before = t.store.lastTransactionId();
  const results = await Promise.allSettled([
    fsys.mknod('/a', 0o100644, ROOT),
    fsys.mknod('/taken', 0o100644, ROOT), // EEXIST, thrown inside the transaction callback
    fsys.mkdir('/d', 0o755, ROOT),
  ]);
  expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect(t.store.lastTransactionId() - before).toBe(1);
  await t.store.close();
  t.store = await Store.open(t.dir);
  const names = Array.from(t.store.entries(1), (e) => e.name).sort();
  expect(names).toEqual(['a', 'd', 'taken']);
});

test('changes asked for just before close are committed before the store closes', async () => {
  const fsys = new Filesystem(t.store, new LocalChunkSource(t.store));
  // Not awaited: close() is called while the creates are still on their way to a commit.
  const creates = ['x', 'y', 'z'].map((n) => fsys.mknod(`/${n}`, 0o100644, ROOT));
  await t.store.close();
  await Promise.all(creates);
  t.store = await Store.open(t.dir);
  expect(Array.from(t.store.entries(1), (e) => e.name).sort()).toEqual(['x', 'y', 'z']);
});
