// The batch and gather forms of the local store's chunk source (getChunks, readInto) and of the
// caching wrapper in front of it, on a real LMDB store: the same verified bytes as one chunk at a
// time, and a damaged chunk refused without taking its neighbours down.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Store } from '../../src/store/store';
import { LocalChunkSource } from '../../src/store/localSource';
import { CachedSource } from '../../src/store/cachedSource';
import { CODEC_ZSTD, compress, encodeChunk } from '../../src/chunking/compress';
import { digestOf, type Digest } from '../../src/chunking/digest';
import { randomBytes } from '../helpers/prng';

const exe = fs.readFileSync('/usr/bin/ls');
// Two compressible chunks (zstd) and one random (raw), as the store keeps them.
const plains = [exe.subarray(8192, 8192 + 12000), exe.subarray(30000, 30000 + 7000), randomBytes(9, 5000)].map((b) => Buffer.from(b));
const digests = plains.map((p) => digestOf(p));
let dir: string;
let store: Store;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-sources-'));
  store = await Store.open(dir);
  await store.txn(() => plains.forEach((p, i) => store.refChunk(digests[i], p.length, encodeChunk(p))));
});
afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Overwrite a stored chunk's bytes behind the store's back (a disk error or an attacker). */
async function tamper(d: Digest): Promise<void> {
  const enc = encodeChunk(plains[digests.indexOf(d)]);
  const bad = Buffer.from(enc.data);
  bad[bad.length >> 1] ^= 0xff;
  await store.txn(() => {
    store.unrefChunk(d);
    store.refChunk(d, plains[digests.indexOf(d)].length, { codec: enc.codec, data: bad });
  });
}

test('getChunks returns each chunk, verified, in the order asked, with unknown digests undefined', async () => {
  const unknown = digestOf(Buffer.from('not stored'));
  const got = await new LocalChunkSource(store).getChunks([digests[2], unknown, digests[0], digests[1]]);
  expect(got.map((b) => b && Buffer.from(b).toString('hex'))).toEqual([plains[2], undefined, plains[0], plains[1]].map((b) => b?.toString('hex')));
});

test('readInto places the wanted part of each chunk at its offset', async () => {
  const out = Buffer.alloc(300);
  const parts = [
    { digest: digests[0], skip: 11900, take: 100, at: 0 },
    { digest: digests[1], skip: 0, take: 7000 - 6900, at: 100 },
    { digest: digests[2], skip: 4900, take: 100, at: 200 },
  ];
  expect(await new LocalChunkSource(store).readInto(parts, out)).toEqual([true, true, true]);
  expect(out.equals(Buffer.concat([plains[0].subarray(11900), plains[1].subarray(0, 100), plains[2].subarray(4900)]))).toBe(true);
});

test('a tampered chunk is refused and counted while the rest of the batch is served', async () => {
  await tamper(digests[1]);
  const local = new LocalChunkSource(store);
  const got = await local.getChunks(digests);
  expect(got[0]?.equals(plains[0])).toBe(true);
  expect(got[1]).toBeUndefined();
  expect(got[2]?.equals(plains[2])).toBe(true);
  expect(local.counters.verifyFailures).toBe(1);
  const out = Buffer.alloc(10, 0xee);
  expect(await local.readInto([{ digest: digests[1], skip: 5, take: 10, at: 0 }], out)).toEqual([false]);
  expect(out.every((x) => x === 0xee)).toBe(true);
});

describe('reads that know each chunk’s length (a file’s extents) skip the reference record', () => {
  const whole = (i: number, at: number) => ({ digest: digests[i], skip: 0, take: plains[i].length, at, length: plains[i].length });

  test('raw and zstd chunks read the same as through their references', async () => {
    const out = Buffer.alloc(plains[0].length + plains[2].length);
    expect(await new LocalChunkSource(store).readInto([whole(0, 0), whole(2, plains[0].length)], out)).toEqual([true, true]);
    expect(out.equals(Buffer.concat([plains[0], plains[2]]))).toBe(true);
  });

  test('a chunk kept compressed although the frame is not shorter still reads right', async () => {
    // Random bytes compress to a frame longer than themselves. Kept anyway (against the writer's
    // rule), the stored length no longer tells the codec: the read must notice and take the
    // reference record's word, with the exact bytes and no failure counted.
    const frame = compress(plains[2]);
    expect(frame.length).toBeGreaterThan(plains[2].length);
    await store.txn(() => {
      store.unrefChunk(digests[2]);
      store.refChunk(digests[2], plains[2].length, { codec: CODEC_ZSTD, data: frame });
    });
    const local = new LocalChunkSource(store);
    const out = Buffer.alloc(plains[2].length);
    expect(await local.readInto([whole(2, 0)], out)).toEqual([true]);
    expect(out.equals(plains[2])).toBe(true);
    expect(local.counters.verifyFailures).toBe(0);
  });

  test('a tampered chunk is still refused, counted once', async () => {
    await tamper(digests[0]);
    const local = new LocalChunkSource(store);
    const out = Buffer.alloc(plains[0].length);
    expect(await local.readInto([whole(0, 0)], out)).toEqual([false]);
    expect(local.counters.verifyFailures).toBe(1);
  });

  test('a chunk the store does not have is a miss', async () => {
    const local = new LocalChunkSource(store);
    const missing = Buffer.from('not stored at all');
    const out = Buffer.alloc(missing.length);
    expect(await local.readInto([{ digest: digestOf(missing), skip: 0, take: missing.length, at: 0, length: missing.length }], out)).toEqual([false]);
    expect(local.counters.misses).toBe(1);
  });
});

test('the cache serves parts of chunks it holds without asking the store', async () => {
  const local = new LocalChunkSource(store);
  const cached = new CachedSource(local);
  await cached.getChunks([digests[0]]);
  const asked = local.counters.hits;
  const out = Buffer.alloc(50);
  expect(await cached.readInto([{ digest: digests[0], skip: 10, take: 50, at: 0 }], out)).toEqual([true]);
  expect(out.equals(plains[0].subarray(10, 60))).toBe(true);
  expect(local.counters.hits).toBe(asked);
});

test('concurrent batch requests for the same chunk decode it once', async () => {
  const local = new LocalChunkSource(store);
  const cached = new CachedSource(local);
  const [x, y] = await Promise.all([cached.getChunks([digests[0], digests[1]]), cached.getChunks([digests[1], digests[0]])]);
  expect(x[1]?.equals(plains[1]) && y[0]?.equals(plains[1])).toBe(true);
  expect(local.counters.hits).toBe(2);
});
