// copy_file_range(2) inside the mount (what `cp` uses) clones recipes: no byte is read, hashed or
// stored again. Observed from other processes through a real FUSE mount.
import fs from 'node:fs';
import path from 'node:path';
import { useMount } from '../helpers/mount';
import { sh, slinkyfs } from '../helpers/cli';
import { randomBytes } from '../helpers/prng';

const mount = useMount();

/** Run a Python snippet with the mountpoint as sys.argv[1]; returns its stdout. */
function py(code: string): string {
  const r = sh(`python3 -c '${code.replace(/'/g, `'"'"'`)}' '${mount.mp}'`, { timeout: 60_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

// 40 MiB of random bytes: about 5000 chunks, more than one clone call takes (2048 extents;
// test/store/fileContent.test.ts counts the calls).
const big = randomBytes(11, 40 << 20);

test('cp of a file within the mount stores nothing new and copies every byte', () => {
  fs.writeFileSync(path.join(mount.mp, 'big'), big);
  const before = mount.m.stats();
  expect(sh(`cp '${mount.mp}/big' '${mount.mp}/big-copy'`).status).toBe(0);
  const after = mount.m.stats();
  expect(fs.readFileSync(path.join(mount.mp, 'big-copy')).equals(big)).toBe(true);
  expect(after.storedBytes).toBe(before.storedBytes);
  expect(after.chunks).toBe(before.chunks);
  expect(after.logicalBytes).toBe(before.logicalBytes + big.length);
});

test('the copy and the original change independently, and the store stays consistent', () => {
  const copy = path.join(mount.mp, 'big-copy');
  const fd = fs.openSync(copy, 'r+');
  fs.writeSync(fd, Buffer.from('changed'), 0, 7, 1 << 20);
  fs.closeSync(fd);
  const expected = Buffer.from(big);
  Buffer.from('changed').copy(expected, 1 << 20);
  expect(fs.readFileSync(copy).equals(expected)).toBe(true);
  expect(fs.readFileSync(path.join(mount.mp, 'big')).equals(big)).toBe(true);
  fs.unlinkSync(path.join(mount.mp, 'big'));
  expect(fs.readFileSync(copy).equals(expected)).toBe(true);
  mount.m.unmount();
  const v = slinkyfs(['verify', '--store', mount.m.store]);
  expect(v.status).toBe(0);
  mount.m.remount();
  expect(fs.readFileSync(copy).equals(expected)).toBe(true);
});

test('a clone followed by appends has the recipe a fresh write of the same bytes has', () => {
  const a = randomBytes(12, 3 << 20);
  const tail = randomBytes(13, 100_000);
  fs.writeFileSync(path.join(mount.mp, 'a'), a);
  expect(sh(`cp '${mount.mp}/a' '${mount.mp}/grown'`).status).toBe(0);
  fs.appendFileSync(path.join(mount.mp, 'grown'), tail);
  const before = mount.m.stats();
  // The same bytes written from scratch: if the grown file's chunks were not the chunking of
  // its bytes, this write would store chunks it does not share.
  fs.writeFileSync(path.join(mount.mp, 'fresh'), Buffer.concat([a, tail]));
  const after = mount.m.stats();
  expect(after.chunks).toBe(before.chunks);
  expect(fs.readFileSync(path.join(mount.mp, 'grown')).equals(Buffer.concat([a, tail]))).toBe(true);
});

test('ranges a clone cannot serve are copied by the kernel, byte for byte', () => {
  const src = randomBytes(14, 300_000);
  fs.writeFileSync(path.join(mount.mp, 'src'), src);
  const out = py(
    [
      'import os, sys',
      'a = os.open(sys.argv[1] + "/src", os.O_RDONLY)',
      'b = os.open(sys.argv[1] + "/dst", os.O_RDWR | os.O_CREAT | os.O_TRUNC)',
      'n1 = os.copy_file_range(a, b, 5000, 1234, 0)', // different offsets
      'n2 = os.copy_file_range(a, b, 10, 0, 0)', // over bytes already there
      'print(n1, n2)',
    ].join('\n'),
  );
  expect(out).toBe('5000 10\n');
  const dst = fs.readFileSync(path.join(mount.mp, 'dst'));
  expect(dst.equals(Buffer.concat([src.subarray(0, 10), src.subarray(1244, 6234)]))).toBe(true);
});

test('a source with writes not yet committed is copied with those writes', () => {
  const first = randomBytes(15, 200_000);
  const out = py(
    [
      'import os, sys',
      'w = os.open(sys.argv[1] + "/open-src", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)',
      `os.write(w, bytes.fromhex("${first.subarray(0, 64).toString('hex')}") * 3125)`,
      'a = os.open(sys.argv[1] + "/open-src", os.O_RDONLY)',
      'b = os.open(sys.argv[1] + "/open-dst", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)',
      'n = 0',
      'while True:',
      '    k = os.copy_file_range(a, b, 1 << 30)',
      '    if k == 0: break',
      '    n += k',
      'os.close(w)',
      'print(n)',
    ].join('\n'),
  );
  expect(out).toBe('200000\n');
  const expected = Buffer.alloc(200_000);
  for (let i = 0; i < 3125; i++) first.copy(expected, i * 64, 0, 64);
  expect(fs.readFileSync(path.join(mount.mp, 'open-dst')).equals(expected)).toBe(true);
});
