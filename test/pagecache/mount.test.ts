// The shared page cache on a real mount (daemon in its own process, real programs slinked from
// /usr/bin): slinked programs on the mount map their objects from /.slinky/objects, one inode
// per object shared by every process; a copy elsewhere runs standalone; nobody can change the
// shared objects; a tampered page is refused and counted.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startMount, type TestMount } from '../helpers/mount';
import { sh, slinkyfs } from '../helpers/cli';
import { slinkPrograms, CLEAN_ENV } from '../elf/slinkHelpers';
import { fileMappings, objectsOf, pageStats, startAndWait, stopChild, waitPublished, type ObjectRef } from './mountHelpers';
import { tempDir } from './helpers';
import { mailboxOffset } from '../../src/elf/manifest';
import { stubPath } from '../../src/elf/slink';

const PROGRAMS = ['sleep', 'cat', 'ls', 'true'];
let m: TestMount;
let progDir: string;
const objects = new Map<string, ObjectRef[]>();

beforeAll(async () => {
  progDir = tempDir('pc-mount');
  const slinked = await slinkPrograms(PROGRAMS, progDir);
  m = startMount();
  fs.mkdirSync(path.join(m.mountpoint, 'bin'));
  for (const [name, file] of slinked) {
    objects.set(name, await objectsOf(file));
    expect(sh(`cp -p '${file}' '${m.mountpoint}/bin/${name}'`).status).toBe(0);
  }
  for (const o of objects.values()) waitPublished(m.mountpoint, o);
});
afterAll(() => {
  m?.cleanup();
  fs.rmSync(progDir, { recursive: true, force: true });
});

