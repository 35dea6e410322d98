// A peer that misbehaves, on real loopback TCP: a proxy in front of a real server alters its
// replies. Each fault must end `get` with one clear line and a non-zero exit, within bounded
// time and memory, with nothing unverified in the receiving store; an interrupted transfer then
// resumes without fetching again what had arrived. The server refuses what it must not serve.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { digestFromString } from '../../src/chunking/digest';
import { PeerClient } from '../../src/net/client';
import { slinkyfs } from '../helpers/cli';
import { tempDir } from '../elf/slinkHelpers';
import { type Sender, type Served, buildSender, reframeChunks, rewritePacked, runCli, sha, startProxy, startServe, tally, uniqueChunks, type Misbehaviour, type Proxy } from './netHelpers';

let sender: Sender;
let served: Served;
let proxy: Proxy | undefined;
let work: string;

beforeAll(async () => {
  sender = await buildSender(['ls', 'sed'], (name) => (name === 'sed' ? 'secret' : 'bin'));
  served = await startServe(sender.store);
  work = tempDir('net-faults');
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await served?.stop();
  if (sender) fs.rmSync(sender.dir, { recursive: true, force: true });
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

let n = 0;
function freshStore(): string {
  return path.join(work, `store${++n}`);
}

async function through(endpoint: string, how: Misbehaviour, skip = 0): Promise<string> {
  proxy = await startProxy(served.port, endpoint, how, skip);
  return proxy.url;
}

function proxyName(url: string): string {
  return `peer ${url.replace('http://', '')}`;
}

/** The receiving store after a failed get: no damage, and the file never got its real name. */
function expectNothingUnverified(store: string): void {
  if (!fs.existsSync(path.join(store, 'db'))) return;
  const v = slinkyfs(['verify', '--store', store]);
  expect(v.stdout).toMatch(/no damage/);
  expect(v.status).toBe(0);
  const stats = JSON.parse(slinkyfs(['stats', '--store', store, '--json']).stdout);
  expect(stats.files).toBeLessThanOrEqual(1); // only the staging file, never /bin/ls
}

test('wrong bytes for a chunk: rejected by digest, nothing unverified stored', async () => {
  const url = await through('/chunks', { kind: 'rewrite', body: (b) => reframeChunks(b, (plain, i) => (i === 5 ? Buffer.from(plain.map((x, j) => (j === 100 ? x ^ 1 : x))) : plain)) });
  const store = freshStore();
  const r = await runCli(['get', url, '/bin/ls', '--into', '/bin', '--store', store, '--level', '0']);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toMatch(new RegExp(`^slinkyfs: ${proxyName(url)} sent bytes that do not match chunk sha256-[0-9a-f]{64}$`));
  expectNothingUnverified(store);
});

test('a reply cut off mid-transfer (disconnect): exit 3, clear line', async () => {
  const url = await through('/chunks', { kind: 'cut', afterBytes: 100_000 });
  const store = freshStore();
  const r = await runCli(['get', url, '/bin/ls', '--into', '/bin', '--store', store]);
  expect(r.code).toBe(3);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${proxyName(url)} disconnected mid-reply`);
  expectNothingUnverified(store);
});

test('a reply longer than what was asked for is rejected', async () => {
  const url = await through('/chunks', { kind: 'append', bytes: Buffer.alloc(1000, 7) });
  const r = await runCli(['get', url, '/bin/ls', '-o', path.join(work, 'oversized')]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${proxyName(url)} sent more than was asked for`);
  expect(fs.existsSync(path.join(work, 'oversized'))).toBe(false);
});

test('an endless reply is cut at the size limit with bounded memory', async () => {
  const url = await through('/stat', { kind: 'endless' });
  const r = await runCli(['get', url, '/bin/ls', '-o', path.join(work, 'endless')], 60_000);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${proxyName(url)} sent a reply larger than ${16 << 20} bytes`);
  expect(r.maxRssKb).toBeLessThan(250 * 1024);
});

test('a peer that goes silent times out', async () => {
  const url = await through('/chunks', { kind: 'silent' });
  const r = await runCli(['get', url, '/bin/ls', '-o', path.join(work, 'silent'), '--timeout', '1']);
  expect(r.code).toBe(3);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${proxyName(url)} sent nothing for 1 s`);
  expect(r.ms).toBeLessThan(15_000);
});

