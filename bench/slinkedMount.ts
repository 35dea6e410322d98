// Shared by the page cache benchmarks (memory, pagefaults, startupMount, macro): a fresh slinkyfs
// mount with the daemon in its own process (started by the real CLI), programs slinked into it,
// waiting until the daemon has published their objects, the daemon's page cache statistics, and
// the slinked files' standalone twins on ext4.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openSlinked } from '../src/elf/slinkedFile';
import { digestToString } from '../src/chunking/digest';
import { requestStats, type PageCacheStats } from '../src/pagecache';

export const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'slinkyfs');

export function run(cmd: string, args: string[], opts: { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

export function slinkyfs(...args: string[]): string {
  return run(process.execPath, [BIN, ...args]);
}

export interface BenchMount {
  dir: string;
  mountpoint: string;
  store: string;
  /** Slinked programs on the mount, by name: <mountpoint>/bin/<name>. */
  bin: (name: string) => string;
  /** The same slinked files on ext4 (they run standalone there). */
  standalone: (name: string) => string;
  daemonPid(): number;
  pageStats(): Promise<PageCacheStats>;
  /** Slink /usr/bin programs (or absolute paths) into bin/ under the given names. */
  add(programs: Record<string, string>): Promise<void>;
  /** Unmount and mount again: the kernel's page cache of the mount and the daemon start empty. */
  remount(): void;
  /** Wait until the daemon has looked for every object's twin (it does so after each mount). */
  settled(): Promise<void>;
  cleanup(): void;
}

/** `mountArgs`: more `slinkyfs mount` options, e.g. --no-passthrough (kept on remount). */
export async function benchMount(tag: string, mountArgs: string[] = []): Promise<BenchMount> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pagecache-bench-${tag}-`));
  fs.chmodSync(dir, 0o755);
  const mountpoint = path.join(dir, 'mnt');
  const store = path.join(dir, 'store');
  const plain = path.join(dir, 'standalone');
  fs.mkdirSync(mountpoint);
  fs.mkdirSync(plain);
  slinkyfs('mount', mountpoint, '--store', store, ...mountArgs);
  fs.mkdirSync(path.join(mountpoint, 'bin'), { recursive: true });
  const m: BenchMount = {
    dir,
    mountpoint,
    store,
    bin: (name) => path.join(mountpoint, 'bin', name),
    standalone: (name) => path.join(plain, name),
    daemonPid: () => JSON.parse(fs.readFileSync(path.join(store, 'daemon.pid'), 'utf8')).pid,
    pageStats: async () => (await requestStats(store)) as PageCacheStats,
    async add(programs) {
      for (const [name, source] of Object.entries(programs)) {
        const from = source.startsWith('/') ? source : path.join('/usr/bin', source);
        slinkyfs('slink', fs.realpathSync(from), '-o', m.standalone(name));
        run('cp', ['-p', m.standalone(name), m.bin(name)]);
        await waitPublished(mountpoint, m.standalone(name));
      }
      await m.settled();
    },
    async settled() {
      const deadline = Date.now() + 120000;
      while ((await m.pageStats()).twins.pending > 0) {
        if (Date.now() > deadline) throw new Error('the daemon did not finish looking for twins within 120 s');
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    remount() {
      slinkyfs('umount', mountpoint);
      slinkyfs('mount', mountpoint, '--store', store, ...mountArgs);
    },
    cleanup() {
      spawnSync(process.execPath, [BIN, 'umount', mountpoint]);
      spawnSync('fusermount3', ['-uz', mountpoint]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return m;
}

async function waitPublished(mountpoint: string, slinkedFile: string): Promise<void> {
  const names = (await openSlinked(slinkedFile)).manifest.objects.map((o) => digestToString(o.digest));
  const deadline = Date.now() + 120000;
  for (const n of names) {
    while (!fs.existsSync(path.join(mountpoint, '.slinky', 'objects', n))) {
      if (Date.now() > deadline) throw new Error(`objects of ${slinkedFile} were not published within 120 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Several mounts side by side: if one cannot be made, those already made are unmounted. */
export async function benchMounts(specs: ReadonlyArray<readonly [tag: string, mountArgs?: string[]]>): Promise<BenchMount[]> {
  const made: BenchMount[] = [];
  try {
    for (const [tag, mountArgs] of specs) made.push(await benchMount(tag, mountArgs));
    return made;
  } catch (err) {
    for (const m of made) m.cleanup();
    throw err;
  }
}

export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

export function machine(): string {
  const poll = haltPolling();
  return `${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${poll ? `, ${poll}` : ''}`;
}

/**
 * A KVM guest's halt polling, which decides what every hand-over between threads costs (a FUSE
 * round trip, a commit on lmdb-js's writer thread): with it off, a thread that blocks halts its
 * virtual CPU and waking it again costs tens of microseconds. Undefined outside such a guest.
 */
export function haltPolling(): string | undefined {
  try {
    if (fs.readFileSync('/sys/devices/system/cpu/cpuidle/current_driver', 'utf8').trim() !== 'haltpoll') return undefined;
    const ns = Number(fs.readFileSync('/sys/module/haltpoll/parameters/guest_halt_poll_ns', 'utf8'));
    return ns > 0 ? `guest halt polling up to ${ns / 1000} µs` : 'guest halt polling off';
  } catch {
    return undefined;
  }
}
