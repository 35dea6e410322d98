// FUSE binding overhead, side by side in one run: the same trivial filesystem (every name in the
// root is a regular file; reads return a fixed buffer; writes are accepted and dropped) served by
// fuse-native (libfuse 2, high-level, with big_writes,max_write=131072 as in NOTES.md) and by our
// low-level binding (src/fs/lowlevel.ts) reading the device on a session thread, on the JS
// thread (the default), and on the JS thread with 1 MiB writes. Each server runs in its own process; this process
// drives real tools against the mounts: `dd bs=1M` sequential write and read, and os.stat() of
// many distinct paths (python3). Both mounts use attr_timeout=0 and entry_timeout=0, as the
// daemon does, so every stat costs a LOOKUP and a GETATTR. Runs alternate between the servers;
// each figure is the best of `rounds`, with the server's CPU time per unit of work beside it.
//
//   make build && node dist/bench/fuseBinding.js [MiB=512] [statPaths=10000] [rounds=3]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mountLowLevel, ROOT_INO, type Attr, type LowLevelOps } from '../src/fs/lowlevel';

const READ_FILE = 'r';
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

// ---- the servers ------------------------------------------------------------------------------

/** Both servers answer with the same bytes and sizes. */
function trivial(fileBytes: number) {
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  const now = Date.now();
  return { chunk, now, fileBytes };
}

async function serveLowLevel(mountpoint: string, fileBytes: number, maxWrite: number, sessionThread: boolean): Promise<() => Promise<void>> {
  const { chunk, now } = trivial(fileBytes);
  const inos = new Map<string, number>();
  const attr = (ino: number): Attr =>
    ino === ROOT_INO
      ? { ino, mode: S_IFDIR | 0o755, nlink: 2, uid: 0, gid: 0, size: 0, atimeMs: now, mtimeMs: now, ctimeMs: now }
      : { ino, mode: S_IFREG | 0o644, nlink: 1, uid: 0, gid: 0, size: fileBytes, atimeMs: now, mtimeMs: now, ctimeMs: now };
  const inoOf = (name: string) => {
    let ino = inos.get(name);
    if (ino === undefined) inos.set(name, (ino = inos.size + 2));
    return ino;
  };
  const ops: LowLevelOps = {
    lookup: async (_req, _parent, name) => ({ attr: attr(inoOf(name)) }),
    getattr: async (_req, ino) => ({ attr: attr(ino) }),
    setattr: async (_req, ino) => ({ attr: attr(ino) }),
    open: async () => ({}),
    create: async (_req, _parent, name) => ({ attr: attr(inoOf(name)) }),
    read: async (_req, _ino, _fh, offset, size) => chunk.subarray(0, Math.max(0, Math.min(size, fileBytes - offset))),
    write: async (_req, _ino, _fh, _offset, data) => data.length,
  };
  const s = await mountLowLevel(mountpoint, ops, { attrTimeout: 0, entryTimeout: 0, maxWrite, sessionThread, fsname: 'bench-lowlevel' });
  return () => s.unmount();
}

async function serveFuseNative(mountpoint: string, fileBytes: number): Promise<() => Promise<void>> {
  const { chunk, now } = trivial(fileBytes);
  const Fuse: new (mnt: string, ops: object, opts: object) => any = require('fuse-native');
  const time = new Date(now);
  const stat = (dir: boolean) => ({
    mode: dir ? S_IFDIR | 0o755 : S_IFREG | 0o644, uid: 0, gid: 0, size: dir ? 0 : fileBytes, dev: 0,
    nlink: dir ? 2 : 1, ino: 0, rdev: 0, blksize: 4096, blocks: 0, atime: time, mtime: time, ctime: time,
  });
  type Cb = (...a: any[]) => void;
  const ops = {
    getattr: (p: string, cb: Cb) => cb(0, stat(p === '/')),
    fgetattr: (p: string, _fd: number, cb: Cb) => cb(0, stat(p === '/')),
    open: (_p: string, _f: number, cb: Cb) => cb(0, 1),
    create: (_p: string, _m: number, cb: Cb) => cb(0, 1),
    truncate: (_p: string, _s: number, cb: Cb) => cb(0),
    ftruncate: (_p: string, _fd: number, _s: number, cb: Cb) => cb(0),
    release: (_p: string, _fd: number, cb: Cb) => cb(0),
    read: (_p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      const n = Math.max(0, Math.min(len, fileBytes - pos));
      chunk.copy(buf, 0, 0, n);
      cb(n);
    },
    write: (_p: string, _fd: number, _buf: Buffer, len: number, _pos: number, cb: Cb) => cb(len),
  };
  class BenchFuse extends Fuse {
    _fuseOptions(): string {
      const base: string = super._fuseOptions();
      const extra = 'big_writes,max_write=131072,attr_timeout=0,entry_timeout=0,fsname=bench-fuse-native';
      return base ? `${base},${extra}` : `-o${extra}`;
    }
  }
  const fuse = new BenchFuse(mountpoint, ops, {});
  await new Promise<void>((resolve, reject) => fuse.mount((err: Error | null) => (err ? reject(err) : resolve())));
  return () => new Promise<void>((resolve) => fuse.unmount(() => resolve()));
}

async function serve(kind: string, mountpoint: string, fileBytes: number, maxWrite: number): Promise<void> {
  const stop =
    kind === 'fuse-native' ? await serveFuseNative(mountpoint, fileBytes) : await serveLowLevel(mountpoint, fileBytes, maxWrite, kind === 'lowlevel-thread');
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));
  process.stdout.write('ready\n');
}

// ---- the driver -------------------------------------------------------------------------------

interface Server {
  name: string;
  mountpoint: string;
  child: ChildProcess;
}