test('a receiver that takes its time over a chunk is not a silent peer: the wait is its own', async () => {
  // In-process client, server in its own process. Before, the idle timer kept running while the
  // consumer held a block (the reply paused meanwhile), so a store slow to take a chunk ended the
  // transfer with "sent nothing".
  const client = new PeerClient(served.url, { idleTimeoutMs: 300 });
  try {
    const entry = await client.stat('/bin/ls');
    const [recipe] = await client.recipes([digestFromString(entry.digest!)], [entry.size]);
    const wanted = recipe!.chunks.slice(0, 8);
    const seen: number[] = [];
    const missing = await client.chunks(wanted, { level: 0, blockBytes: 16 << 10 }, async (c) => {
      seen.push(c.index);
      if (seen.length <= 2) await new Promise((r) => setTimeout(r, 900));
    });
    expect([missing, seen]).toEqual([[], [0, 1, 2, 3, 4, 5, 6, 7]]);
  } finally {
    client.close();
  }
});

test('a peer that trickles a byte at a time misses its deadline', async () => {
  const url = await through('/stat', { kind: 'trickle', everyMs: 50 });
  const r = await runCli(['get', url, '/bin/ls', '-o', path.join(work, 'slow'), '--timeout', '1', '--min-rate', '1M']);
  expect(r.code).toBe(3);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${proxyName(url)} did not finish a reply within 2 s`);
  expect(r.ms).toBeLessThan(15_000);
});

test('a recipe claiming a huge chunk count is refused before it is read', async () => {
  const url = await through('/recipes', {
    kind: 'rewrite',
    body: (b) =>
      rewritePacked(b, (c) => {
        c.writeUInt32LE(0xfffffff0, 4 + 16);
      }),
  });
  const r = await runCli(['get', url, '/bin/ls', '-o', path.join(work, 'huge')]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${proxyName(url)} sent a recipe with ${0xfffffff0} chunks, more than the limit of ${1 << 20}`);
});

test('a recipe that does not hash to the requested digest is rejected', async () => {
  const direct = JSON.parse((await runCli(['get', served.url, '/bin/ls', '-o', path.join(work, 'ls-direct'), '--json'])).stdout);
  const url = await through('/recipes', {
    kind: 'rewrite',
    body: (b) =>
      rewritePacked(b, (c) => {
        c[4 + 4] ^= 0o100; // the mode: a different file, same chunks
      }),
  });
  const r = await runCli(['get', url, direct.digest, '-o', path.join(work, 'ls-by-digest')]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${proxyName(url)} sent a recipe that does not match ${direct.digest}`);
});

function rewriteTree(edit: (entries: Array<Record<string, unknown>>) => void): Misbehaviour {
  return {
    kind: 'rewrite',
    body: (b) =>
      rewritePacked(b, (plain) => {
        const page = JSON.parse(plain.toString('utf8'));
        edit(page.entries);
        return Buffer.from(JSON.stringify(page));
      }),
  };
}

test.each([
  ['..', '../escape', 'bad tree entry: ".." in "../escape"'],
  ['an absolute name', '/tmp/escape', 'bad tree entry: absolute name "/tmp/escape"'],
])('a listing with %s is refused and nothing is written outside the output', async (_what, name, message) => {
  const url = await through('/tree', rewriteTree((entries) => void (entries[0].name = name)));
  const out = path.join(work, `tree-${n++}`);
  const r = await runCli(['get', url, '/', '--dir', '-o', out]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${message}`);
  expect(fs.existsSync(out)).toBe(false);
  expect(fs.existsSync(path.join(work, 'escape'))).toBe(false);
  expect(fs.existsSync('/tmp/escape')).toBe(false);
});

