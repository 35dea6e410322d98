// Faults lose nothing that was acknowledged: a daemon killed with -9, a store at its size limit,
// a disk that fills up. Each test uses its own store and mount and removes them afterwards.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { startMount, type TestMount } from '../helpers/mount';
import { realExecutables } from '../helpers/corpus';
import { sh, slinkyfs } from '../helpers/cli';
import { randomBytes } from '../helpers/prng';

const sha = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
const mounts: TestMount[] = [];
afterEach(() => {
  while (mounts.length) mounts.pop()!.cleanup();
});

test('persistence: files survive unmount and mount', () => {
  const m = startMount();
  mounts.push(m);
  const data = randomBytes(11, 3 << 20);
  fs.writeFileSync(path.join(m.mountpoint, 'keep'), data);
  fs.mkdirSync(path.join(m.mountpoint, 'dir'));
  fs.symlinkSync('../keep', path.join(m.mountpoint, 'dir/link'));
  m.unmount();
  expect(fs.existsSync(path.join(m.mountpoint, 'keep'))).toBe(false);
  m.remount();
  expect(fs.readFileSync(path.join(m.mountpoint, 'dir/link')).equals(data)).toBe(true);
});

test('kill -9 during a copy: closed files are intact, the stale mount is cleared, verify is clean', async () => {
  const m = startMount();
  mounts.push(m);
  const files = realExecutables(40);
  fs.mkdirSync(path.join(m.mountpoint, 'done'));
  expect(sh(`cp ${files.join(' ')} '${m.mountpoint}/done/' && sync`).status).toBe(0);
  // A long copy in the background, killed while it runs.
  fs.mkdirSync(path.join(m.mountpoint, 'busy'));
  const big = randomBytes(12, 48 << 20);
  const src = path.join(m.dir, 'big.bin');
  fs.writeFileSync(src, big);
  const cp = spawn('bash', ['-c', `for i in 1 2 3 4 5 6 7 8; do cp '${src}' '${m.mountpoint}/busy/big'$i || exit 1; done`]);
  await new Promise((r) => setTimeout(r, 700));
  m.kill9();
  await new Promise((r) => cp.on('exit', r));
  const stale = spawnSync('stat', [m.mountpoint], { encoding: 'utf8' });
  expect(stale.stderr).toMatch(/Transport endpoint is not connected/);
  m.remount();
  for (const f of files) expect(sha(path.join(m.mountpoint, 'done', path.basename(f)))).toBe(sha(f));
  // Whatever of busy/ exists is either complete or was never acknowledged; the store is consistent.
  const v = slinkyfs(['verify', '--store', m.store]);
  expect(v.stdout).toMatch(/no damage/);
  expect(v.status).toBe(0);
});

test('a store at its size limit: the writer gets ENOSPC, earlier files stay, verify is clean', () => {
  const m = startMount(['--max-size', '6M']);
  mounts.push(m);
  const small = randomBytes(13, 100000);
  fs.writeFileSync(path.join(m.mountpoint, 'small'), small);
  const r = sh(`head -c 50000000 /dev/urandom > '${m.mountpoint}/huge'`);
  expect(r.status).not.toBe(0);
  expect(r.stderr).toMatch(/No space left on device/);
  expect(fs.readFileSync(path.join(m.mountpoint, 'small')).equals(small)).toBe(true);
  expect(fs.readFileSync(path.join(m.store, 'slinkyfs.log'), 'utf8')).toMatch(/store is full/);
  const v = slinkyfs(['verify', '--store', m.store]);
  expect(v.status).toBe(0);
});

test('a full disk under the store: ENOSPC for the writer, the daemon keeps serving', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-full-'));
  expect(sh(`mount -t tmpfs -o size=24m tmpfs '${dir}'`).status).toBe(0);
  try {
    const inner = path.join(dir, 'inner');
    fs.mkdirSync(inner);
    const m = startMount([], inner);
    try {
      const small = randomBytes(14, 200000);
      fs.writeFileSync(path.join(m.mountpoint, 'small'), small);
      const r = sh(`head -c 80000000 /dev/urandom > '${m.mountpoint}/huge'`);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/No space left on device/);
      expect(fs.readFileSync(path.join(m.mountpoint, 'small')).equals(small)).toBe(true);
      fs.rmSync(path.join(m.mountpoint, 'huge'), { force: true });
      fs.writeFileSync(path.join(m.mountpoint, 'after'), 'still writable');
      expect(fs.readFileSync(path.join(m.mountpoint, 'after'), 'utf8')).toBe('still writable');
    } finally {
      m.cleanup();
    }
  } finally {
    sh(`umount -l '${dir}'`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('kill -9 right after many concurrent creates: every create that was answered is there after remount', async () => {
  const m = startMount();
  mounts.push(m);
  const mp = m.mountpoint;
  // Concurrent requests share LMDB transactions (group commit); each answer still means committed.
  const names = Array.from({ length: 300 }, (_, i) => `n${i}`);
  await Promise.all(
    names.map((n, i) =>
      i % 3 === 0
        ? fs.promises.writeFile(path.join(mp, n), `file ${n}`)
        : i % 3 === 1
          ? fs.promises.mkdir(path.join(mp, n))
          : fs.promises.symlink(`target-${n}`, path.join(mp, n)),
    ),
  );
  m.kill9();
  m.remount();
  for (const [i, n] of names.entries()) {
    const p = path.join(mp, n);
    if (i % 3 === 0) expect(fs.readFileSync(p, 'utf8')).toBe(`file ${n}`);
    else if (i % 3 === 1) expect(fs.statSync(p).isDirectory()).toBe(true);
    else expect(fs.readlinkSync(p)).toBe(`target-${n}`);
  }
  const v = slinkyfs(['verify', '--store', m.store]);
  expect(v.status).toBe(0);
});
