// Decoding many stored chunks as one threadpool job (decodeVerifyBatchAsync): the read path's
// batch form. Each chunk is verified on its own and only its wanted part lands in the output.
import { readFileSync } from 'node:fs';
import {
  BATCH_CORRUPT,
  BATCH_MISMATCH,
  BATCH_OK,
  CODEC_RAW,
  CODEC_ZSTD,
  compress,
  decodeVerifyBatchAsync,
  type BatchChunk,
} from '../../src/chunking/compress';
import { digestOf } from '../../src/chunking/digest';
import { usrBinFiles, xorshift32Bytes } from './prng';

const exe = readFileSync(usrBinFiles(1)[0]);
const a = Buffer.from(exe.subarray(4096, 4096 + 9000)); // compressible: stored as zstd
const b = xorshift32Bytes(5000, 3); // random: stored raw

/** Encoded bytes of a and b one after the other, and a batch row for each. */
function batch(): { input: Buffer; rows: BatchChunk[] } {
  const za = compress(a);
  const input = Buffer.concat([za, b]);
  const rows: BatchChunk[] = [
    { codec: CODEC_ZSTD, srcOffset: 0, srcLength: za.length, length: a.length, digest: digestOf(a), outOffset: 0, skip: 0, take: a.length },
    { codec: CODEC_RAW, srcOffset: za.length, srcLength: b.length, length: b.length, digest: digestOf(b), outOffset: a.length, skip: 0, take: b.length },
  ];
  return { input, rows };
}

test('whole chunks are decoded into their places in one output', async () => {
  const { input, rows } = batch();
  const out = Buffer.alloc(a.length + b.length);
  expect([...(await decodeVerifyBatchAsync(input, rows, out))]).toEqual([BATCH_OK, BATCH_OK]);
  expect(out.equals(Buffer.concat([a, b]))).toBe(true);
});

test('only the wanted part of a chunk is copied out', async () => {
  const { input, rows } = batch();
  const out = Buffer.alloc(300, 0xee);
  rows[0] = { ...rows[0], outOffset: 100, skip: 8000, take: 200 };
  expect([...(await decodeVerifyBatchAsync(input, rows.slice(0, 1), out))]).toEqual([BATCH_OK]);
  expect(out.subarray(100, 300).equals(a.subarray(8000, 8200))).toBe(true);
  expect(out.subarray(0, 100).every((x) => x === 0xee)).toBe(true);
});

test('a chunk that does not match its digest fails alone and its part is not written', async () => {
  const { input, rows } = batch();
  rows[0] = { ...rows[0], digest: digestOf(Buffer.from('something else')), skip: 1, take: 100 };
  rows[1] = { ...rows[1], outOffset: 100 };
  const out = Buffer.alloc(100 + b.length, 0xee);
  expect([...(await decodeVerifyBatchAsync(input, rows, out))]).toEqual([BATCH_MISMATCH, BATCH_OK]);
  expect(out.subarray(0, 100).every((x) => x === 0xee)).toBe(true);
  expect(out.subarray(100).equals(b)).toBe(true);
});

test('a damaged zstd frame and a raw chunk of the wrong length are corrupt', async () => {
  const { input, rows } = batch();
  input[5] ^= 0xff;
  rows[1] = { ...rows[1], srcLength: b.length - 1 };
  const out = Buffer.alloc(a.length + b.length);
  const status = [...(await decodeVerifyBatchAsync(input, rows, out))];
  expect(status[1]).toBe(BATCH_CORRUPT);
  expect([BATCH_CORRUPT, BATCH_MISMATCH]).toContain(status[0]);
});

test('a row outside its buffers is refused before any work is queued', async () => {
  const { input, rows } = batch();
  const small = Buffer.alloc(10);
  await expect(decodeVerifyBatchAsync(input, rows, small)).rejects.toBeInstanceOf(RangeError);
  await expect(decodeVerifyBatchAsync(input.subarray(0, 10), rows, Buffer.alloc(20000))).rejects.toBeInstanceOf(RangeError);
});
