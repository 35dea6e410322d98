// Memory of ten different programs running at once, side by side in one run (the paper's memory
// cost of static linking):
//   - dynamic: the programs from /usr/bin, libraries shared through the kernel page cache;
//   - mount: the same programs slinked, run from a slinkyfs mount: every embedded object is one
//     file of the mount (/.slinky/objects), so its pages are shared like a library's. Twice: by
//     default, where objects identical to this machine's files (libc.so.6) pass through to them,
//     so their pages are the very pages dynamic programs use; and with --no-passthrough, where
//     the daemon serves (and verifies) every object page itself;
//   - standalone: the same slinked files on ext4, each process with private memfd copies.
// Each program is kept alive reading a pipe. Figures, summed over the ten processes:
//   Pss      from /proc/PID/smaps_rollup (shared pages divided among the processes mapping them,
//            including processes outside the ten: dynamic libc.so.6 is shared with every program on
//            the machine, an object of a fresh mount only with the ten);
//   + daemon the slinkyfs daemon's Pss growth while the ten run (mount only; hot: the objects
//            were read once before, as a bin directory in use would have them);
//   Pss among the ten
//            the physical pages the ten map, each counted once however many of them map it
//            (from /proc/PID/pagemap): the Pss sum the ten would have alone on the machine, i.e.
//            what they cost together whoever else shares the pages;
//   memfd    bytes of the private copies the standalone stub holds in memfds (not all mapped, so
//            not all in Pss, but all in memory).
// The mount is measured twice: cold (freshly mounted, kernel and daemon caches empty, so the
// daemon's growth includes reading and verifying every page the ten touch) and hot.
//
//   make build && node dist/bench/memory.js [--readahead-kib N]   (as root: pagemap needs
//   CAP_SYS_ADMIN for PFNs; --readahead-kib is passed to both mounts)
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchMounts, machine, printTable, type BenchMount } from './slinkedMount';

interface Program {
  name: string;
  args: string[];
}

/** Ten programs, each blocked reading its standard input (a pipe kept open) or sleeping. */
const PROGRAMS: Program[] = [
  { name: 'sleep', args: ['600'] },
  { name: 'python3', args: ['-c', 'import sys, json, re; sys.stdin.read()'] },
  { name: 'perl', args: ['-e', '<STDIN>'] },
  { name: 'bash', args: ['-c', 'read -r line'] },
  { name: 'mawk', args: ['{ print }'] },
  { name: 'tail', args: ['-f', '/dev/null'] },
  { name: 'cat', args: [] },
  { name: 'sort', args: [] },
  { name: 'make', args: ['-f', '-'] },
  { name: 'git', args: ['hash-object', '--stdin'] },
];

const PAGE = 4096;

