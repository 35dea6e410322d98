// mount --peer: a slinked program from a peer runs from a mount whose store began empty, its
// chunks fetched as they are read; prefetch brings the rest; a failed peer hands over to the
// next; mount --serve serves the mounted store on.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { startMount, type TestMount } from '../helpers/mount';
import { slinkyfs } from '../helpers/cli';
import { run, tempDir } from '../elf/slinkHelpers';
import { objectsOf, waitPublished } from '../pagecache/mountHelpers';
import { type Sender, type Served, buildSender, runCli, sha, startServe, tally, uniqueChunks } from './netHelpers';

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
  // Unmounting stops the server before the store closes.
  m.unmount();
  const after = await runCli(['get', `127.0.0.1:${port}`, '/bin/ls', '-o', path.join(m.dir, 'after'), '--store', path.join(m.dir, 'none')]);
  expect(after.code).toBe(3);
  const log = fs.readFileSync(path.join(m.store, 'slinkyfs.log'), 'utf8');
  expect(log).toMatch(/unmounted/);
  expect(log).not.toMatch(/closing chunk sources|server error|storing fetched chunks failed/);
});

describe('a mount none of whose peers can be mirrored fails in one line, leaving no mount', () => {
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
  async function mountPeers(peers: string[]) {
    const dir = tempDir('peer-mount');
    dirs.push(dir);
    const mnt = path.join(dir, 'mnt');
    const store = path.join(dir, 'store');
    fs.mkdirSync(mnt);
    const r = await runCli(['mount', mnt, '--store', store, ...peers.flatMap((p) => ['--peer', p])]);
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

  test('with several peers, the line gives each one\'s reason', async () => {
    const closed = await freePort();
    const { r, left } = await mountPeers(['http://127.0.0.1:1', `http://127.0.0.1:${closed}`]);
    expect(r.stderr.trim()).toBe(
      `slinkyfs: cannot mirror any peer: peer 127.0.0.1:1 refused the connection (is \`slinkyfs serve\` running there?); peer 127.0.0.1:${closed} refused the connection (is \`slinkyfs serve\` running there?)`,
    );
    expect(r.code).toBe(3);
    expect(left).toBe(false);
  });

  test('one peer that works is enough: the mount mirrors it and logs the other', async () => {
    const { r, mnt, store } = await mountPeers(['http://127.0.0.1:1', served.url]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.readdirSync(path.join(mnt, 'bin')).sort()).toEqual(['grep', 'ls']);
    expect(fs.readFileSync(path.join(store, 'slinkyfs.log'), 'utf8')).toMatch(/cannot mirror \/: peer 127\.0\.0\.1:1 refused the connection/);
  });
});
