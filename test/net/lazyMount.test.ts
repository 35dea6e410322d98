// mount --peer: a slinked program from a peer runs from a mount whose store began empty, its
// chunks fetched as they are read; prefetch brings the rest; a failed peer hands over to the
// next; mount --serve serves the mounted store on.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { open as openLmdb } from 'lmdb';
import { CODEC_RAW, decodeChunk } from '../../src/chunking/compress';
import { decodeChunkRef, encodeChunkRef } from '../../src/store/records';
import path from 'node:path';
import { startMount, type TestMount } from '../helpers/mount';
import { slinkyfs } from '../helpers/cli';
import { run, tempDir } from '../elf/slinkHelpers';
import { objectsOf, waitPublished } from '../pagecache/mountHelpers';
import type { NetworkReport } from '../../src/net/networkReport';
import { type Sender, type Served, buildSender, runCli, sha, startServe, startSilentPeer, tally, uniqueChunks } from './netHelpers';

let sender: Sender;
let served: Served;
const mounts: TestMount[] = [];
const extraServers: Served[] = [];

beforeAll(async () => {
  sender = await buildSender(['ls', 'grep']);
  served = await startServe(sender.store);
}, 120_000);

afterAll(async () => {
  for (const m of mounts) m.cleanup();
  for (const s of extraServers) await s.stop();
  await served?.stop();
  if (sender) fs.rmSync(sender.dir, { recursive: true, force: true });
});

function mount(args: string[]): TestMount {
  const m = startMount(args);
  mounts.push(m);
  return m;
}

async function until(what: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 200));
  }
}

const lsArgs = ['-la', '--time-style=+', '/usr/share/doc/coreutils'];

test('a slinked program from a peer runs from a mount whose store began empty', async () => {
  const m = mount(['--peer', served.url, '--no-prefetch']);
  const all = tally(uniqueChunks([sender.files.get('ls')!, sender.files.get('grep')!]));
  const before = m.stats();
  expect(before.files).toBe(2);
  expect(before.chunks).toBe(0);
  expect(before.absentChunks).toBe(all.chunks);
  const got = run(path.join(m.mountpoint, 'bin', 'ls'), lsArgs);
  const want = run('/usr/bin/ls', lsArgs);
  expect(got.status).toBe(0);
  expect(got.stdout.toString()).toBe(want.stdout.toString());
  const after = m.stats();
  // What ran was fetched and kept; grep, never read, is still on the peer.
  expect(after.chunks).toBeGreaterThan(0);
  expect(after.absentChunks).toBeGreaterThan(0);
  expect(after.chunks + after.absentChunks).toBe(all.chunks);
  expect(slinkyfs(['verify', '--store', m.store]).stdout).toMatch(/no damage/);
});

test('prefetch brings every chunk in the background; the files read back identical', async () => {
  const m = mount(['--peer', served.url]);
  await until(() => m.stats().absentChunks === 0, 30_000);
  expect(sha(path.join(m.mountpoint, 'bin', 'grep'))).toBe(sha(sender.files.get('grep')!));
  expect(sha(path.join(m.mountpoint, 'bin', 'ls'))).toBe(sha(sender.files.get('ls')!));
  expect(fs.readFileSync(path.join(m.store, 'slinkyfs.log'), 'utf8')).toMatch(/prefetch done: \d+ chunks fetched/);
});

test('once prefetch has brought every chunk, the mirrored slinked files have their objects published', async () => {
  const m = mount(['--peer', served.url]);
  await until(() => m.stats().absentChunks === 0, 30_000);
  // Without a restart: the objects of both programs appear under /.slinky/objects.
  for (const name of ['ls', 'grep']) waitPublished(m.mountpoint, await objectsOf(sender.files.get(name)!));
});

