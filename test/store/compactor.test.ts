// Compression off the write path: chunks written with compressLater are stored raw and queued;
// the compactor compresses them later, and the file reads back the same throughout.
import fs from 'node:fs';
import path from 'node:path';
import { encodeChunk, FAST_ZSTD_LEVEL } from '../../src/chunking/compress';
import { Filesystem } from '../../src/fs/filesystem';
import { Compactor } from '../../src/store/compactor';
import { LocalChunkSource } from '../../src/store/localSource';
import { computeStats } from '../../src/store/stats';
import { Store } from '../../src/store/store';
import { verifyStore } from '../../src/store/verify';
import { useOpenStore } from '../helpers/store';

const t = useOpenStore('compact');

async function writeFile(fsys: Filesystem, p: string, data: Buffer): Promise<void> {
  const fh = await fsys.create(p, 0o644, { uid: 0, gid: 0 });
  await fsys.write(fh, data, data.length, 0);
  await fsys.release(fh);
}

async function readFile(fsys: Filesystem, p: string): Promise<Buffer> {
  const size = (await fsys.getattr(p)).size;
  const fh = await fsys.open(p, 0);
  const out = Buffer.alloc(size);
  await fsys.read(fh, out, size, 0);
  await fsys.release(fh);
  return out;
}

test('chunks written with compressLater are raw and queued until the compactor compresses them', async () => {
  const fsys = new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true });
  const data = fs.readFileSync('/usr/bin/ls'); // real code: compresses well
  await writeFile(fsys, '/ls', data);
  const before = computeStats(t.store);
  expect(before.storedBytes).toBe(before.uniqueBytes);
  expect(before.pendingCompression).toBe(before.chunks);

  await new Compactor(t.store, { isIdle: () => true }).drain();
  const after = computeStats(t.store);
  expect(after.pendingCompression).toBe(0);
  expect(after.uniqueBytes).toBe(before.uniqueBytes);
  expect(after.storedBytes).toBeLessThan(before.storedBytes * 0.7);
  expect((await readFile(new Filesystem(t.store, new LocalChunkSource(t.store)), '/ls')).equals(data)).toBe(true);
  expect(verifyStore(t.store).damage).toEqual([]);
});

test('a chunk deleted before the compactor reaches it leaves the queue', async () => {
  const fsys = new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true });
  await writeFile(fsys, '/f', fs.readFileSync('/usr/bin/true'));
  await fsys.unlink('/f');
  expect(computeStats(t.store)).toMatchObject({ chunks: 0, pendingCompression: 0 });
});

test('the compactor waits while the filesystem is busy', async () => {
  const fsys = new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true });
  await writeFile(fsys, '/ls', fs.readFileSync('/usr/bin/ls'));
  const compactor = new Compactor(t.store, { isIdle: () => false, pollMs: 10 });
  compactor.start();
  await new Promise((r) => setTimeout(r, 100));
  await compactor.stop();
  expect(compactor.compressed).toBe(0);
  expect(computeStats(t.store).pendingCompression).toBeGreaterThan(0);
});

test('slinkyfs gc compresses what waits and shrinks the database file, and the store verifies', async () => {
  const fsys = new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true });
  for (const p of ['ls', 'cat', 'sort', 'grep']) await writeFile(fsys, `/${p}`, fs.readFileSync(`/usr/bin/${p}`));
  await t.store.close();
  const before = fs.statSync(path.join(t.dir, 'db', 'data.mdb')).size;
  const { slinkyfs } = await import('../helpers/cli');
  const r = slinkyfs(['gc', '--store', t.dir]);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/compressed \d+ chunks; database file/);
  expect(fs.statSync(path.join(t.dir, 'db', 'data.mdb')).size).toBeLessThan(before);
  expect(slinkyfs(['verify', '--store', t.dir]).status).toBe(0);
  t.store = await Store.open(t.dir);
  expect(computeStats(t.store).pendingCompression).toBe(0);
  expect(t.store.pageCheck).toEqual({ kind: 'unchanged since a clean close' }); // LMDB wrote the new file
});

test('the free pages compression leaves are counted, and gc gives back that much of the file', async () => {
  const fsys = new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true });
  for (const p of ['ls', 'cat', 'sort', 'grep']) await writeFile(fsys, `/${p}`, fs.readFileSync(`/usr/bin/${p}`));
  await new Compactor(t.store, { isIdle: () => true }).drain();
  const { databaseBytes, databaseFreeBytes } = computeStats(t.store);
  await t.store.close();
  const { slinkyfs } = await import('../helpers/cli');
  expect(slinkyfs(['gc', '--store', t.dir]).status).toBe(0);
  t.store = await Store.open(t.dir);
  const after = computeStats(t.store);
  // Raw chunks' pages make up most of the file once compressed; gc gives back exactly the free
  // pages, but for the free list's own page(s).
  expect(databaseFreeBytes).toBeGreaterThan(databaseBytes / 2);
  expect(databaseBytes - databaseFreeBytes - after.databaseBytes).toBeGreaterThanOrEqual(0);
  expect(databaseBytes - databaseFreeBytes - after.databaseBytes).toBeLessThanOrEqual(2 * 4096);
  expect(after.databaseFreeBytes).toBe(0);
});

test('once the backlog holds its bound, new chunks are compressed at the fast level as they are written and not queued', async () => {
  await writeFile(new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true }), '/ls', fs.readFileSync('/usr/bin/ls'));
  const before = computeStats(t.store);
  const bounded = new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true, compressBacklogChunks: before.pendingCompression });
  const cat = fs.readFileSync('/usr/bin/cat');
  await writeFile(bounded, '/cat', cat);
  const after = computeStats(t.store);
  expect(after.chunks).toBeGreaterThan(before.chunks);
  expect(after.pendingCompression).toBe(before.pendingCompression);
  const queued = new Set(t.store.pendingCompression(before.pendingCompression + 1).map((d) => d.toString('hex')));
  for (const e of t.store.extents((await bounded.getattr('/cat')).ino)) {
    if (queued.has(e.digest.toString('hex'))) continue; // shared with ls: stored raw before
    const fast = encodeChunk(cat.subarray(e.offset, e.offset + e.length), FAST_ZSTD_LEVEL);
    expect(t.store.chunkRef(e.digest)).toMatchObject({ codec: fast.codec, storedLength: fast.data.length });
  }
  expect(after.storedBytes - before.storedBytes).toBeLessThan((after.uniqueBytes - before.uniqueBytes) * 0.7);
  expect((await readFile(bounded, '/cat')).equals(cat)).toBe(true);
});

test('below its bound the backlog takes every new chunk raw', async () => {
  await writeFile(new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true }), '/ls', fs.readFileSync('/usr/bin/ls'));
  const before = computeStats(t.store);
  const bounded = new Filesystem(t.store, new LocalChunkSource(t.store), { compressLater: true, compressBacklogChunks: before.pendingCompression + 1 });
  await writeFile(bounded, '/cat', fs.readFileSync('/usr/bin/cat'));
  const after = computeStats(t.store);
  expect(after.pendingCompression - before.pendingCompression).toBe(after.chunks - before.chunks);
  expect(after.storedBytes - before.storedBytes).toBe(after.uniqueBytes - before.uniqueBytes);
});
