// A real slinkyfs mount for a test: the daemon in its own process (started by the CLI, which
// returns once the mount is ready), a fresh store and mountpoint in a temp dir, and a teardown
// that leaves no mount or daemon behind even when the test failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { slinkyfs } from './cli';

export interface TestMount {
  dir: string;
  mountpoint: string;
  store: string;
  /** Stop via `slinkyfs umount` (clean path). */
  unmount(): void;
  /** Mount again on the same store. */
  remount(extra?: string[]): void;
  /** Kill the daemon with SIGKILL, as a crash would. */
  kill9(): void;
  /** Remove everything; safe to call twice. */
  cleanup(): void;
  stats(): Record<string, number>;
}

function daemonPid(store: string): number | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(store, 'daemon.pid'), 'utf8')).pid;
  } catch {
    return undefined;
  }
}

export function startMount(extra: string[] = [], dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-test-'))): TestMount {
  const mountpoint = path.join(dir, 'mnt');
  const store = path.join(dir, 'store');
  fs.mkdirSync(mountpoint, { recursive: true });
  const mount = (args: string[]) => {
    const r = slinkyfs(['mount', mountpoint, '--store', store, ...args]);
    if (r.status !== 0) throw new Error(`mount failed (${r.status}): ${r.stderr}`);
  };
  mount(extra);
  const m: TestMount = {
    dir,
    mountpoint,
    store,
    unmount() {
      const r = slinkyfs(['umount', mountpoint]);
      if (r.status !== 0) throw new Error(`umount failed: ${r.stderr}`);
    },
    remount(args = extra) {
      mount(args);
    },
    kill9() {
      const pid = daemonPid(store);
      if (pid) process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 50 && pid; i++) {
        try {
          process.kill(pid, 0);
          spawnSync('sleep', ['0.1']);
        } catch {
          break;
        }
      }
    },
    cleanup() {
      const pid = daemonPid(store);
      if (pid) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        for (let i = 0; i < 50; i++) {
          try {
            process.kill(pid, 0);
            spawnSync('sleep', ['0.1']);
          } catch {
            break;
          }
        }
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      spawnSync('fusermount3', ['-uz', mountpoint]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    stats() {
      const r = slinkyfs(['stats', '--store', store, '--json']);
      if (r.status !== 0) throw new Error(`stats failed: ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
  };
  return m;
}

/** A mount started before a test file's tests and removed after them, even when they fail. */
export function useMount(extra: string[] = []): { readonly m: TestMount; readonly mp: string } {
  let m: TestMount | undefined;
  beforeAll(() => {
    m = startMount(extra);
  });
  afterAll(() => m?.cleanup());
  return {
    get m() {
      return m!;
    },
    get mp() {
      return m!.mountpoint;
    },
  };
}