function pss(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  if (!m) throw new Error(`no Pss for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Physical page frame numbers of every present page the process maps. */
function frames(pid: number, into: Set<number>): void {
  const maps = fs.readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n').filter(Boolean);
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    for (const line of maps) {
      const [range, , , , , name] = line.split(/\s+/);
      if (name === '[vsyscall]') continue;
      const [lo, hi] = range.split('-').map((h) => parseInt(h, 16));
      const pages = (hi - lo) / PAGE;
      const buf = Buffer.alloc(pages * 8);
      fs.readSync(fd, buf, 0, buf.length, (lo / PAGE) * 8);
      for (let i = 0; i < pages; i++) {
        const e = buf.readBigUInt64LE(i * 8);
        if (!(e >> 63n)) continue; // not present
        const pfn = Number(e & ((1n << 55n) - 1n));
        if (pfn) into.add(pfn);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

function memfdBytes(pid: number): number {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('/memfd:')) n += fs.statSync(`/proc/${pid}/fd/${fd}`).size;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

/** Waits until the process's mappings stop changing (the loader is done, it is blocked). */
async function settled(c: ChildProcess, name: string, stderr: () => string): Promise<void> {
  const pid = c.pid!;
  let last = '';
  for (let i = 0; i < 200; i++) {
    if (c.exitCode !== null || c.signalCode !== null) throw new Error(`${name} exited (${c.exitCode ?? c.signalCode}): ${stderr().trim()}`);
    const now = fs.readFileSync(`/proc/${pid}/maps`, 'latin1');
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1][0];
    if (now === last && state === 'S') return;
    last = now;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`process ${pid} did not settle`);
}

interface Sample {
  pss: number;
  distinct: number;
  memfd: number;
}

async function runTen(file: (name: string) => string): Promise<{ sample: Sample; stop: () => Promise<void> }> {
  const children: ChildProcess[] = [];
  const errors: string[] = [];
  // The programs are killed at the end, so what they leave in TMPDIR (make -f - keeps its
  // standard input in a temporary file) goes in a directory of ours, removed with them.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-bench-'));
  PROGRAMS.forEach((p, i) => {
    const c = spawn(file(p.name), p.args, { stdio: ['pipe', 'ignore', 'pipe'], cwd: tmp, env: { ...process.env, TMPDIR: tmp } });
    errors[i] = '';
    c.stderr!.on('data', (d) => (errors[i] += d));
    children.push(c);
  });
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (!c.pid || c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const pfns = new Set<number>();
  let total = 0;
  let memfd = 0;
  try {
    for (let i = 0; i < children.length; i++) {
      if (!children[i].pid) throw new Error(`${PROGRAMS[i].name} did not start`);
      await settled(children[i], PROGRAMS[i].name, () => errors[i]);
    }
    for (const c of children) {
      total += pss(c.pid!);
      frames(c.pid!, pfns);
      memfd += memfdBytes(c.pid!);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { sample: { pss: total, distinct: pfns.size * PAGE, memfd }, stop };
}

async function measure(file: (name: string) => string, daemon?: () => number): Promise<Sample & { daemonGrowth: number }> {
  const before = daemon ? pss(daemon()) : 0;
  const { sample, stop } = await runTen(file);
  const growth = daemon ? Math.max(0, pss(daemon()) - before) : 0;
  await stop();
  return { ...sample, daemonGrowth: growth };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root (pagemap frame numbers)');
  const args = process.argv.slice(2);
  const readahead = args.includes('--readahead-kib') ? ['--readahead-kib', args[args.indexOf('--readahead-kib') + 1]] : [];
  const [m, served] = await benchMounts([
    ['memory', readahead],
    ['memory-served', ['--no-passthrough', ...readahead]],
  ]);
  try {
    const programs = Object.fromEntries(PROGRAMS.map((p) => [p.name, p.name]));
    await m.add(programs);
    await served.add(programs);
    m.remount();
    served.remount();
    await m.settled();
    const cold = await measure(m.bin, () => m.daemonPid());
    const hot = await measure(m.bin, () => m.daemonPid());
    const servedCold = await measure(served.bin, () => served.daemonPid());
    const servedHot = await measure(served.bin, () => served.daemonPid());
    await measure((n) => `/usr/bin/${n}`); // warm the dynamic programs' files alike
    const dynamic = await measure((n) => `/usr/bin/${n}`);
    const standalone = await measure(m.standalone);
    const s = await m.pageStats();
    const ss = await served.pageStats();
    console.log(`ten programs at once (${PROGRAMS.map((p) => p.name).join(', ')}), ${machine()}`);
    const row = (label: string, x: Sample & { daemonGrowth: number }) => {
      const sum = x.pss + x.daemonGrowth;
      return [label, mib(x.pss), mib(x.daemonGrowth), mib(sum), `${(sum / dynamic.pss).toFixed(3)}x`, mib(x.distinct), `${(x.distinct / dynamic.distinct).toFixed(3)}x`, mib(x.memfd)];
    };
    printTable(
      ['variant', 'Pss MiB', '+daemon MiB', 'sum MiB', 'sum/dynamic', 'Pss among the ten MiB', '/dynamic', 'memfd MiB'],
      [
        row('dynamic', dynamic),
        row('slinked, mount (hot)', hot),
        row('slinked, mount (cold)', cold),
        row('slinked, mount, --no-passthrough (hot)', servedHot),
        row('slinked, mount, --no-passthrough (cold)', servedCold),
        row('slinked, standalone', standalone),
      ],
    );
    const twins = s.objects.filter((o) => o.twin).length;
    console.log(`\nmount: ${twins} of ${s.published.objects} objects pass through to identical files of this machine (${s.fastPath.passthroughOpens} opens)`);
    for (const [label, x] of [['mount', s], ['--no-passthrough', ss]] as const) {
      console.log(
        `${label}: daemon page cache ${x.gdt.entries} GDT entries (${mib(x.gdt.bytes)} MiB, bound ${mib(x.gdt.limitBytes)} MiB), ${x.gdt.hits} hits, ${x.gdt.misses} misses, ` +
          `${x.gdt.verificationFailures} verification failures, ${x.published.objects} objects published`,
      );
    }
  } finally {
    m.cleanup();
    served.cleanup();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
});