/** Wait until `pid` is blocked in nanosleep/clock_nanosleep (x86-64 syscalls 35 and 230). */
async function waitUntilSleeping(pid: number, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!/^(35|230) /.test(fs.readFileSync(`/proc/${pid}/syscall`, 'utf8'))) {
    if (Date.now() > deadline) throw new Error(`process ${pid} never reached its sleep`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const bin = (name: string) => path.join(m.mountpoint, 'bin', name);
const objectsDir = () => path.join(m.mountpoint, '.slinky', 'objects');

test('a slinked program on the mount maps every object from /.slinky/objects and nothing from memfds', async () => {
  const child = await startAndWait([bin('sleep'), '30'], (maps) => maps.some((e) => e.path.includes('.slinky/objects/')) && maps.length > 5);
  try {
    // The loader maps objects one after another: look once sleep is in its sleep, loading done.
    await waitUntilSleeping(child.pid!);
    const maps = fileMappings(child.pid!);
    const fromObjects = new Set(maps.filter((e) => e.path.startsWith(`${objectsDir()}/`)).map((e) => path.basename(e.path)));
    expect([...fromObjects].sort()).toEqual(objects.get('sleep')!.map((o) => o.file).sort());
    expect(maps.filter((e) => e.path.startsWith('/memfd:'))).toEqual([]);
  } finally {
    await stopChild(child);
  }
});

test('once the loader runs, the stub leaves only its code mapped: its data, bss and stack are gone', async () => {
  const child = await startAndWait([bin('sleep'), '30'], (maps) => maps.some((e) => e.path.includes('.slinky/objects/')));
  try {
    await waitUntilSleeping(child.pid!);
    const own = fs
      .readFileSync(`/proc/${child.pid}/maps`, 'latin1')
      .split('\n')
      .filter((l) => l.endsWith(` ${bin('sleep')}`))
      .map((l) => l.split(' ')[1]);
    expect(own).toEqual(['r-xp']);
  } finally {
    await stopChild(child);
  }
});

test('two different slinked programs map the same libc inode, and stats count both until they exit', async () => {
  const libc = objects.get('sleep')!.find((o) => o.name === 'libc.so.6')!;
  expect(objects.get('cat')!.some((o) => o.file === libc.file)).toBe(true);
  const isLibc = (e: { path: string }) => e.path.endsWith(libc.file);
  const a = await startAndWait([bin('sleep'), '30'], (maps) => maps.some(isLibc));
  const b = await startAndWait([bin('cat')], (maps) => maps.some(isLibc));
  try {
    const inodeOf = (pid: number) => fileMappings(pid).find(isLibc)!;
    expect(inodeOf(a.pid!).ino).toBe(inodeOf(b.pid!).ino);
    expect(inodeOf(a.pid!).dev).toBe(inodeOf(b.pid!).dev);
    const s = pageStats(m.store);
    const entry = s.objects.find((o) => o.name === libc.file)!;
    expect(entry.mappings).toBe(2);
    expect(entry.sharedPages).toBeGreaterThan(0);
    expect(s.bytesShared).toBeGreaterThanOrEqual(entry.sharedPages * 4096);
    expect(s.processes).toBe(2);
  } finally {
    await stopChild(a);
    await stopChild(b);
  }
  const after = pageStats(m.store);
  expect(after.objects.find((o) => o.name === libc.file)!.mappings).toBe(0);
  expect(after.processes).toBe(0);
  expect(after.gdt.referencedEntries).toBe(0);
});

test('a slinked program started from the mount has its object files opened and closed by the FUSE binding, without the daemon\'s JavaScript', () => {
  const before = pageStats(m.store).fastPath;
  expect(before.immutable).toBeGreaterThanOrEqual(new Set([...objects.values()].flat().map((o) => o.file)).size);
  expect(spawnSync(bin('true'), [], { env: CLEAN_ENV }).status).toBe(0);
  const n = objects.get('true')!.length; // the loader (opened by the stub), the program and libc (by the loader)
  let after = pageStats(m.store).fastPath;
  const deadline = Date.now() + 5000; // RELEASE reaches the daemon after the process has gone
  while (after.releases < before.releases + n && Date.now() < deadline) {
    spawnSync('sleep', ['0.05']);
    after = pageStats(m.store).fastPath;
  }
  expect([after.opens - before.opens, after.flushes - before.flushes, after.releases - before.releases]).toEqual([n, 0, n]);
});

/** The paths a program passes to open and openat, as strace sees them. */
function filesOpened(file: string): { status: number | null; paths: string[] } {
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=open,openat', '-e', 'signal=none', file], { encoding: 'utf8', env: CLEAN_ENV });
  return { status: r.status, paths: [...r.stderr.matchAll(/open(?:at)?\((?:[^,"]+, )?"([^"]*)"/g)].map((x) => x[1]) };
}

test('a slinked program on the mount never opens its own file: its stub reads the mailbox', () => {
  const { status, paths } = filesOpened(bin('true'));
  expect(status).toBe(0);
  expect(paths).not.toContain('/proc/self/exe');
  expect(paths).toContain(objectsDir());
});

test('with an empty mailbox the stub reads the manifest from its own file and still maps objects from the mount', () => {
  const bytes = fs.readFileSync(bin('true'));
  bytes.writeUInt32LE(0, mailboxOffset(fs.readFileSync(stubPath())) + 8); // version 0: nothing in it
  fs.writeFileSync(bin('true-no-mailbox'), bytes, { mode: 0o755 });
  const { status, paths } = filesOpened(bin('true-no-mailbox'));
  expect(status).toBe(0);
  expect(paths).toContain('/proc/self/exe');
  expect(paths).toContain(objectsDir());
});

test('slinked programs from the mount print what the dynamic originals print', () => {
  const run = (file: string, args: string[]) => spawnSync(file, args, { encoding: 'utf8', env: CLEAN_ENV, cwd: '/' });
  const dyn = run('/usr/bin/ls', ['-la', '/usr/share/doc/coreutils']);
  const sl = run(bin('ls'), ['-la', '/usr/share/doc/coreutils']);
  expect({ status: sl.status, stdout: sl.stdout, stderr: sl.stderr }).toEqual({ status: dyn.status, stdout: dyn.stdout, stderr: dyn.stderr });
  expect(run(bin('true'), []).status).toBe(0);
});

test('another user runs slinked programs from the mount as they run the dynamic originals', () => {
  // The kernel checks a non-owner's permissions against the ACLs of the program and each object.
  fs.chmodSync(m.dir, 0o755);
  const run = (file: string) =>
    spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', file, '-la', '/usr/share/doc/coreutils'], { encoding: 'utf8', env: CLEAN_ENV, cwd: '/' });
  const dyn = run('/usr/bin/ls');
  const sl = run(bin('ls'));
  expect(dyn.status).toBe(0);
  expect({ status: sl.status, stdout: sl.stdout, stderr: sl.stderr }).toEqual({ status: dyn.status, stdout: dyn.stdout, stderr: dyn.stderr });
});

test('a copy of the slinked file outside the mount runs standalone, from memfd copies', async () => {
  const copy = path.join(progDir, 'sleep-copy');
  fs.copyFileSync(bin('sleep'), copy);
  const child = await startAndWait([copy, '30'], (maps) => maps.some((e) => e.path.startsWith('/memfd:libc.so.6')));
  try {
    const maps = fileMappings(child.pid!);
    expect(maps.filter((e) => e.path.includes('.slinky'))).toEqual([]);
  } finally {
    await stopChild(child);
  }
});

test('published objects are read-only files owned by root, and nothing under /.slinky can be changed through the mount', () => {
  const libc = objects.get('sleep')!.find((o) => o.name === 'libc.so.6')!;
  const obj = path.join(objectsDir(), libc.file);
  expect(sh(`stat -c '%a %u %g' '${obj}'`).stdout.trim()).toBe('444 0 0');
  const attempts: Record<string, string> = {
    'write as root': `echo x >> '${obj}'`,
    'truncate': `truncate -s 0 '${obj}'`,
    'punch a hole': `fallocate -p -o 0 -l 4096 '${obj}'`,
    'allocate': `fallocate -l 100000000 '${obj}'`,
    'set an attribute': `python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.x", b"1")' '${obj}'`,
    'set an ACL': `setfacl -m u:65534:rwx '${obj}'`,
    chmod: `chmod 644 '${obj}'`,
    chown: `chown 65534 '${obj}'`,
    unlink: `rm -f '${obj}'`,
    'rename out': `mv '${obj}' '${m.mountpoint}/stolen'`,
    'rename in': `echo evil > '${m.mountpoint}/evil' && mv '${m.mountpoint}/evil' '${objectsDir()}/${libc.file}'`,
    'create inside': `touch '${objectsDir()}/new'`,
    'hard link out': `ln '${obj}' '${m.mountpoint}/link'`,
    'move the tree': `mv '${m.mountpoint}/.slinky' '${m.mountpoint}/moved'`,
    'remove the tree': `rm -rf '${m.mountpoint}/.slinky'`,
  };
  const results = Object.fromEntries(Object.entries(attempts).map(([k, cmd]) => [k, sh(cmd).status !== 0]));
  expect(results).toEqual(Object.fromEntries(Object.keys(attempts).map((k) => [k, true])));
  expect(sh(`sha256sum '${obj}'`).stdout.split(' ')[0]).toBe(libc.file.slice('sha256-'.length));
  expect(fs.existsSync(path.join(m.mountpoint, 'stolen'))).toBe(false);
  expect(sh(`setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo x >> '${obj}'"`).status).not.toBe(0);
});

test('a slinky trailer on garbage is counted as malformed and the daemon keeps serving', () => {
  const before = pageStats(m.store).published.malformed;
  fs.writeFileSync(path.join(m.mountpoint, 'fake'), Buffer.concat([Buffer.alloc(5000, 1), Buffer.from('SLINKYTR'), Buffer.alloc(24, 0xff)]));
  const deadline = Date.now() + 10000;
  while (pageStats(m.store).published.malformed === before && Date.now() < deadline) spawnSync('sleep', ['0.1']);
  expect(pageStats(m.store).published.malformed).toBe(before + 1);
  expect(spawnSync(bin('true')).status).toBe(0);
});

test('stats --pages of a store without a running daemon is one line and exit status 3', () => {
  const unmounted = startMount();
  try {
    unmounted.unmount();
    const r = slinkyfs(['stats', '--store', unmounted.store, '--pages']);
    expect([r.status, r.stdout, r.stderr]).toEqual([3, '', `slinkyfs: no running slinkyfs daemon serves ${unmounted.store} (page cache statistics live in the daemon)\n`]);
  } finally {
    unmounted.cleanup();
  }
});