test('when a peer fails, the next one is asked', async () => {
  const first = await startServe(sender.store);
  extraServers.push(first);
  const m = mount(['--peer', first.url, '--peer', served.url, '--no-prefetch']);
  await first.stop();
  const got = run(path.join(m.mountpoint, 'bin', 'grep'), ['-c', 'root', '/etc/passwd']);
  expect(got.stderr.toString()).toBe('');
  expect(got.stdout.toString()).toBe(run('/usr/bin/grep', ['-c', 'root', '/etc/passwd']).stdout.toString());
  expect(fs.readFileSync(path.join(m.store, 'slinkyfs.log'), 'utf8')).toMatch(/peer 127\.0\.0\.1:\d+ failed, trying the next peer/);
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('mount --serve serves the mounted store to the next peer', async () => {
  const port = await freePort();
  const m = mount(['--peer', served.url, '--serve', `127.0.0.1:${port}`]);
  await until(() => m.stats().absentChunks === 0, 30_000);
  const out = path.join(m.dir, 'ls-from-mount');
  const r = await runCli(['get', `127.0.0.1:${port}`, '/bin/ls', '-o', out, '--store', path.join(m.dir, 'none')]);
  expect(r.code).toBe(0);
  expect(sha(out)).toBe(sha(sender.files.get('ls')!));
  const serving = netStats(m).serving!;
  expect(serving.address).toBe(`127.0.0.1:${port}`);
  expect(serving.chunksSent).toBe(tally(uniqueChunks([sender.files.get('ls')!])).chunks);
  // Unmounting stops the server before the store closes.
  m.unmount();
  const after = await runCli(['get', `127.0.0.1:${port}`, '/bin/ls', '-o', path.join(m.dir, 'after'), '--store', path.join(m.dir, 'none')]);
  expect(after.code).toBe(3);
  const log = fs.readFileSync(path.join(m.store, 'slinkyfs.log'), 'utf8');
  expect(log).toMatch(/unmounted/);
  expect(log).not.toMatch(/closing chunk sources|server error|storing fetched chunks failed/);
});

/** The daemon's network report (`stats --net --json`). */
function netStats(m: TestMount): NetworkReport {
  const r = slinkyfs(['stats', m.mountpoint, '--net', '--json']);
  if (r.status !== 0) throw new Error(`stats --net failed: ${r.stderr}`);
  return JSON.parse(r.stdout).network;
}

test('stats --net: chunks the store already had are never fetched, and the prefetch brings exactly the rest', async () => {
  const ls = sender.files.get('ls')!;
  const grep = sender.files.get('grep')!;
  const m = mount([]);
  fs.mkdirSync(path.join(m.mountpoint, 'mine'));
  fs.writeFileSync(path.join(m.mountpoint, 'mine', 'ls'), fs.readFileSync(ls));
  m.unmount();
  m.remount(['--peer', served.url]);
  const all = uniqueChunks([ls, grep]);
  const here = uniqueChunks([ls]);
  const lacking = tally(new Map([...all].filter(([k]) => !here.has(k))));
  await until(() => netStats(m).prefetch.state === 'done', 30_000);
  const n = netStats(m);
  expect(n.peers).toHaveLength(1);
  const p = n.peers[0];
  expect(p.mirror).toEqual({ path: '/', entries: 3, created: 3, chunks: all.size, chunkBytes: tally(all).bytes, localChunks: here.size, localBytes: tally(here).bytes });
  expect([p.chunks, p.chunkBytes, p.badChunks, p.unavailable + p.refused + p.protocol]).toEqual([lacking.chunks, lacking.bytes, 0, 0]);
  expect(n.prefetch).toEqual({ state: 'done', wanted: lacking.chunks, fetched: lacking.chunks });
  expect(sha(path.join(m.mountpoint, 'bin', 'grep'))).toBe(sha(grep));
});

/** A copy of `store` whose every chunk is stored raw with its first byte flipped: a peer serving
 *  it sends bytes that do not match what its recipes promise. */
async function lyingCopy(store: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-liar-'));
  fs.cpSync(store, dir, { recursive: true });
  const env = openLmdb({ path: path.join(dir, 'db'), maxDbs: 16 });
  const chunks = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary' });
  const refs = env.openDB({ name: 'chunkrefs', encoding: 'binary', keyEncoding: 'binary' });
  await env.transaction(() => {
    for (const { key, value } of chunks.getRange()) {
      const ref = decodeChunkRef(refs.getBinary(key)!);
      const plain = Buffer.from(decodeChunk(ref.codec, value, ref.length));
      plain[0] ^= 1;
      chunks.put(key, plain);
      refs.put(key, encodeChunkRef({ ...ref, codec: CODEC_RAW, storedLength: plain.length }));
    }
  });
  await env.close();
  return dir;
}

test('stats --net counts a lying peer\'s chunks that do not match, and sets it aside for the next peer', async () => {
  const liarStore = await lyingCopy(sender.store);
  const liar = await startServe(liarStore);
  extraServers.push(liar);
  try {
    const m = mount(['--peer', liar.url, '--peer', served.url, '--no-prefetch']);
    const got = run(path.join(m.mountpoint, 'bin', 'grep'), ['-c', 'root', '/etc/passwd']);
    expect(got.stdout.toString()).toBe(run('/usr/bin/grep', ['-c', 'root', '/etc/passwd']).stdout.toString());
    const [bad, good] = netStats(m).peers;
    expect(bad.badChunks).toBeGreaterThan(0);
    expect([bad.protocol, bad.unavailable, bad.refused, bad.chunks, bad.setAside]).toEqual([bad.badChunks, 0, 0, 0, true]);
    expect(bad.lastError).toMatch(/sent bytes that do not match chunk sha256-[0-9a-f]{64}$/);
    expect([good.badChunks, good.setAside, good.mirror.created, good.mirror.entries]).toEqual([0, false, 0, bad.mirror.entries]);
    expect(good.chunks).toBeGreaterThan(0);
  } finally {
    fs.rmSync(liarStore, { recursive: true, force: true });
  }
});

test('stats --net of a mount without peers says so', () => {
  const m = mount([]);
  const human = slinkyfs(['stats', m.mountpoint, '--net']);
  expect(human.status).toBe(0);
  expect(human.stdout.trim().split('\n').pop()).toBe('no peers: the store is not mounted with --peer or --serve');
  expect(JSON.parse(slinkyfs(['stats', m.mountpoint, '--net', '--json']).stdout).network).toBeNull();
});

describe('peers that cannot be mirrored: one line each, and no mount unless there is something to show', () => {
  const dirs: string[] = [];
  const mounted = (mnt: string) => fs.readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `);
  afterEach(() => {
    for (const dir of dirs.splice(0)) {
      const mnt = path.join(dir, 'mnt');
      if (mounted(mnt)) slinkyfs(['umount', mnt]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  /** `mount --peer …` as a user runs it; asynchronous, as some of the peers answer from this process. */
  async function mountPeers(peers: string[], extra: string[] = []) {
    const dir = tempDir('peer-mount');
    dirs.push(dir);
    const mnt = path.join(dir, 'mnt');
    const store = path.join(dir, 'store');
    fs.mkdirSync(mnt);
    const r = await runCli(['mount', mnt, '--store', store, ...peers.flatMap((p) => ['--peer', p]), ...extra]);
    return { r, mnt, store, left: mounted(mnt) || fs.existsSync(path.join(store, 'daemon.pid')) };
  }

  async function listening(server: net.Server): Promise<number> {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return (server.address() as net.AddressInfo).port;
  }

  test('a web server that is not a slinkyfs peer', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>Not Found</h1>');
    });
    const port = await listening(server);
    try {
      const { r, left } = await mountPeers([`http://127.0.0.1:${port}`]);
      expect(r.stderr.trim()).toBe(
        `slinkyfs: cannot mirror the peer: peer 127.0.0.1:${port} answered HTTP 404, which is not a slinkyfs reply (is \`slinkyfs serve\` running there?)`,
      );
      expect(r.code).toBe(3);
      expect(left).toBe(false);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test('a peer that refuses the connection', async () => {
    const { r, left } = await mountPeers(['http://127.0.0.1:1']);
    expect(r.stderr.trim()).toBe('slinkyfs: cannot mirror the peer: peer 127.0.0.1:1 refused the connection (is `slinkyfs serve` running there?)');
    expect(r.code).toBe(3);
    expect(left).toBe(false);
  });

  test('a peer that never answers fails the mount after the peers\' 15 s timeout', async () => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    const port = await listening(server);
    try {
      const { r, left } = await mountPeers([`http://127.0.0.1:${port}`]);
      expect(r.stderr.trim()).toBe(`slinkyfs: cannot mirror the peer: peer 127.0.0.1:${port} sent nothing for 15 s`);
      expect(r.code).toBe(3);
      expect(left).toBe(false);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  test('a --peer-timeout that is not above 0 and at most a day is one line and exit 2, and nothing is mounted', async () => {
    for (const [value, shown] of [['0', '0'], ['-1', '-1'], ['86401', '86401'], ['soon', 'NaN']]) {
      const { r, left } = await mountPeers(['http://127.0.0.1:1'], ['--peer-timeout', value]);
      expect([r.code, r.stderr]).toEqual([2, `slinkyfs: --peer-timeout wants seconds above 0 and at most 86400 (a day), not ${shown}\n`]);
      expect(left).toBe(false);
    }
  });

  describe('a peer that accepts connections and never answers, in a process of its own', () => {
    let silent: Served;
    beforeAll(async () => {
      silent = await startSilentPeer();
    });
    afterAll(() => silent?.stop());

    test('with --peer-timeout 1 fails the mount of an empty store well before the default 15 s', async () => {
      const { r, left } = await mountPeers([silent.url], ['--peer-timeout', '1']);
      expect([r.code, r.stderr]).toEqual([3, `slinkyfs: cannot mirror the peer: peer 127.0.0.1:${silent.port} sent nothing for 1 s\n`]);
      expect(left).toBe(false);
      expect(r.ms).toBeLessThan(10_000);
    });

    test('with --peer-timeout 1 a store mirrored before mounts with a warning, and a read of a chunk it lacks fails after that timeout too', async () => {
      const first = await mountPeers([served.url], ['--no-prefetch']);
      expect(first.r.code).toBe(0);
      expect(slinkyfs(['umount', first.mnt]).status).toBe(0);
      const r = await runCli(['mount', first.mnt, '--store', first.store, '--peer', silent.url, '--peer-timeout', '1', '--no-prefetch']);
      expect([r.code, r.stderr]).toEqual([0, `slinkyfs: warning: not mirrored: peer 127.0.0.1:${silent.port} sent nothing for 1 s\n`]);
      expect(r.ms).toBeLessThan(10_000);
      const t0 = Date.now();
      await expect(fs.promises.readFile(path.join(first.mnt, 'bin', 'ls'))).rejects.toMatchObject({ code: 'EIO' });
      expect(Date.now() - t0).toBeLessThan(10_000);
      const log = fs.readFileSync(path.join(first.store, 'slinkyfs.log'), 'utf8');
      expect(log).toContain(`peer 127.0.0.1:${silent.port} failed, trying the next peer: peer 127.0.0.1:${silent.port} sent nothing for 1 s\n`);
      expect(log).toMatch(/read: chunk sha256-[0-9a-f]{64} of inode \d+ is missing or damaged\n/);
    });
  });

  test('with several peers, the line gives each one\'s reason', async () => {
    const closed = await freePort();
    const { r, left } = await mountPeers(['http://127.0.0.1:1', `http://127.0.0.1:${closed}`]);
    expect(r.stderr.trim()).toBe(
      `slinkyfs: cannot mirror any peer: peer 127.0.0.1:1 refused the connection (is \`slinkyfs serve\` running there?); peer 127.0.0.1:${closed} refused the connection (is \`slinkyfs serve\` running there?)`,
    );
    expect(r.code).toBe(3);
    expect(left).toBe(false);
  });

  test('one peer that works is enough: the mount mirrors it and warns of the other', async () => {
    const { r, mnt, store } = await mountPeers(['http://127.0.0.1:1', served.url]);
    expect(r.stderr).toBe('slinkyfs: warning: not mirrored: peer 127.0.0.1:1 refused the connection (is `slinkyfs serve` running there?)\n');
    expect(r.code).toBe(0);
    expect(fs.readdirSync(path.join(mnt, 'bin')).sort()).toEqual(['grep', 'ls']);
    expect(fs.readFileSync(path.join(store, 'slinkyfs.log'), 'utf8')).toMatch(/cannot mirror \/: peer 127\.0\.0\.1:1 refused the connection/);
  });

  test('a store mirrored before mounts while its peer is down, with a warning', async () => {
    const port = await freePort();
    const first = await mountPeers([served.url]);
    expect(first.r.code).toBe(0);
    expect(slinkyfs(['umount', first.mnt]).status).toBe(0);
    const r = await runCli(['mount', first.mnt, '--store', first.store, '--peer', `http://127.0.0.1:${port}`]);
    expect(r.stderr).toBe(`slinkyfs: warning: not mirrored: peer 127.0.0.1:${port} refused the connection (is \`slinkyfs serve\` running there?)\n`);
    expect(r.code).toBe(0);
    expect(fs.readdirSync(path.join(first.mnt, 'bin')).sort()).toEqual(['grep', 'ls']);
  });
});
