// Holes as run records (docs/FORMAT.md, "Recipes"), through the Filesystem semantics layer on a
// real LMDB store (no FUSE): a hole is stored as runs of the maximal zero chunk without being
// scanned, and whatever is written into or around it, the recipe with its runs expanded is
// exactly the chunking of the file's bytes, with consecutive identical chunks kept as runs.
import { Filesystem } from '../../src/fs/filesystem';
import { Store } from '../../src/store/store';
import { computeStats } from '../../src/store/stats';
import { collectGarbage, verifyStore } from '../../src/store/verify';
import { prng, randomBytes } from '../helpers/prng';
import { patched, resized } from '../helpers/bytes';
import { ROOT, chunkingOf, useOpenFs } from '../helpers/store';

const MAX = 65536;
let store: Store;
let fsys: Filesystem;
const opened = useOpenFs('sparse', (s, f) => {
  store = s;
  fsys = f;
});

const inoOf = (p: string) => store.lookup(1, p.slice(1))!;
const expanded = (p: string) => store.extents(inoOf(p)).map((e) => ({ offset: e.offset, length: e.length, digest: e.digest.toString('hex') }));
/** Runs that, expanded, would be more than one chunk: what makes a record stand for many. */
const runsOf = (p: string) => store.runs(inoOf(p)).map((r) => ({ offset: r.offset, length: r.length, count: r.count }));

/** No two neighbouring records could be one run. */
function expectCoalesced(p: string): void {
  const rs = store.runs(inoOf(p));
  for (let i = 1; i < rs.length; i++) {
    const a = rs[i - 1];
    const b = rs[i];
    expect(a.length === b.length && a.digest.equals(b.digest)).toBe(false);
  }
}

/** The file holds exactly `expected`: its recipe is their chunking, in runs, and reads them back; the store verifies. */
async function expectExactly(p: string, expected: Buffer): Promise<void> {
  expect(expanded(p)).toEqual(chunkingOf(expected));
  expectCoalesced(p);
  expect((await readAt(p, 0, expected.length)).equals(expected)).toBe(true);
  expect(verifyStore(store).damage).toEqual([]);
}

async function readAt(p: string, offset: number, length: number): Promise<Buffer> {
  const fh = await fsys.open(p, 0);
  const out = Buffer.alloc(length, 0xee);
  const n = await fsys.read(fh, out, length, offset);
  await fsys.release(fh);
  return out.subarray(0, n);
}

test('truncate to 1 TiB stores one run record and reads zeros at the start, middle and end', async () => {
  const T = 2 ** 40;
  const fh = await fsys.create('/f', 0o644, ROOT);
  await fsys.ftruncate(fh, T);
  await fsys.release(fh);
  expect(runsOf('/f')).toEqual([{ offset: 0, length: MAX, count: T / MAX }]);
  expect(store.getInode(inoOf('/f'))!.size).toBe(T);
  for (const at of [0, T / 2 + 12345, T - 100]) expect((await readAt('/f', at, 100)).equals(Buffer.alloc(100))).toBe(true);
  expect(verifyStore(store).damage).toEqual([]);
  expect(computeStats(store)).toMatchObject({ logicalBytes: T, uniqueBytes: MAX, chunks: 1 });
});

test('a 40 MiB file with data islands written around holes has the chunking of its bytes', async () => {
  // Islands at the start, just past 10 MiB + 17 (inside a hole), at the very end of a zero
  // stretch and near the end; a size that is no multiple of the maximal chunk.
  const size = (40 << 20) + 12345;
  const expected = Buffer.alloc(size);
  const fh = await fsys.create('/f', 0o644, ROOT);
  await fsys.ftruncate(fh, size);
  const islands: Array<[number, number]> = [
    [0, 5000],
    [(10 << 20) + 17, 70000],
    [(20 << 20) - 3, 3],
    [(30 << 20) + MAX * 3, 1],
    [size - 40000, 30000],
  ];
  for (const [i, [at, n]] of islands.entries()) {
    const data = randomBytes(50 + i, n);
    await fsys.write(fh, data, n, at);
    data.copy(expected, at);
    await fsys.flush(fh);
  }
  await fsys.release(fh);
  expect(expanded('/f')).toEqual(chunkingOf(expected));
  expectCoalesced('/f');
  expect(store.runs(inoOf('/f')).length).toBeLessThan(120);
  const back = await readAt('/f', 0, size);
  expect(back.equals(expected)).toBe(true);
  expect(verifyStore(store).damage).toEqual([]);
});

