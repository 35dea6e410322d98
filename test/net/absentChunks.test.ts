// Absent chunk records: a recipe may reference a chunk whose bytes are still on a peer. The t.store
// must answer "not here" for it, fill it exactly once, and keep verify and stats exact meanwhile.
import { digestOf } from '../../src/chunking/digest';
import { encodeChunk } from '../../src/chunking/compress';
import { LocalChunkSource } from '../../src/store/localSource';
import { Store } from '../../src/store/store';
import { computeStats } from '../../src/store/stats';
import { verifyStore } from '../../src/store/verify';
import { S_IFREG } from '../../src/store/records';
import { useOpenStore } from '../helpers/store';

const t = useOpenStore('absent');

const plain = Buffer.alloc(9000, 7);
const digest = digestOf(plain);

async function fileWithAbsentChunk(): Promise<number> {
  return t.store.txn(() => {
    const ino = t.store.allocIno();
    t.store.putInode({ ino, mode: S_IFREG | 0o644, uid: 0, gid: 0, nlink: 1, size: plain.length, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, target: '' });
    t.store.addEntry(1, 'lazy', ino);
    t.store.putExtent(ino, { offset: 0, length: plain.length, digest });
    t.store.refAbsentChunk(digest, plain.length);
    return ino;
  });
}

test('an absent chunk is referenced but not present, and the local source answers undefined', async () => {
  await fileWithAbsentChunk();
  expect(t.store.isChunkAbsent(digest)).toBe(true);
  expect(t.store.hasChunk(digest)).toBe(false);
  expect(t.store.chunkRef(digest)).toEqual({ refs: 1, length: plain.length, storedLength: 0, codec: 255 });
  const src = new LocalChunkSource(t.store);
  expect(await src.getChunk(digest)).toBeUndefined();
  expect(src.counters.verifyFailures).toBe(0);
});

test('verify counts absent chunks as not yet fetched, not as damage', async () => {
  await fileWithAbsentChunk();
  const r = verifyStore(t.store);
  expect(r.damage).toEqual([]);
  expect(r.notYetFetched).toBe(1);
});

test('stats keep absent chunks apart from stored ones', async () => {
  await fileWithAbsentChunk();
  const s = computeStats(t.store);
  expect(s.chunks).toBe(0);
  expect(s.uniqueBytes).toBe(0);
  expect(s.storedBytes).toBe(0);
  expect(s.absentChunks).toBe(1);
  expect(s.absentBytes).toBe(plain.length);
  expect(s.dedupRatio).toBe(1);
});

test('fillChunk stores the bytes once; the chunk is then read back verified', async () => {
  await fileWithAbsentChunk();
  const enc = encodeChunk(plain);
  expect(await t.store.txn(() => t.store.fillChunk(digest, enc))).toBe(true);
  expect(await t.store.txn(() => t.store.fillChunk(digest, enc))).toBe(false);
  expect(t.store.chunkRef(digest)).toEqual({ refs: 1, length: plain.length, storedLength: enc.data.length, codec: enc.codec });
  expect((await new LocalChunkSource(t.store).getChunk(digest))!.equals(plain)).toBe(true);
  expect(verifyStore(t.store)).toMatchObject({ damage: [], notYetFetched: 0 });
});

test('a writer that has the bytes of an absent chunk fills it while taking its reference', async () => {
  await fileWithAbsentChunk();
  const enc = encodeChunk(plain);
  expect(await t.store.txn(() => t.store.refChunk(digest, plain.length, enc))).toBe(true);
  expect(t.store.chunkRef(digest)).toEqual({ refs: 2, length: plain.length, storedLength: enc.data.length, codec: enc.codec });
});

test('dropping the last reference of an absent chunk removes its record', async () => {
  await fileWithAbsentChunk();
  await t.store.txn(() => t.store.unrefChunk(digest));
  expect(t.store.chunkRef(digest)).toBeUndefined();
  expect(await t.store.txn(() => t.store.fillChunk(digest, encodeChunk(plain)))).toBe(false);
});
