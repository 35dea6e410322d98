// The background flush: acknowledged changes reach the disk a short delay after they commit,
// many commits to one fdatasync, while fsync(2) (Store.flushed) never waits for that delay.
import { Filesystem } from '../../src/fs/filesystem';
import { LocalChunkSource } from '../../src/store/localSource';
import { Store } from '../../src/store/store';
import { ROOT, useTempStore } from '../helpers/store';

const t = useTempStore('flush');

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** A store whose background flush waits `delayMs`, and a filesystem over it, for `fn`. */
async function withStore(delayMs: number, fn: (store: Store, fsys: Filesystem) => Promise<void>): Promise<void> {
  const store = await Store.open(t.dir, { flushDelayMs: delayMs });
  try {
    await fn(store, new Filesystem(store, new LocalChunkSource(store)));
  } finally {
    await store.close();
  }
}

test('commits are flushed to disk in the background once the delay has passed', () =>
  withStore(50, async (store, fsys) => {
    for (let i = 0; i < 20; i++) await fsys.mknod(`/f${i}`, 0o100644, ROOT);
    const { commits } = store.durability();
    expect(commits).toBeGreaterThanOrEqual(20);
    expect(await until(() => store.durability().flushed === commits, 10_000)).toBe(true);
  }));

test('a commit is not flushed before the delay, so a burst of commits shares one flush', () =>
  withStore(60_000, async (store, fsys) => {
    for (let i = 0; i < 5; i++) await fsys.mknod(`/f${i}`, 0o100644, ROOT);
    await new Promise((r) => setTimeout(r, 200));
    expect(store.durability().flushed).toBe(0);
  }));

test('fsync (Store.flushed) flushes at once instead of waiting for the delay', () =>
  withStore(60_000, async (store, fsys) => {
    await fsys.mknod('/f', 0o100644, ROOT);
    await store.flushed(); // with the delay honoured, this would outlast the test's timeout
    expect(store.durability().flushed).toBe(store.durability().commits);
  }));

test('closing the store flushes what the delay still held back', async () => {
  const store = await Store.open(t.dir, { flushDelayMs: 60_000 });
  const fsys = new Filesystem(store, new LocalChunkSource(store));
  await fsys.mknod('/f', 0o100644, ROOT);
  await store.close();
  const d = store.durability();
  expect(d.flushed).toBe(d.commits);
});