test.each([11, 12, 13])('random writes, holes and truncates of a sparse file keep the chunking of its bytes (seed %d)', async (seed) => {
  const next = prng(seed);
  let expected: Buffer = Buffer.alloc(0);
  const fh = await fsys.create('/f', 0o644, ROOT);
  for (let round = 0; round < 40; round++) {
    const kind = next() % 5;
    if (kind === 0) {
      const size = next() % (12 << 20);
      await fsys.ftruncate(fh, size);
      expected = resized(expected, size);
    } else {
      // Zeros as data too: a written zero run must come out as the same runs as a hole.
      const len = 1 + (next() % 300000);
      const off = next() % (expected.length + (4 << 20));
      const patch = kind === 1 ? Buffer.alloc(len) : randomBytes(seed * 100 + round, len);
      await fsys.write(fh, patch, len, off);
      expected = patched(expected, off, patch);
    }
    if (round % 3 === 2) await fsys.flush(fh);
  }
  await fsys.release(fh);
  await expectExactly('/f', expected);
});

test('a write into the middle of a 1 TiB hole leaves runs before and after it', async () => {
  const T = 2 ** 40;
  const at = 2 ** 39 + 1000;
  const data = randomBytes(60, 1000);
  const fh = await fsys.create('/f', 0o644, ROOT);
  await fsys.ftruncate(fh, T);
  await fsys.write(fh, data, data.length, at);
  await fsys.release(fh);
  const rs = store.runs(inoOf('/f'));
  expect(rs.length).toBeLessThan(8);
  expect(rs[0]).toMatchObject({ offset: 0, length: MAX });
  expect(rs[0].count).toBeGreaterThan(2 ** 23 - 2);
  expect(rs[rs.length - 1].count).toBeGreaterThan(2 ** 23 - 2);
  expect((await readAt('/f', at - 10, 1020)).equals(Buffer.concat([Buffer.alloc(10), data, Buffer.alloc(10)]))).toBe(true);
  expect((await readAt('/f', T - 5, 100)).equals(Buffer.alloc(5))).toBe(true);
  expect(verifyStore(store).damage).toEqual([]);
  // Chunking from a cut gives the file's next cuts: around the island, the chunks are those of
  // its bytes (all but the last, whose end the end of the buffer would force).
  const near = store.extents(inoOf('/f'), at - (1 << 20), at + (1 << 20));
  const from = near[0].offset;
  const bytes = await readAt('/f', from, near[near.length - 1].offset + near[near.length - 1].length - from);
  const mine = near.slice(0, -1).map((e) => ({ offset: e.offset - from, length: e.length, digest: e.digest.toString('hex') }));
  expect(chunkingOf(bytes).slice(0, mine.length)).toEqual(mine);
});

test('writing zeros as data stores the same runs as a hole, and gc keeps their counts', async () => {
  const size = (16 << 20) + 100;
  const fh = await fsys.create('/w', 0o644, ROOT);
  const z = Buffer.alloc(1 << 20);
  for (let off = 0; off < size; off += z.length) await fsys.write(fh, z, Math.min(z.length, size - off), off);
  await fsys.release(fh);
  const g = await fsys.create('/h', 0o644, ROOT);
  await fsys.ftruncate(g, size);
  await fsys.release(g);
  expect(expanded('/w')).toEqual(chunkingOf(Buffer.alloc(size)));
  expect(runsOf('/w')).toEqual(runsOf('/h'));
  expect(runsOf('/h')).toEqual([{ offset: 0, length: MAX, count: 256 }, { offset: 256 * MAX, length: 100, count: 1 }]);
  expect(verifyStore(store).damage).toEqual([]);
  expect(await store.txn(() => collectGarbage(store))).toEqual({ freedChunks: 0, freedBytes: 0, fixedCounts: 0 });
  // Shrinking into the run splits it; growing again joins it back.
  const t = await fsys.open('/h', 2);
  await fsys.ftruncate(t, 5 * MAX + 7);
  expect(runsOf('/h')).toEqual([{ offset: 0, length: MAX, count: 5 }, { offset: 5 * MAX, length: 7, count: 1 }]);
  await fsys.ftruncate(t, 100 * MAX);
  expect(runsOf('/h')).toEqual([{ offset: 0, length: MAX, count: 100 }]);
  await fsys.release(t);
  await fsys.unlink('/w');
  await fsys.unlink('/h');
  expect(computeStats(store)).toMatchObject({ chunks: 0, files: 0 });
  expect(verifyStore(store).damage).toEqual([]);
});

