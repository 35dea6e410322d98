// A sparse file between peers: the server expands its run records into the wire recipe, `get`
// brings identical bytes and stores the zeros as runs again; a file whose expanded recipe would
// pass the protocol's chunk limit is not served.
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

test('a file whose expanded recipe passes the chunk limit is not served', async () => {
  const r = await runCli(['get', served!.url, '/huge', '-o', path.join(dir, 'huge'), '--store', path.join(dir, 'recv2', 'store')]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/^slinkyfs: .*too many chunks.*\n$/);
  expect(fs.existsSync(path.join(dir, 'huge'))).toBe(false);
});
