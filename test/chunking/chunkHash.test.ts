// chunkAndHash: the chunks of a window of file bytes and their SHA-256 digests, computed in one
// threadpool job. It must give exactly the chunking of the whole file (Rabin cuts plus object
// boundaries) whatever window the bytes arrive in, and stop where it is told to.
import fs from 'node:fs';
import { chunkBuffer, LBFS_PARAMS, OBJECT_MAGIC_BYTES } from '../../src/chunking/chunker';
import { chunkAndHash, type HashedChunk } from '../../src/chunking/chunkHash';
import { digestOf } from '../../src/chunking/digest';
import { nativeAddon } from '../../src/chunking/native';
import { randomBytes } from '../helpers/prng';

const LIBC = '/lib/x86_64-linux-gnu/libc.so.6';
const NO_STOPS = new Float64Array(0);

/** Random bytes with libc embedded at a page-aligned offset: Rabin cuts and an object boundary. */
function sampleFile(): Buffer {
  const libc = fs.readFileSync(LIBC);
  return Buffer.concat([randomBytes(31, 3 * 4096), libc.subarray(0, 300_000), randomBytes(32, 250_001)]);
}

const asPairs = (chunks: readonly HashedChunk[]) => chunks.map((c) => [c.length, c.digest.toString('hex')]);

test('the native addon is in use (otherwise this file tests only the JS loop)', () => {
  expect(nativeAddon()).toBeDefined();
});

test('a whole file in one final window gives the chunks and digests of chunkBuffer', async () => {
  const file = sampleFile();
  const got = await chunkAndHash({ data: file, fileBase: 0, start: 0, isFinal: true, stopFrom: file.length + 1, stops: NO_STOPS }, LBFS_PARAMS);
  expect(asPairs(got)).toEqual(chunkBuffer(file).map((c) => [c.length, c.digest.toString('hex')]));
  expect(got[5].digest.equals(digestOf(file.subarray(got.slice(0, 5).reduce((n, c) => n + c.length, 0), got.slice(0, 6).reduce((n, c) => n + c.length, 0))))).toBe(true);
});

test('windows that are not final stop while a whole maximal chunk still fits, and resuming gives the same chunks', async () => {
  const file = sampleFile();
  const out: HashedChunk[] = [];
  let pos = 0;
  while (pos < file.length) {
    // windows of 100 000 bytes at odd file offsets: object boundaries must be found by file offset
    const end = Math.min(file.length, pos + 100_000);
    const got = await chunkAndHash(
      { data: file.subarray(pos, end), fileBase: pos, start: 0, isFinal: end === file.length, stopFrom: Infinity, stops: NO_STOPS },
      LBFS_PARAMS,
    );
    let consumed = 0;
    for (const c of got) consumed += c.length;
    if (end < file.length) expect(consumed + LBFS_PARAMS.maxSize + OBJECT_MAGIC_BYTES).toBeGreaterThan(end - pos);
    out.push(...got);
    pos += consumed;
  }
  expect(asPairs(out)).toEqual(chunkBuffer(file).map((c) => [c.length, c.digest.toString('hex')]));
});

test('it stops after the first cut at or past stopFrom that is one of the stops', async () => {
  const file = sampleFile();
  const all = chunkBuffer(file);
  const cuts = all.map((c) => c.offset + c.length);
  // stops before stopFrom and offsets that are not cuts are passed over
  const stops = Float64Array.from([cuts[2], cuts[6] + 1, cuts[9], cuts[12]]);
  const got = await chunkAndHash({ data: file, fileBase: 0, start: 0, isFinal: true, stopFrom: cuts[7], stops }, LBFS_PARAMS);
  expect(got.length).toBe(10);
  expect(asPairs(got)).toEqual(all.slice(0, 10).map((c) => [c.length, c.digest.toString('hex')]));
});

test('chunking starts at `start`, not at the window start', async () => {
  const file = sampleFile();
  const all = chunkBuffer(file);
  const from = all[3].offset;
  const got = await chunkAndHash({ data: file, fileBase: 0, start: from, isFinal: true, stopFrom: Infinity, stops: NO_STOPS }, LBFS_PARAMS);
  expect(asPairs(got)).toEqual(all.slice(3).map((c) => [c.length, c.digest.toString('hex')]));
});

test('an empty remainder gives no chunks', async () => {
  const data = randomBytes(33, 1000);
  expect(await chunkAndHash({ data, fileBase: 0, start: 1000, isFinal: true, stopFrom: Infinity, stops: NO_STOPS }, LBFS_PARAMS)).toEqual([]);
});