test('a format 1 store stays format 1 until its first run, then says format 2', async () => {
  // As a store written before runs existed: its format record says 1.
  const meta = (store as unknown as { meta: { put(k: string, v: Buffer): void } }).meta;
  await store.txn(() => meta.put('format', Buffer.from(JSON.stringify({ ...store.format, format: 1 }))));
  await store.close();
  await opened.reopen();
  const fh = await fsys.create('/f', 0o644, ROOT);
  await fsys.write(fh, randomBytes(70, 100000), 100000, 0);
  await fsys.flush(fh);
  expect(store.format.format).toBe(1);
  await fsys.ftruncate(fh, 10 << 20);
  await fsys.release(fh);
  expect(store.format.format).toBe(2);
  expect(runsOf('/f').some((r) => r.count > 1)).toBe(true);
});

test('punching a hole or zeroing a range re-chunks without writing zeros: the chunking of the bytes, as runs', async () => {
  const PUNCH_KEEP = 0x02 | 0x01;
  const ZERO_RANGE_KEEP = 0x10 | 0x01;
  const data = randomBytes(80, 20 << 20);
  const expected = Buffer.from(data);
  const fh = await fsys.create('/f', 0o644, ROOT);
  await fsys.write(fh, data, data.length, 0);
  await fsys.flush(fh);
  await fsys.write(fh, Buffer.from('pending'), 7, (4 << 20) + 3); // an uncommitted write inside the range
  await fsys.fallocate(fh, PUNCH_KEEP, (3 << 20) + 5, (12 << 20) - 12);
  expected.fill(0, (3 << 20) + 5, (15 << 20) - 7);
  await fsys.write(fh, Buffer.from('after'), 5, (9 << 20) + 1); // a write after it, inside it
  Buffer.from('after').copy(expected, (9 << 20) + 1);
  await fsys.fallocate(fh, ZERO_RANGE_KEEP, (19 << 20) + 100, 2 << 20); // past the end: up to it
  expected.fill(0, (19 << 20) + 100);
  await fsys.release(fh);
  expect(store.getInode(inoOf('/f'))!.size).toBe(20 << 20);
  await expectExactly('/f', expected);
});

test('punching almost all of a 1 TiB file with data leaves a few runs', async () => {
  const T = 2 ** 40;
  const fh = await fsys.create('/f', 0o644, ROOT);
  await fsys.ftruncate(fh, T);
  for (const at of [0, 2 ** 30, 2 ** 39 + 7, T - 5000]) await fsys.write(fh, randomBytes(at % 1000, 5000), 5000, at);
  await fsys.flush(fh);
  await fsys.fallocate(fh, 0x03, 100, T - 200);
  await fsys.release(fh);
  const rs = store.runs(inoOf('/f'));
  expect(rs.length).toBeLessThan(6);
  expect((await readAt('/f', 0, 100)).equals(randomBytes(0, 100))).toBe(true);
  expect((await readAt('/f', 100, 5000)).equals(Buffer.alloc(5000))).toBe(true);
  expect((await readAt('/f', 2 ** 39, 10000)).equals(Buffer.alloc(10000))).toBe(true);
  expect((await readAt('/f', T - 100, 100)).equals(randomBytes((T - 5000) % 1000, 5000).subarray(4900))).toBe(true);
  expect(verifyStore(store).damage).toEqual([]);
});
