// Shared by the slink/digest/chroot tests: slinking real programs into a temporary directory and
// running a slinked file inside an empty chroot (only that file, plus /proc and /dev bound in).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SlinkContext, slinkFile } from '../../src/elf/slink';

export function tempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `slinky-${tag}-`));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Slinks each program (by name in /usr/bin) into `dir`, returning name -> slinked path. */
export async function slinkPrograms(names: readonly string[], dir: string): Promise<Map<string, string>> {
  const ctx = new SlinkContext();
  const out = new Map<string, string>();
  for (const name of names) {
    const dest = path.join(dir, name);
    await slinkFile(path.join('/usr/bin', name), dest, { context: ctx });
    out.set(name, dest);
  }
  return out;
}

/** Environment for comparisons: nothing inherited from the test runner's own environment. */
export const CLEAN_ENV: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin', LC_ALL: 'C', HOME: '/', TZ: 'UTC' };

export interface RunOptions {
  readonly input?: string | Buffer;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeout?: number;
}

/**
 * Standard input comes from a regular file, not a pipe: Node's stdio pipes are sockets, which
 * /dev/stdin cannot reopen, and a program that exits without reading them races the writer.
 */
function withInput<T>(input: string | Buffer | undefined, fn: (stdin: number) => T): T {
  const file = path.join(os.tmpdir(), `slinky-stdin-${process.pid}-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(file, input ?? '');
  fs.utimesSync(file, 0, 0); // programs that print the input's time (diff -u) print the same one
  const fd = fs.openSync(file, 'r');
  fs.unlinkSync(file);
  try {
    return fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function run(file: string, args: readonly string[], opts: RunOptions = {}): SpawnSyncReturns<Buffer> {
  return withInput(opts.input, (stdin) =>
    spawnSync(file, args, { stdio: [stdin, 'pipe', 'pipe'], env: opts.env ?? CLEAN_ENV, cwd: '/', timeout: opts.timeout ?? 20000 }),
  );
}

/**
 * A root directory that holds /proc and /dev (bind mounts) and, for each run, exactly one file:
 * the slinked program at /usr/bin/NAME, so it is invoked by the same path as the original.
 */
export class EmptyRoot {
  readonly dir = tempDir('root');
  private mounted: string[] = [];

  constructor() {
    for (const d of ['proc', 'dev', 'usr/bin']) fs.mkdirSync(path.join(this.dir, d), { recursive: true });
    for (const d of ['proc', 'dev']) {
      const target = path.join(this.dir, d);
      const r = spawnSync('mount', ['--bind', `/${d}`, target], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mount --bind /${d}: ${r.stderr}`);
      this.mounted.push(target);
    }
  }

  /** Every path in the root except what is under the bind mounts. */
  contents(): string[] {
    const out: string[] = [];
    const walk = (rel: string) => {
      for (const e of fs.readdirSync(path.join(this.dir, rel), { withFileTypes: true })) {
        const p = rel ? `${rel}/${e.name}` : e.name;
        out.push(p);
        if (e.isDirectory() && p !== 'proc' && p !== 'dev') walk(p);
      }
    };
    walk('');
    return out.sort();
  }

  run(slinked: string, name: string, args: readonly string[], opts: RunOptions = {}): SpawnSyncReturns<Buffer> {
    const inside = path.join(this.dir, 'usr/bin', name);
    fs.linkSync(slinked, inside);
    try {
      return withInput(opts.input, (stdin) =>
        spawnSync('/usr/sbin/chroot', [this.dir, `/usr/bin/${name}`, ...args], {
          stdio: [stdin, 'pipe', 'pipe'],
          env: opts.env ?? CLEAN_ENV,
          timeout: opts.timeout ?? 20000,
        }),
      );
    } finally {
      fs.unlinkSync(inside);
    }
  }

  dispose(): void {
    for (const m of this.mounted.reverse()) spawnSync('umount', ['-l', m]);
    this.mounted = [];
    // Never a recursive delete here: a bind mount still in place would take /dev with it.
    for (const d of ['usr/bin', 'usr', 'proc', 'dev', '']) fs.rmdirSync(path.join(this.dir, d));
  }
}
