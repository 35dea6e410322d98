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
  await finder.idle(); // what it learnt is written before the test goes on (or ends)
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

test('a candidate the caller does not want is not read', async () => {
  const file = put('libsame.so', bytes);
  const finder = new TwinFinder({ dirs: [dir], uid });
  const asked: string[] = [];
  const twin = await finder.find(digest, bytes.length, (dev, ino) => (asked.push(`${dev}:${ino}`), false));
  expect(twin).toBeUndefined();
  const st = fs.statSync(file, { bigint: true });
  expect(asked).toEqual([`${st.dev}:${st.ino}`]);
  expect(finder.hashedBytes).toBe(0);
});

test('a missing directory is no error', async () => {
  put('libsame.so', bytes);
  expect(await found(new TwinFinder({ dirs: [path.join(dir, 'missing'), dir], uid }))).toBe(path.join(dir, 'libsame.so'));
});

describe('remembering verified files (cacheFile)', () => {
  const cacheFile = () => path.join(dir, '..', `${path.basename(dir)}-twins.json`);
  afterEach(() => fs.rmSync(cacheFile(), { force: true }));
  const finder = () => new TwinFinder({ dirs: [dir], uid, cacheFile: cacheFile() });

  test('a file verified by one finder is found by the next without being read', async () => {
    const file = put('libsame.so', bytes);
    const first = finder();
    expect(await found(first)).toBe(file);
    expect(first.hashedBytes).toBe(bytes.length);
    const second = finder();
    expect(await found(second)).toBe(file);
    expect(second.hashedBytes).toBe(0);
  });

  test('a file written in place since is hashed again, and no longer a twin if its bytes changed', async () => {
    const file = put('libsame.so', bytes);
    const first = finder();
    expect(await found(first)).toBe(file);
    const changed = Buffer.from(bytes);
    changed[100] ^= 1;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, changed, 0, changed.length, 0); // same inode, same size: only ctime tells
    fs.closeSync(fd);
    const again = finder();
    expect(await found(again)).toBeUndefined();
    expect(again.hashedBytes).toBe(bytes.length);
  });

  test('a file that differed is remembered as different: not read again', async () => {
    const other = Buffer.from(bytes);
    other[0] ^= 1;
    put('libother.so', other);
    const first = finder();
    expect(await found(first)).toBeUndefined();
    const again = finder();
    expect(await found(again)).toBeUndefined();
    expect(again.hashedBytes).toBe(0);
  });

  test('an unreadable cache file is no cache: every candidate is hashed', async () => {
    fs.writeFileSync(cacheFile(), '{ not json');
    const file = put('libsame.so', bytes);
    const f = finder();
    expect(await found(f)).toBe(file);
    expect(f.hashedBytes).toBe(bytes.length);
  });
});
