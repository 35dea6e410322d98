// The object-boundary rule: a chunk never spans a page-aligned ELF header, so a library embedded
// page-aligned in a bigger file is chunked exactly as the library on its own.
import fs from 'node:fs';
import { chunkBuffer, cutPoints, nextObjectBoundary } from '../../src/chunking/chunker';
import { randomBytes } from '../helpers/prng';

const LIBC = '/lib/x86_64-linux-gnu/libc.so.6';

test('a page-aligned library inside a file has the chunks of the library itself', () => {
  const libc = fs.readFileSync(LIBC);
  const head = randomBytes(21, 10000);
  const padded = Buffer.alloc(12288);
  head.copy(padded);
  const file = Buffer.concat([padded, libc, randomBytes(22, 5000)]);
  const inside = chunkBuffer(file).filter((c) => c.offset >= 12288 && c.offset + c.length <= 12288 + libc.length);
  const alone = chunkBuffer(libc);
  // every chunk of libc on its own but the last (which ends at libc's end, not at a cut) recurs
  const shared = new Set(inside.map((c) => c.digest.toString('hex')));
  const missing = alone.slice(0, -1).filter((c) => !shared.has(c.digest.toString('hex')));
  expect(missing).toEqual([]);
  expect(cutPoints(file)).toContain(12288);
});

test('an ELF header that is not page-aligned is not a boundary', () => {
  const data = randomBytes(23, 20000);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(data, 5000);
  expect(nextObjectBoundary(data, 0, data.length)).toBe(data.length);
  expect(cutPoints(data)).not.toContain(5000);
});

test('boundaries are found relative to the file offset of the buffer', () => {
  const data = randomBytes(24, 9000);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(data, 1000);
  // data[0] sits at file offset 3096, so data[1000] is file offset 4096
  expect(nextObjectBoundary(data, 0, data.length, 3096)).toBe(1000);
  expect(nextObjectBoundary(data, 0, data.length, 0)).toBe(data.length);
});
