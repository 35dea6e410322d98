// Finding a system file identical to an object (src/pagecache/twins.ts): only a file whose
// bytes hash to the object's digest, that nobody but its owner can change, is a twin.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { digestOf } from '../../src/chunking/digest';
import { TwinFinder } from '../../src/pagecache/twins';
import { tempDir } from './helpers';

const uid = process.getuid!();
let dir: string;
const bytes = randomBytes(3 * 4096 + 100);
const digest = digestOf(bytes);

beforeEach(() => {
  dir = tempDir('twins');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function put(name: string, data: Buffer, mode = 0o644): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, data);
  fs.chmodSync(file, mode);
  return file;
}

async function found(finder: TwinFinder): Promise<string | undefined> {
  const twin = await finder.find(digest, bytes.length);
  if (!twin) return undefined;
  try {
    // The handle it returns is the file it checked, holding the object's bytes.
    const got = Buffer.alloc(bytes.length);
    await twin.handle.read(got, 0, got.length, 0);
    expect(got.equals(bytes)).toBe(true);
    return twin.path;
  } finally {
    await twin.handle.close();
  }
}

test('a file with the same bytes is a twin, found among files of other sizes', async () => {
  put('other', randomBytes(5000));
  const file = put('libsame.so', bytes);
  expect(await found(new TwinFinder({ dirs: [dir], uid }))).toBe(file);
});

test('a file of the same size with other bytes is not', async () => {
  const other = Buffer.from(bytes);
  other[4096] ^= 1;
  put('libother.so', other);
  expect(await found(new TwinFinder({ dirs: [dir], uid }))).toBeUndefined();
});

test('of two files of the same size, the one with the same bytes is chosen', async () => {
  const other = Buffer.from(bytes);
  other[0] ^= 1;
  put('a-other.so', other);
  const file = put('b-same.so', bytes);
  expect(await found(new TwinFinder({ dirs: [dir], uid }))).toBe(file);
});

test('a file that group or others may write is not a twin', async () => {
  put('libwritable.so', bytes, 0o664);
  expect(await found(new TwinFinder({ dirs: [dir], uid }))).toBeUndefined();
});

test('a file of another owner is not a twin', async () => {
  put('libsame.so', bytes);
  expect(await found(new TwinFinder({ dirs: [dir], uid: uid + 1 }))).toBeUndefined();
});

test('a symbolic link is not followed', async () => {
  const elsewhere = tempDir('twins-target');
  try {
    fs.writeFileSync(path.join(elsewhere, 'lib.so'), bytes);
    fs.symlinkSync(path.join(elsewhere, 'lib.so'), path.join(dir, 'lib.so'));
    expect(await found(new TwinFinder({ dirs: [dir], uid }))).toBeUndefined();
  } finally {
    fs.rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('a missing directory is no error', async () => {
  put('libsame.so', bytes);
  expect(await found(new TwinFinder({ dirs: [path.join(dir, 'missing'), dir], uid }))).toBe(path.join(dir, 'libsame.so'));
});
