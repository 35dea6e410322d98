// Sparse files through a real FUSE mount: holes made by truncate, writes past the end and
// fallocate are stored as run records (docs/FORMAT.md, "Recipes") without their zeros being
// chunked, read back as ext4 reads the same operations, survive a remount, verify clean, clone
// with copy_file_range, and files may reach 16 TiB.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chunkBuffer } from '../../src/chunking/chunker';
import { Store } from '../../src/store/store';
import type { Run } from '../../src/store/records';
import { useMount } from '../helpers/mount';
import { sh, slinkyfs } from '../helpers/cli';

const mount = useMount();
const GiB = 2 ** 30;
const TiB = 2 ** 40;
const MAX = 65536;

/** Run a Python snippet with the given arguments; returns its stdout. */
function py(code: string, ...args: string[]): string {
  const quote = (s: string) => `'${s.replace(/'/g, `'"'"'`)}'`;
  const r = sh(`python3 -c ${quote(code)} ${args.map(quote).join(' ')}`, { timeout: 120_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

/**
 * The same operations on a file: create, then for each step `t SIZE` (ftruncate) or `w OFFSET
 * LENGTH SEED` (pwrite of LENGTH pseudo-random bytes from SEED).
 */
const OPS = `
import os, sys, random
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
for step in sys.argv[2:]:
    kind, *a = step.split(":")
    if kind == "t":
        os.ftruncate(fd, int(a[0]))
    else:
        off, n, seed = map(int, a)
        os.pwrite(fd, random.Random(seed).randbytes(n), off)
os.close(fd)
`;

/** sha256 of each [offset, offset + length) range of a file (clipped at its end), and its size. */
const HASHES = `
import hashlib, os, sys, json
f = open(sys.argv[1], "rb")
out = [os.fstat(f.fileno()).st_size]
for r in sys.argv[2:]:
    off, n = map(int, r.split(":"))
    f.seek(off)
    h = hashlib.sha256()
    while n > 0:
        b = f.read(min(n, 1 << 20))
        if not b: break
        h.update(b); n -= len(b)
    out.append(h.hexdigest())
print(json.dumps(out))
`;

function hashes(file: string, ranges: Array<[number, number]>): unknown[] {
  return JSON.parse(py(HASHES, file, ...ranges.map(([o, n]) => `${o}:${n}`)));
}

/** On ext4, beside the mount: the reference for the same operations. */
const ext4 = (name: string) => path.join(mount.m.dir, name);
const onMount = (name: string) => path.join(mount.mp, name);

/** The records of /NAME in the store, read with the daemon stopped; the mount comes back after. */
async function recordsOf(...names: string[]): Promise<Run[][]> {
  mount.m.unmount();
  try {
    const store = await Store.open(mount.m.store, { readOnly: true });
    try {
      return names.map((n) => store.runs(store.lookup(1, n)!));
    } finally {
      await store.close();
    }
  } finally {
    mount.m.remount();
  }
}

test('truncate -s 1T is a single run record; the size is exact and it reads zeros at its start, middle and end', async () => {
  expect(sh(`truncate -s 1T '${onMount('tera')}'`).status).toBe(0);
  expect(fs.statSync(onMount('tera')).size).toBe(TiB);
  const ranges: Array<[number, number]> = [[0, 4096], [TiB / 2 - 100, 300], [TiB - 4096, 8192]];
  const z = (n: number) => crypto.createHash('sha256').update(Buffer.alloc(n)).digest('hex');
  expect(hashes(onMount('tera'), ranges)).toEqual([TiB, z(4096), z(300), z(4096)]);
  const [runs] = await recordsOf('tera');
  expect(runs.map((r) => ({ offset: r.offset, length: r.length, count: r.count }))).toEqual([{ offset: 0, length: MAX, count: TiB / MAX }]);
  // After the remount: the same size and zeros.
  expect(hashes(onMount('tera'), ranges)).toEqual([TiB, z(4096), z(300), z(4096)]);
});

test('fallocate -l 200G extends by a hole stored as one run', async () => {
  expect(sh(`fallocate -l 200G '${onMount('falloc')}'`).status).toBe(0);
  expect(fs.statSync(onMount('falloc')).size).toBe(200 * GiB);
  const [runs] = await recordsOf('falloc');
  expect(runs.map((r) => r.count)).toEqual([(200 * GiB) / MAX]);
});

test('a sparse file with data islands reads back as the same operations on ext4 do', async () => {
  const size = 3 * GiB + 12345;
  const steps = [`t:${size}`, `w:0:5000:1`, `w:${100 * 2 ** 20 + 17}:200000:2`, `w:${3 * GiB - 70000}:90000:3`, `w:${size - 10}:10:4`];
  py(OPS, onMount('islands'), ...steps);
  py(OPS, ext4('islands'), ...steps);
  const ranges: Array<[number, number]> = [
    [0, 1 << 20],
    [100 * 2 ** 20 - (1 << 20), 3 << 20],
    [GiB + 333, 1 << 20],
    [3 * GiB - (2 << 20), size],
  ];
  expect(hashes(onMount('islands'), ranges)).toEqual(hashes(ext4('islands'), ranges));
  const [runs] = await recordsOf('islands');
  expect(runs.length).toBeLessThan(100);
  // and after the remount
  expect(hashes(onMount('islands'), ranges)).toEqual(hashes(ext4('islands'), ranges));
});

test('a 40 MiB file with islands: its records expanded are the chunking of its bytes', async () => {
  const size = 40 * 2 ** 20 + 999;
  const steps = [`w:${10 * 2 ** 20 + 17}:70000:5`, `t:${size}`, `w:0:3000:6`, `w:${20 * 2 ** 20 - 3}:3:7`, `w:${size + 5 * MAX + 1}:4000:8`, `t:${size}`];
  py(OPS, onMount('forty'), ...steps);
  py(OPS, ext4('forty'), ...steps);
  const bytes = fs.readFileSync(ext4('forty'));
  expect(fs.readFileSync(onMount('forty')).equals(bytes)).toBe(true);
  const [runs] = await recordsOf('forty');
  expect(runs.length).toBeLessThan(40);
  const expanded: Array<{ offset: number; length: number; digest: string }> = [];
  for (const r of runs) for (let i = 0; i < r.count; i++) expanded.push({ offset: r.offset + i * r.length, length: r.length, digest: r.digest.toString('hex') });
  expect(expanded).toEqual(chunkBuffer(bytes).map((c) => ({ offset: c.offset, length: c.length, digest: c.digest.toString('hex') })));
});

test('a write into the middle of a 1 TiB hole leaves runs before and after it, and verify is clean', async () => {
  const at = TiB / 2 + 1000;
  py(OPS, onMount('middle'), `t:${TiB}`, `w:${at}:1000:9`);
  py(OPS, ext4('middle'), `t:${TiB}`, `w:${at}:1000:9`);
  const ranges: Array<[number, number]> = [[at - 5000, 10000], [TiB - MAX - 3, MAX + 3]];
  expect(hashes(onMount('middle'), ranges)).toEqual(hashes(ext4('middle'), ranges));
  const [runs] = await recordsOf('middle');
  expect(runs.length).toBeLessThan(8);
  expect(runs[0].offset).toBe(0);
  expect(runs[0].count).toBeGreaterThan(TiB / 2 / MAX - 2);
  expect(runs[runs.length - 1].count).toBeGreaterThan(TiB / 2 / MAX - 2);
  mount.m.unmount();
  try {
    const v = slinkyfs(['verify', '--store', mount.m.store]);
    expect(v.stderr).toBe('');
    expect(v.status).toBe(0);
  } finally {
    mount.m.remount();
  }
  expect(hashes(onMount('middle'), ranges)).toEqual(hashes(ext4('middle'), ranges));
});

test('copy_file_range of a sparse 100 GiB range clones its runs', async () => {
  const size = 100 * GiB;
  const steps = [`t:${size}`, `w:${GiB + 5}:100000:10`, `w:${size - 1000}:1000:11`];
  py(OPS, onMount('sparse-src'), ...steps);
  py(OPS, ext4('sparse-src'), ...steps);
  const before = mount.m.stats();
  const copied = py(
    `
import os, sys
a = os.open(sys.argv[1], os.O_RDONLY)
b = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
n = 0
while True:
    k = os.copy_file_range(a, b, ${size} - n)
    if k == 0: break
    n += k
print(n)
`,
    onMount('sparse-src'),
    onMount('sparse-dst'),
  );
  expect(copied).toBe(`${size}\n`);
  const after = mount.m.stats();
  expect(after.chunks).toBe(before.chunks);
  expect(after.logicalBytes).toBe(before.logicalBytes + size);
  const ranges: Array<[number, number]> = [[0, 4096], [GiB - 10, 200000], [size - MAX - 7, MAX + 7]];
  expect(hashes(onMount('sparse-dst'), ranges)).toEqual(hashes(ext4('sparse-src'), ranges));
  const [src, dst] = await recordsOf('sparse-src', 'sparse-dst');
  expect(dst.length).toBe(src.length);
  expect(dst.length).toBeLessThan(20);
});

test('fallocate --punch-hole over most of a 1 TiB file with data is a few runs, and reads as on ext4', async () => {
  const steps = [`t:${TiB}`, `w:0:5000:12`, `w:${GiB}:70000:13`, `w:${TiB / 2 + 7}:5000:14`, `w:${TiB - 5000}:5000:15`];
  py(OPS, onMount('punched'), ...steps);
  py(OPS, ext4('punched'), ...steps);
  for (const f of [onMount('punched'), ext4('punched')]) expect(sh(`fallocate --punch-hole --keep-size -o 100 -l ${TiB - 200} '${f}'`).status).toBe(0);
  const ranges: Array<[number, number]> = [[0, 10000], [GiB - 5, 80000], [TiB / 2, 10000], [TiB - 6000, 6000]];
  expect(hashes(onMount('punched'), ranges)).toEqual(hashes(ext4('punched'), ranges));
  const [runs] = await recordsOf('punched');
  expect(runs.length).toBeLessThan(6);
});

test('files may reach 16 TiB; past that truncate and write are EFBIG', () => {
  const out = py(
    `
import os, sys, errno
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 16 << 40)
print(os.fstat(fd).st_size)
for what in (lambda: os.ftruncate(fd, (16 << 40) + 1), lambda: os.pwrite(fd, b"x", 16 << 40)):
    try:
        what()
        print("ok")
    except OSError as e:
        print(errno.errorcode[e.errno])
os.close(fd)
`,
    onMount('limit'),
  );
  expect(out).toBe(`${16 * TiB}\nEFBIG\nEFBIG\n`);
  fs.unlinkSync(onMount('limit'));
});

/** lseek(2) answers on a file: each `d:OFFSET` (SEEK_DATA) or `h:OFFSET` (SEEK_HOLE), or the errno name. */
const SEEKS = `
import errno, json, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
out = []
for a in sys.argv[2:]:
    w, off = a.split(":")
    try:
        out.append(os.lseek(fd, int(off), os.SEEK_DATA if w == "d" else os.SEEK_HOLE))
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(json.dumps(out))
`;
const seeks = (file: string, ...asks: string[]) => JSON.parse(py(SEEKS, file, ...asks)) as Array<number | string>;

/** 1 GiB: a hole, 100,000 random bytes at 512 MiB, a hole to the end. Returns where the data's hole after it begins. */
function islandFile(name: string): number {
  py(OPS, onMount(name), `t:${GiB}`, `w:${GiB / 2}:100000:7`);
  // 512 MiB is a cut (the hole before it is maximal chunks), so the chunking from there is that
  // of the island and the zeros after it: the first maximal zero chunk begins the next hole.
  const tail = Buffer.alloc(1 << 20);
  Buffer.from(py('import random; print(random.Random(7).randbytes(100000).hex())').trim(), 'hex').copy(tail);
  const zero = Buffer.alloc(MAX);
  const first = chunkBuffer(tail).find((c) => c.length === MAX && tail.subarray(c.offset, c.offset + MAX).equals(zero))!;
  return GiB / 2 + first.offset;
}

/** The zeros after the island: maximal chunks from `holeAfter` on, then a shorter last chunk of zeros (data: see src/store/seekHole.ts). */
function tailOf(holeAfter: number): { start: number; length: number } {
  const length = (GiB - holeAfter) % MAX;
  return { start: GiB - length, length };
}

test('lseek SEEK_DATA and SEEK_HOLE through the mount find the island of a sparse file and the holes around it', () => {
  const holeAfter = islandFile('island');
  expect(holeAfter).toBeGreaterThanOrEqual(GiB / 2 + 100000);
  const tail = tailOf(holeAfter);
  expect(tail.length).toBeGreaterThan(0); // so the last chunk is data, of zeros
  expect(seeks(onMount('island'), 'd:0', 'h:0', `d:${GiB / 2 + 5}`, `h:${GiB / 2}`, `d:${holeAfter}`, `h:${holeAfter + 1}`, `h:${GiB - 1}`, `d:${GiB}`, `h:${GiB}`)).toEqual([
    GiB / 2, 0, GiB / 2 + 5, holeAfter, tail.start, holeAfter + 1, GiB, 'ENXIO', 'ENXIO',
  ]);
});

test('st_blocks leaves holes out: du of a 1 TiB hole is 0, of the island file its data chunks', () => {
  expect(sh(`truncate -s 1T '${onMount('tera-du')}'`).status).toBe(0);
  expect(fs.statSync(onMount('tera-du')).blocks).toBe(0);
  const holeAfter = islandFile('island-du');
  expect(fs.statSync(onMount('island-du')).blocks).toBe(Math.ceil((holeAfter - GiB / 2 + tailOf(holeAfter).length) / 512));
});

test('cp out of the mount copies a sparse file sparsely and exactly', () => {
  islandFile('island-cp');
  const copy = ext4('island-cp.copy');
  const r = sh(`cp --sparse=auto '${onMount('island-cp')}' '${copy}' && cmp '${onMount('island-cp')}' '${copy}'`, { timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(fs.statSync(copy).size).toBe(GiB);
  // The data and at most a block on either side of it (ext4 allocates whole 4 KiB blocks).
  expect(fs.statSync(copy).blocks * 512).toBeLessThanOrEqual(100000 + MAX + 2 * 4096);
});
