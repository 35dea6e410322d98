// Shared by the peer tests: a sender store holding real slinked programs (written through a real
// mount), `slinkyfs serve` on a loopback port, the CLI run asynchronously (the test process also
// runs the hostile proxies, so it must not block), independent chunk arithmetic, and a proxy on
// real TCP that forwards to a real server and misbehaves in a chosen way, or a peer of its own
// process that never answers.
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chunkBuffer } from '../../src/chunking/chunker';
import { digestToString } from '../../src/chunking/digest';
import { compress, decompress } from '../../src/chunking/compress';
import { BLOCK_HEADER, BLOCK_RAW, NOT_HERE, encodeBlockHeader } from '../../src/net/protocol';
import { BIN } from '../helpers/cli';
import { startMount } from '../helpers/mount';
import { slinkPrograms, tempDir } from '../elf/slinkHelpers';

export const sha = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

export interface Sender {
  dir: string;
  store: string;
  /** program name -> the slinked file that was copied to /bin/NAME in the store */
  files: Map<string, string>;
}

/**
 * Slink `programs` from /usr/bin and copy them through a real mount into a fresh store, each
 * into the directory `dirOf` names (/bin by default).
 */
export async function buildSender(programs: readonly string[], dirOf: (name: string) => string = () => 'bin'): Promise<Sender> {
  const dir = tempDir('net-sender');
  fs.mkdirSync(path.join(dir, 'slinked'));
  const files = await slinkPrograms(programs, path.join(dir, 'slinked'));
  const m = startMount([], path.join(dir, 'm'));
  try {
    for (const [name, file] of files) {
      const dir = path.join(m.mountpoint, dirOf(name));
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      fs.copyFileSync(file, path.join(dir, name));
      fs.chmodSync(path.join(dir, name), 0o755);
    }
    m.unmount();
  } catch (e) {
    m.cleanup();
    throw e;
  }
  return { dir, store: m.store, files };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Highest resident set size seen while it ran (kB, sampled from /proc). */
  maxRssKb: number;
}

/** Run the CLI without blocking this process's event loop; `signal` is sent after `afterMs`. */
export function runCli(args: readonly string[], timeoutMs = 120_000, signal?: { name: NodeJS.Signals; afterMs: number }): Promise<CliResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let maxRssKb = 0;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const sample = setInterval(() => {
      try {
        const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) maxRssKb = Math.max(maxRssKb, Number(m[1]));
      } catch {
        /* exited */
      }
    }, 25);
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const signaller = signal && setTimeout(() => child.kill(signal.name), signal.afterMs);
    child.on('close', (code) => {
      clearInterval(sample);
      clearTimeout(killer);
      clearTimeout(signaller);
      resolve({ code, stdout, stderr, ms: Date.now() - t0, maxRssKb });
    });
  });
}

export interface Served {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** SIGTERM to a server process, resolved once it has exited. */
function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    child.once('exit', () => r());
    child.kill('SIGTERM');
  });
}

/** `slinkyfs serve` on a free loopback port. */
export function startServe(store: string, extra: readonly string[] = []): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--store', store, '--listen', '127.0.0.1:0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      const m = /on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        const port = Number(m[1]);
        resolve({
          url: `http://127.0.0.1:${port}`,
          port,
          stop: () => stopChild(child),
        });
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

/**
 * A peer that accepts every connection and never sends a byte, in a process of its own (a
 * server that does not answer because it does not, not because this process is busy).
 */
