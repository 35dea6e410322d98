// A sparse file between peers: the server expands its run records into the wire recipe, `get`
// brings identical bytes and stores the zeros as runs again, and `get -o` leaves them holes; a
// file whose expanded recipe would pass the protocol's chunk limit is not served.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store } from '../../src/store/store';
import { startMount } from '../helpers/mount';
import { tempDir } from '../elf/slinkHelpers';
import { type Served, runCli, sha, startServe } from './netHelpers';

const MiB = 2 ** 20;
const SIZE = 256 * MiB + 4321;
/** (offset, length, seed) of the data written into the sparse file, the rest being holes. */
const ISLANDS: Array<[number, number, number]> = [
  [0, 5000, 1],
  [100 * MiB + 17, 300000, 2],
  [SIZE - 70000, 69990, 3],
];
const DATA_BYTES = ISLANDS.reduce((n, [, len]) => n + len, 0);
let dir: string;
let served: Served | undefined;

beforeAll(async () => {
  dir = tempDir('net-sparse');
  const m = startMount([], path.join(dir, 'sender'));
  try {
    for (const target of [path.join(m.mountpoint, 'sparse'), path.join(dir, 'sparse.ext4')]) {
      const code = [
        'import os, sys, random',
        'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)',
        `os.ftruncate(fd, ${SIZE})`,
        ...ISLANDS.map(([o, n, s]) => `os.pwrite(fd, random.Random(${s}).randbytes(${n}), ${o})`),
        'os.close(fd)',
        'for p in sys.argv[2:]:',
        `    open(p, "wb").close(); os.truncate(p, ${100 * 2 ** 30})`,
      ].join('\n');
      const extra = target.endsWith('.ext4') ? [] : [path.join(m.mountpoint, 'huge')];
      const r = spawnSync('python3', ['-c', code, target, ...extra], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
    }
    m.unmount();
  } catch (e) {
    m.cleanup();
    throw e;
  }
  served = await startServe(m.store);
}, 120_000);

afterAll(async () => {
  await served?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('get of a sparse file gives identical bytes, and the receiving store keeps its zeros as runs', async () => {
  const out = path.join(dir, 'got');
  const recvStore = path.join(dir, 'recv', 'store');
  const r = await runCli(['get', served!.url, '/sparse', '-o', out, '--store', recvStore]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(sha(out)).toBe(sha(path.join(dir, 'sparse.ext4')));
  const into = await runCli(['get', served!.url, '/sparse', '--into', '/', '--store', recvStore]);
  expect(into.code).toBe(0);
  // The same records as the sender's: its runs were expanded on the wire and formed again.
  const recordsIn = async (dirOfStore: string) => {
    const store = await Store.open(dirOfStore, { readOnly: true });
    try {
      return store.runs(store.lookup(1, 'sparse')!).map((x) => ({ ...x, digest: x.digest.toString('hex') }));
    } finally {
      await store.close();
    }
  };
  const mine = await recordsIn(recvStore);
  expect(mine).toEqual(await recordsIn(path.join(dir, 'sender', 'store')));
  expect(mine.length).toBeLessThan(80);
  expect(Math.max(...mine.map((x) => x.count))).toBeGreaterThan(1000);
  const m = startMount([], path.join(dir, 'recv'));
  try {
    expect(sha(path.join(m.mountpoint, 'sparse'))).toBe(sha(path.join(dir, 'sparse.ext4')));
  } finally {
    m.cleanup();
  }
});

/** Bytes the file system allocated to `p`. */
const allocated = (p: string) => fs.statSync(p).blocks * 512;

test('get -o writes the holes of a sparse file as holes, from the peer or from the local store', async () => {
  const store = path.join(dir, 'recv-sparse', 'store');
  const fromPeer = path.join(dir, 'got-sparse');
  const fromStore = path.join(dir, 'got-sparse-again');
  const r = await runCli(['get', served!.url, '/sparse', '-o', fromPeer, '--store', store]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect((await runCli(['get', served!.url, '/sparse', '--into', '/', '--store', store])).code).toBe(0);
  const again = await runCli(['get', served!.url, '/sparse', '-o', fromStore, '--store', store, '--json']);
  expect(again.code).toBe(0);
  const s = JSON.parse(again.stdout);
  expect(s.localChunks).toBe(s.chunks);
  for (const out of [fromPeer, fromStore]) {
    expect(sha(out)).toBe(sha(path.join(dir, 'sparse.ext4')));
    expect(fs.statSync(out).size).toBe(SIZE);
    // The islands, the zeros their chunks share with them (at most a chunk each side) and blocks.
    expect(allocated(out)).toBeLessThanOrEqual(DATA_BYTES + MiB);
  }
});

test('get -o resuming into a partial file rewrites the zeros where it held other bytes', async () => {
  const out = path.join(dir, 'got-resumed');
  const part = path.join(dir, '.got-resumed.slinkyfs-part');
  // What an interrupted attempt could leave: a hole, then bytes where the peer's file has a hole.
  const fd = fs.openSync(part, 'w', 0o600);
  try {
    fs.writeSync(fd, Buffer.alloc(8 * MiB, 0x5a), 0, 8 * MiB, 40 * MiB);
  } finally {
    fs.closeSync(fd);
  }
  const r = await runCli(['get', served!.url, '/sparse', '-o', out, '--store', path.join(dir, 'recv-resumed', 'store'), '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout).resumed).toBe(true);
  expect(fs.existsSync(part)).toBe(false);
  expect(sha(out)).toBe(sha(path.join(dir, 'sparse.ext4')));
  // The old bytes were overwritten in place; the hole past them stayed a hole.
  expect(allocated(out)).toBeLessThanOrEqual(8 * MiB + DATA_BYTES + MiB);
});

test('a file whose expanded recipe passes the chunk limit is not served', async () => {
  const r = await runCli(['get', served!.url, '/huge', '-o', path.join(dir, 'huge'), '--store', path.join(dir, 'recv2', 'store')]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/^slinkyfs: .*too many chunks.*\n$/);
  expect(fs.existsSync(path.join(dir, 'huge'))).toBe(false);
});
