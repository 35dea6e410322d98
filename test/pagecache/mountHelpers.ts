// Helpers for the page cache tests on a real mount: waiting for the daemon to publish objects,
// and watching a running program's mappings in /proc.
import fs from 'node:fs';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSlinked } from '../../src/elf/slinkedFile';
import { digestToString } from '../../src/chunking/digest';
import type { PageCacheStats } from '../../src/pagecache';
import { slinkyfs } from '../helpers/cli';

export interface ObjectRef {
  name: string; // soname or file name
  file: string; // sha256-<hex>
}

export async function objectsOf(slinkedFile: string): Promise<ObjectRef[]> {
  return (await openSlinked(slinkedFile)).manifest.objects.map((o) => ({ name: o.name, file: digestToString(o.digest) }));
}

/** Waits until each object is a file of the mount (publishing runs after the copy's commit). */
export function waitPublished(mountpoint: string, objects: readonly ObjectRef[], timeoutMs = 30000): void {
  const deadline = Date.now() + timeoutMs;
  for (const o of objects) {
    while (!fs.existsSync(`${mountpoint}/.slinky/objects/${o.file}`)) {
      if (Date.now() > deadline) throw new Error(`${o.name} (${o.file}) was not published within ${timeoutMs} ms`);
      spawnSync('sleep', ['0.05']);
    }
  }
}

/** The page cache statistics of the daemon serving `store` (`slinkyfs stats --pages --json`). */
export function pageStats(store: string): PageCacheStats {
  const r = slinkyfs(['stats', '--store', store, '--pages', '--json']);
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout).pages;
}

export interface MapsEntry {
  dev: string;
  ino: number;
  path: string;
}

export function fileMappings(pid: number): MapsEntry[] {
  return fs
    .readFileSync(`/proc/${pid}/maps`, 'latin1')
    .split('\n')
    .map((l) => /^\S+ \S+ \S+ (\S+) (\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => !!m && m[2] !== '0')
    .map((m) => ({ dev: m[1], ino: Number(m[2]), path: m[3] }));
}

/** Starts `argv` and resolves once its mappings include `until` (the loader is done). */
export async function startAndWait(argv: string[], until: (maps: MapsEntry[]) => boolean, timeoutMs = 20000): Promise<ChildProcess> {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${argv[0]} exited with ${child.exitCode}`);
    try {
      if (until(fileMappings(child.pid!))) return child;
    } catch {
      /* not started yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${argv[0]} did not map what was expected within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
