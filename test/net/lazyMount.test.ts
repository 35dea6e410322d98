// mount --peer: a slinked program from a peer runs from a mount whose store began empty, its
// chunks fetched as they are read; prefetch brings the rest; a failed peer hands over to the
// next; mount --serve serves the mounted store on.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startMount, type TestMount } from '../helpers/mount';
import { slinkyfs } from '../helpers/cli';
import { run } from '../elf/slinkHelpers';
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