async function start(name: string, kind: string, fileBytes: number, maxWrite: number): Promise<Server> {
  const mountpoint = mkdtempSync(path.join(tmpdir(), 'bench-fuse-'));
  const child = spawn(process.execPath, [__filename, 'serve', kind, mountpoint, String(fileBytes), String(maxWrite)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`${name} server exited with ${code} before mounting`)));
  });
  return { name, mountpoint, child };
}

async function stopServer(s: Server): Promise<void> {
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGTERM');
  await exited;
  rmdirSync(s.mountpoint);
}

/** utime+stime of a process in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

function run(cmd: string): string {
  const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr.trim()}`);
  return r.stdout + r.stderr;
}

/** dd's own timing: "N bytes ... copied, S s". Returns seconds. */
function ddSeconds(out: string): number {
  const m = /copied, ([\d.]+) s/.exec(out);
  if (!m) throw new Error(`unexpected dd output: ${out}`);
  return Number(m[1]);
}

interface Sample {
  rate: number; // units per second
  cpuPerUnit: number; // server CPU seconds per unit
}

function measure(s: Server, what: 'write' | 'read' | 'stat', mib: number, statPaths: number): Sample {
  const pid = s.child.pid!;
  const cpu0 = cpuSeconds(pid);
  let seconds: number;
  let units: number;
  if (what === 'write') {
    seconds = ddSeconds(run(`dd if=/dev/zero of=${s.mountpoint}/w bs=1M count=${mib} 2>&1`));
    units = (mib * 1048576) / 1e6;
  } else if (what === 'read') {
    seconds = ddSeconds(run(`dd if=${s.mountpoint}/${READ_FILE} of=/dev/null bs=1M count=${mib} 2>&1`));
    units = (mib * 1048576) / 1e6;
  } else {
    const script = 'import os,sys,time\nd=sys.argv[1]; n=int(sys.argv[2])\nt=time.perf_counter()\nfor i in range(n): os.stat(d+"/p%d"%i)\nprint(time.perf_counter()-t)';
    const r = spawnSync('python3', ['-c', script, s.mountpoint, String(statPaths)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`stat run: ${r.stderr.trim()}`);
    seconds = Number(r.stdout.trim());
    units = statPaths;
  }
  return { rate: units / seconds, cpuPerUnit: (cpuSeconds(pid) - cpu0) / units };
}

async function main(): Promise<void> {
  const mib = Number(process.argv[2] ?? 512);
  const statPaths = Number(process.argv[3] ?? 10000);
  const rounds = Number(process.argv[4] ?? 3);
  if (!(mib >= 1) || !(statPaths >= 1) || !(rounds >= 1)) {
    console.error('usage: node dist/bench/fuseBinding.js [MiB>=1] [statPaths>=1] [rounds>=1]');
    process.exit(2);
  }
  const fileBytes = mib * 1048576;
  const servers = [
    await start('fuse-native, 128K', 'fuse-native', fileBytes, 131072),
    await start('lowlevel, session thread, 128K', 'lowlevel-thread', fileBytes, 131072),
    await start('lowlevel, JS-thread loop, 128K', 'lowlevel-main', fileBytes, 131072),
    await start('lowlevel, JS-thread loop, 1M', 'lowlevel-main', fileBytes, 1048576),
  ];
  const metrics = [
    { key: 'write' as const, label: `seq write dd bs=1M, ${mib} MiB`, unit: 'MB/s', cpuUnit: 'ms/GB', cpuScale: 1e6 },
    { key: 'read' as const, label: `seq read dd bs=1M, ${mib} MiB`, unit: 'MB/s', cpuUnit: 'ms/GB', cpuScale: 1e6 },
    { key: 'stat' as const, label: `stat() of ${statPaths} paths`, unit: 'stat/s', cpuUnit: 'µs/stat', cpuScale: 1e6 },
  ];
  const best = new Map<string, Sample>();
  try {
    for (let r = 0; r < rounds; r++) {
      for (const m of metrics) {
        for (const s of servers) {
          const sample = measure(s, m.key, mib, statPaths);
          const k = `${s.name}/${m.key}`;
          const prev = best.get(k);
          if (!prev || sample.rate > prev.rate) best.set(k, { rate: sample.rate, cpuPerUnit: Math.min(sample.cpuPerUnit, prev?.cpuPerUnit ?? Infinity) });
          else prev.cpuPerUnit = Math.min(prev.cpuPerUnit, sample.cpuPerUnit);
        }
      }
    }
  } finally {
    for (const s of servers) await stopServer(s);
  }
  const base = servers[0].name;
  console.log(`FUSE binding overhead (best of ${rounds}; server CPU = utime+stime of the serving process)`);
  console.log('| metric | ' + servers.map((s) => s.name).join(' | ') + ' |');
  console.log('| --- |' + servers.map(() => ' --- |').join(''));
  for (const m of metrics) {
    const b = best.get(`${base}/${m.key}`)!;
    const cells = servers.map((s) => {
      const v = best.get(`${s.name}/${m.key}`)!;
      const ratio = s.name === base ? '' : ` (${(v.rate / b.rate).toFixed(2)}×)`;
      return `${v.rate.toFixed(0)} ${m.unit}${ratio}, CPU ${(v.cpuPerUnit * m.cpuScale).toFixed(m.key === 'stat' ? 1 : 0)} ${m.cpuUnit}`;
    });
    console.log(`| ${m.label} | ${cells.join(' | ')} |`);
  }
}

if (process.argv[2] === 'serve') {
  serve(process.argv[3], process.argv[4], Number(process.argv[5]), Number(process.argv[6])).catch((e) => {
    console.error(`bench server: ${(e as Error).message}`);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(`bench/fuseBinding: ${(e as Error).message}`);
    process.exit(1);
  });
}