export function startSilentPeer(): Promise<Served> {
  const script = `const s = require('node:net').createServer((c) => c.on('error', () => {}));
s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^(\d+)\n/.exec(out);
      if (!m) return;
      const port = Number(m[1]);
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        stop: () => stopChild(child),
      });
    });
    child.on('exit', (code) => reject(new Error(`the silent peer exited ${code} before it listened`)));
  });
}

/** Unique chunks (sha256-<hex> -> length) of some files as the store's chunker cuts them. */
export function uniqueChunks(files: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of files) for (const c of chunkBuffer(fs.readFileSync(f))) out.set(digestToString(c.digest), c.length);
  return out;
}

export function tally(m: Map<string, number>): { chunks: number; bytes: number } {
  let bytes = 0;
  for (const n of m.values()) bytes += n;
  return { chunks: m.size, bytes };
}

/** What a proxy does to the replies of the endpoints it targets. */
export type Misbehaviour =
  | { kind: 'rewrite'; body: (b: Buffer, reqBody: Buffer) => Buffer }
  | { kind: 'cut'; afterBytes: number }
  | { kind: 'append'; bytes: Buffer }
  | { kind: 'silent' }
  | { kind: 'trickle'; everyMs: number }
  | { kind: 'endless' };

export interface Proxy {
  url: string;
  /** Replies the misbehaviour was applied to. */
  hits: number;
  close(): Promise<void>;
}

/**
 * A loopback HTTP proxy to `targetPort` that misbehaves on requests whose path includes
 * `endpoint`, after letting the first `skip` of them through untouched.
 */
export async function startProxy(targetPort: number, endpoint: string, how: Misbehaviour, skip = 0): Promise<Proxy> {
  let seen = 0;
  const timers = new Set<NodeJS.Timeout>();
  const proxy: Proxy = { url: '', hits: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      const reqBody = Buffer.concat(parts);
      const up = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        const got: Buffer[] = [];
        ur.on('data', (d) => got.push(d));
        ur.on('end', () => {
          const body = Buffer.concat(got);
          if (!req.url?.includes(endpoint) || seen++ < skip) {
            res.writeHead(ur.statusCode ?? 500, { 'content-type': String(ur.headers['content-type'] ?? ''), 'content-length': body.length });
            res.end(body);
            return;
          }
          proxy.hits++;
          misbehave(res, body, reqBody, how, timers);
        });
      });
      up.end(reqBody);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((r) => {
      for (const t of timers) clearInterval(t);
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}

function misbehave(res: http.ServerResponse, body: Buffer, reqBody: Buffer, how: Misbehaviour, timers: Set<NodeJS.Timeout>): void {
  switch (how.kind) {
    case 'rewrite': {
      const b = how.body(body, reqBody);
      res.writeHead(200, { 'content-length': b.length });
      res.end(b);
      return;
    }
    case 'cut':
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, how.afterBytes), () => res.socket?.destroy());
      return;
    case 'append':
      res.writeHead(200);
      res.end(Buffer.concat([body, how.bytes]));
      return;
    case 'silent':
      res.writeHead(200);
      res.flushHeaders();
      return;
    case 'trickle': {
      res.writeHead(200);
      let i = 0;
      const t = setInterval(() => {
        if (i >= body.length || res.destroyed) {
          clearInterval(t);
          res.end();
          return;
        }
        res.write(body.subarray(i, i + 1));
        i++;
      }, how.everyMs);
      timers.add(t);
      return;
    }
    case 'endless': {
      res.writeHead(200);
      const junk = Buffer.alloc(64 << 10, 0x41);
      const pump = () => {
        while (!res.destroyed && res.write(junk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return;
    }
  }
}

/**
 * Re-frame a chunk reply as raw blocks, one per chunk, passing each chunk's plaintext through
 * `edit` first: a well-formed reply whose bytes are whatever `edit` makes them.
 */
export function reframeChunks(body: Buffer, edit: (plain: Buffer, index: number) => Buffer): Buffer {
  const out: Buffer[] = [];
  let o = 0;
  let index = 0;
  while (o < body.length) {
    const codec = body[o];
    const count = body.readUInt32LE(o + 1);
    const enc = body.readUInt32LE(o + 5);
    const lengths = Array.from({ length: count }, (_, i) => body.readUInt32LE(o + BLOCK_HEADER + 4 * i));
    const data = body.subarray(o + BLOCK_HEADER + 4 * count, o + BLOCK_HEADER + 4 * count + enc);
    o += BLOCK_HEADER + 4 * count + enc;
    const present = lengths.filter((l) => l !== NOT_HERE).reduce((a, b) => a + b, 0);
    const plain = codec === BLOCK_RAW ? data : decompress(data, present);
    let p = 0;
    for (const len of lengths) {
      if (len === NOT_HERE) {
        out.push(encodeBlockHeader(BLOCK_RAW, [NOT_HERE], 0));
      } else {
        const piece = edit(Buffer.from(plain.subarray(p, p + len)), index);
        p += len;
        out.push(encodeBlockHeader(BLOCK_RAW, [piece.length], piece.length), piece);
      }
      index++;
    }
  }
  return Buffer.concat(out);
}

/**
 * Edit the plain bytes of a packed reply ([u32 plain length][zstd frame]: recipes, layouts, tree
 * pages) and pack it again. `edit` may change the bytes in place or return new ones.
 */
export function rewritePacked(body: Buffer, edit: (plain: Buffer) => Buffer | void): Buffer {
  let plain: Buffer = Buffer.from(decompress(body.subarray(4), body.readUInt32LE(0)));
  plain = edit(plain) ?? plain;
  const head = Buffer.alloc(4);
  head.writeUInt32LE(plain.length);
  return Buffer.concat([head, compress(plain, 3)]);
}