test('a listing that would write through a symlink it planted is refused', async () => {
  const url = await through(
    '/tree',
    rewriteTree((entries) => {
      entries.unshift({ name: 'evil', type: 'symlink', mode: 0o777, mtime: 0, size: 4, target: '/tmp' });
      entries.push({ ...entries.find((e) => e.type === 'file')!, name: 'evil/planted' });
    }),
  );
  const r = await runCli(['get', url, '/', '--dir', '-o', path.join(work, `sym-${n++}`)]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: tree lists evil/planted before (or without) its directory');
  expect(fs.existsSync('/tmp/planted')).toBe(false);
});

test('an interrupted transfer into a store resumes without fetching again what arrived', async () => {
  const url = await through('/chunks', { kind: 'cut', afterBytes: 20_000 }, 4);
  const store = freshStore();
  const args = ['/bin/ls', '--into', '/bin', '--store', store, '--batch', '256K', '--parallel', '1'];
  const first = await runCli(['get', url, ...args]);
  expect(first.code).toBe(3);
  const kept = JSON.parse(slinkyfs(['stats', '--store', store, '--json']).stdout);
  expect(kept.chunks).toBeGreaterThan(0);
  const second = JSON.parse((await runCli(['get', served.url, ...args, '--json'])).stdout);
  const all = tally(uniqueChunks([sender.files.get('ls')!]));
  expect(second.resumed).toBe(true);
  expect(second.localChunks).toBe(kept.chunks);
  expect(second.fetchedChunks).toBe(all.chunks - kept.chunks);
  const out = path.join(work, 'ls-from-store');
  expect((await runCli(['get', served.url, '/bin/ls', '-o', out, '--store', store, '--json'])).code).toBe(0);
  expect(sha(out)).toBe(sha(sender.files.get('ls')!));
  expect(slinkyfs(['verify', '--store', store]).stdout).toMatch(/no damage/);
});

test('Ctrl-C mid-transfer: exit 130 at once, the store closed and unlocked, and the next get resumes', async () => {
  const url = await through('/chunks', { kind: 'silent' }, 4);
  const store = freshStore();
  const args = ['/bin/ls', '--into', '/bin', '--store', store, '--batch', '256K', '--parallel', '1'];
  const first = await runCli(['get', url, ...args], 60_000, { name: 'SIGINT', afterMs: 3000 });
  expect(first.code).toBe(130);
  expect(first.stderr.trim()).toBe('slinkyfs: interrupted by SIGINT; what arrived is kept: run the same get again to resume');
  expect(first.ms).toBeLessThan(10_000);
  expect(fs.existsSync(path.join(store, 'daemon.pid'))).toBe(false);
  const kept = JSON.parse(slinkyfs(['stats', '--store', store, '--json']).stdout);
  expect(kept.chunks).toBeGreaterThan(0);
  const second = JSON.parse((await runCli(['get', served.url, ...args, '--json'])).stdout);
  expect(second.resumed).toBe(true);
  expect(second.localChunks).toBe(kept.chunks);
  expect(second.fetchedChunks).toBe(second.chunks - kept.chunks);
});

test('an interrupted transfer to a file resumes from the partial file', async () => {
  const url = await through('/chunks', { kind: 'cut', afterBytes: 20_000 }, 4);
  const out = path.join(work, 'ls-resumed');
  const args = ['/bin/ls', '-o', out, '--store', freshStore(), '--batch', '256K', '--parallel', '1'];
  const first = await runCli(['get', url, ...args]);
  expect(first.code).toBe(3);
  expect(fs.existsSync(out)).toBe(false);
  const second = JSON.parse((await runCli(['get', served.url, ...args, '--json'])).stdout);
  const all = tally(uniqueChunks([sender.files.get('ls')!]));
  expect(second.resumed).toBe(true);
  expect(second.localChunks).toBeGreaterThan(0);
  expect(second.fetchedChunks).toBe(all.chunks - second.localChunks);
  expect(sha(out)).toBe(sha(sender.files.get('ls')!));
});

function httpGet(port: number, p: string, method = 'GET', body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('the server refuses paths outside what it serves and bounds each request', async () => {
  const bin = await startServe(sender.store, ['--root', '/bin']);
  try {
    expect(await httpGet(bin.port, '/slinkyfs/1/stat?path=/../secret/sed')).toEqual({ status: 400, body: JSON.stringify({ error: 'refused path "/../secret/sed": ".." in "../secret/sed"' }) });
    expect((await httpGet(bin.port, '/slinkyfs/1/stat?path=/secret/sed')).status).toBe(404);
    expect((await httpGet(bin.port, '/slinkyfs/1/stat?path=/ls')).status).toBe(200);
    // A file outside the served root is not reachable by digest either.
    const sed = JSON.parse((await httpGet(served.port, '/slinkyfs/1/stat?path=/secret/sed')).body);
    const r = await runCli(['get', bin.url, sed.digest, '-o', path.join(work, 'sed-outside')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`slinkyfs: peer 127.0.0.1:${bin.port} does not have ${sed.digest}`);
    expect(await httpGet(bin.port, '/slinkyfs/1/chunks?level=99', 'POST', Buffer.alloc(0))).toEqual({ status: 400, body: JSON.stringify({ error: 'level must be between 0 and 19' }) });
    const tooMany = Buffer.concat(Array.from({ length: 4097 }, () => Buffer.concat([Buffer.from([1]), Buffer.alloc(32)])));
    expect(await httpGet(bin.port, '/slinkyfs/1/chunks', 'POST', tooMany)).toEqual({ status: 400, body: JSON.stringify({ error: 'more than 4096 digests in one request' }) });
    const tooBig = Buffer.alloc(4096 * 65 + 1, 1);
    expect(await httpGet(bin.port, '/slinkyfs/1/chunks', 'POST', tooBig)).toEqual({ status: 413, body: JSON.stringify({ error: `request body larger than ${4096 * 65} bytes` }) });
    expect((await httpGet(bin.port, '/slinkyfs/1/../../etc/passwd')).status).toBe(404);
  } finally {
    await bin.stop();
  }
});
