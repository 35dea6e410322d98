// A file's holes (its records of the maximal zero chunk) on a real LMDB store, through the
// Filesystem layer: the store keeps each file's hole bytes as its recipe changes, st_blocks
// leaves them out, lseek's SEEK_DATA and SEEK_HOLE find them, and verify checks the count.
// Expectations come from the chunking of the file's bytes, computed here apart from the store.
import { chunkBuffer } from '../../src/chunking/chunker';
import { Filesystem } from '../../src/fs/filesystem';
import { ErrnoError } from '../../src/fs/errno';
import { InvalidError } from '../../src/store/errors';
import { Store } from '../../src/store/store';
import { computeStats } from '../../src/store/stats';
import { verifyStore } from '../../src/store/verify';
import { patched, resized } from '../helpers/bytes';
import { randomBytes } from '../helpers/prng';
import { ROOT, useOpenFs } from '../helpers/store';

const MAX = 65536;
const MiB = 1 << 20;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const PUNCH_HOLE = 0x02 | 0x01; // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE

let store: Store;
let fsys: Filesystem;
const opened = useOpenFs('holes', (s, f) => {
  store = s;
  fsys = f;
});
const inoOf = (p: string) => store.lookup(1, p.slice(1))!;

/** The hole ranges of a file holding `bytes`: its chunks that are MAX zero bytes, merged. */
function holesOf(bytes: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const c of chunkBuffer(bytes)) {
    if (c.length !== MAX || !bytes.subarray(c.offset, c.offset + MAX).equals(Buffer.alloc(MAX))) continue;
    const last = out[out.length - 1];
    if (last && last[1] === c.offset) last[1] += MAX;
    else out.push([c.offset, c.offset + MAX]);
  }
  return out;
}
const holeBytesOf = (bytes: Buffer) => holesOf(bytes).reduce((n, [a, b]) => n + b - a, 0);

/** What lseek must answer on a file of `size` bytes with these holes (undefined: ENXIO). */
function expectedSeek(holes: Array<[number, number]>, size: number, offset: number, whence: number): number | undefined {
  if (offset >= size) return undefined;
  const inHole = (x: number) => holes.find(([a, b]) => a <= x && x < b);
  if (whence === SEEK_HOLE) {
    if (inHole(offset)) return offset;
    return holes.find(([a]) => a > offset)?.[0] ?? size;
  }
  const h = inHole(offset);
  if (!h) return offset;
  return h[1] < size ? h[1] : undefined;
}

async function seek(p: string, offset: number, whence: number): Promise<number | undefined> {
  try {
    return await fsys.lseekIno(inoOf(p), offset, whence);
  } catch (err) {
    if (err instanceof ErrnoError && err.errno === -6) return undefined; // ENXIO
    throw err;
  }
}

/** Build /f by the steps, mirroring them on a buffer; after each, the store's count is the bytes'. */
async function islands(check: (bytes: Buffer) => Promise<void>): Promise<Buffer> {
  let bytes: Buffer = Buffer.alloc(0);
  const fh = await fsys.create('/f', 0o644, ROOT);
  const write = async (offset: number, data: Buffer) => {
    await fsys.write(fh, data, data.length, offset);
    await fsys.flush(fh);
    bytes = patched(bytes, offset, data);
  };
  const truncate = async (size: number) => {
    await fsys.ftruncate(fh, size);
    bytes = resized(bytes, size);
  };
  await write(0, randomBytes(1, 100_000));
  await check(bytes);
  await truncate(40 * MiB);
  await check(bytes);
  await write(20 * MiB + 12345, randomBytes(2, 50_000));
  await check(bytes);
  await write(30 * MiB, randomBytes(3, 5 * MiB));
  await check(bytes);
  await fsys.fallocate(fh, PUNCH_HOLE, 31 * MiB + 777, 2 * MiB);
  bytes.fill(0, 31 * MiB + 777, 33 * MiB + 777);
  await check(bytes);
  await truncate(25 * MiB);
  await check(bytes);
  await fsys.release(fh);
  return bytes;
}

test("the store keeps a file's hole bytes through writes into holes, a punched hole, growing, shrinking and unlink", async () => {
  const seen: number[] = [];
  await islands(async (bytes) => {
    const want = holeBytesOf(bytes);
    seen.push(want);
    expect(store.holeBytes(inoOf('/f'))).toBe(want);
    expect(verifyStore(store).damage).toEqual([]);
  });
  // The steps did change the count: none, a hole, islands in it, a punched hole, cut short.
  expect(seen[0]).toBe(0);
  expect(new Set(seen).size).toBe(seen.length);
  const ino = inoOf('/f');
  await fsys.unlink('/f');
  expect(store.holeBytes(ino)).toBe(0);
  expect(store.countHoles().size).toBe(0);
});

test('st_blocks counts the bytes outside holes: none for a file that is all hole', async () => {
  const bytes = await islands(async () => undefined);
  const attr = await fsys.getattr('/f');
  expect(attr.size).toBe(25 * MiB);
  expect(attr.blocks).toBe(Math.ceil((bytes.length - holeBytesOf(bytes)) / 512));
  const g = await fsys.create('/hole', 0o644, ROOT);
  await fsys.ftruncate(g, 2 ** 40);
  await fsys.release(g);
  expect(await fsys.getattr('/hole')).toMatchObject({ size: 2 ** 40, blocks: 0 });
});

test("stats counts every file's hole bytes among its logical bytes", async () => {
  const bytes = await islands(async () => undefined);
  const g = await fsys.create('/hole', 0o644, ROOT);
  await fsys.ftruncate(g, 2 ** 40);
  await fsys.release(g);
  expect(computeStats(store)).toMatchObject({ files: 2, logicalBytes: bytes.length + 2 ** 40, holeBytes: holeBytesOf(bytes) + 2 ** 40 });
});

test('SEEK_DATA and SEEK_HOLE find the next data and the next hole, as the chunking of the bytes places them', async () => {
  const bytes = await islands(async () => undefined);
  const holes = holesOf(bytes);
  expect(holes.length).toBe(2); // before the island at 20 MiB, and after it to the end
  const offsets = [0, 1, 99_999, 100_000, 20 * MiB, 20 * MiB + 12345, 24 * MiB, bytes.length - 1, bytes.length, bytes.length + 5];
  for (const [a, b] of holes) offsets.push(a - 1, a, a + 1, b - 1, b);
  for (const at of offsets.filter((x) => x >= 0)) {
    for (const whence of [SEEK_DATA, SEEK_HOLE]) {
      expect([at, whence, await seek('/f', at, whence)]).toEqual([at, whence, expectedSeek(holes, bytes.length, at, whence)]);
    }
  }
});

test('a file that is all hole has no data: SEEK_DATA is ENXIO, SEEK_HOLE the offset itself', async () => {
  const g = await fsys.create('/hole', 0o644, ROOT);
  await fsys.ftruncate(g, 2 ** 40);
  await fsys.release(g);
  expect(await seek('/hole', 0, SEEK_DATA)).toBeUndefined();
  expect(await seek('/hole', 2 ** 39 + 3, SEEK_HOLE)).toBe(2 ** 39 + 3);
  expect(await seek('/hole', 2 ** 40, SEEK_HOLE)).toBeUndefined();
});

test('lseek answers for writes not yet committed: it commits them first', async () => {
  const fh = await fsys.create('/w', 0o644, ROOT);
  await fsys.ftruncate(fh, 8 * MiB);
  const data = randomBytes(4, 10_000);
  await fsys.write(fh, data, data.length, 4 * MiB);
  const bytes = Buffer.alloc(8 * MiB);
  data.copy(bytes, 4 * MiB);
  const holes = holesOf(bytes);
  expect(await seek('/w', 0, SEEK_DATA)).toBe(expectedSeek(holes, bytes.length, 0, SEEK_DATA));
  expect(await seek('/w', 4 * MiB, SEEK_HOLE)).toBe(expectedSeek(holes, bytes.length, 4 * MiB, SEEK_HOLE));
  expect(store.runs(inoOf('/w')).reduce((n, r) => n + r.length * r.count, 0)).toBe(8 * MiB);
  await fsys.release(fh);
});

test('lseek with another whence, or on a directory, is EINVAL-worthy bad input', async () => {
  const fh = await fsys.create('/x', 0o644, ROOT);
  await fsys.write(fh, Buffer.from('abc'), 3, 0);
  await fsys.release(fh);
  await expect(fsys.lseekIno(inoOf('/x'), 0, 2)).rejects.toThrow(InvalidError);
  await fsys.mkdir('/d', 0o755, ROOT);
  await expect(fsys.lseekIno(inoOf('/d'), 0, SEEK_DATA)).rejects.toThrow(InvalidError);
});

/** The store's private databases, to make it look like an older store or a damaged one. */
function internals(s: Store) {
  return s as unknown as { meta: { remove(k: string): void }; holes: { put(k: Buffer, v: Buffer): void; remove(k: Buffer): void; getKeys(o: object): Iterable<Buffer> } };
}

test('a store from before hole counts gets them counted the first time it is opened for writing', async () => {
  const bytes = await islands(async () => undefined);
  const ino = inoOf('/f');
  await store.txn(() => {
    const { meta, holes } = internals(store);
    meta.remove('holesIndexed');
    for (const k of Array.from(holes.getKeys({}))) holes.remove(Buffer.from(k));
  });
  await store.close();
  const old = await Store.open(opened.dir, { readOnly: true });
  try {
    expect(old.holesCounted).toBe(false);
    expect(old.holeBytes(ino)).toBe(0);
    expect(verifyStore(old).damage).toEqual([]);
  } finally {
    await old.close();
  }
  await opened.reopen();
  expect(store.holesCounted).toBe(true);
  expect(store.holeBytes(ino)).toBe(holeBytesOf(bytes));
  expect(verifyStore(store).damage).toEqual([]);
});

test('verify reports a hole count that is not its recipe', async () => {
  await islands(async () => undefined);
  const ino = inoOf('/f');
  const wrong = Buffer.alloc(8);
  wrong.writeBigUInt64LE(BigInt(MAX));
  await store.txn(() => internals(store).holes.put(Buffer.from(ino.toString(16).padStart(16, '0'), 'hex'), wrong));
  expect(verifyStore(store).damage).toEqual([{ kind: 'hole-count', what: `inode ${ino}: ${MAX} hole bytes recorded, ${store.countHoles().get(ino)} in its recipe` }]);
});
