// Copying real executables into a mount: bytes come back identical, programs run from the
// mount, and a second copy costs (almost) nothing because every chunk is already stored.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startMount, type TestMount } from '../helpers/mount';
import { realExecutables } from '../helpers/corpus';
import { sh, slinkyfs } from '../helpers/cli';

const sha = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');

describe('copying 100 real executables into a mount', () => {
  let m: TestMount;
  const files = realExecutables(100);

  beforeAll(() => {
    m = startMount();
    fs.mkdirSync(path.join(m.mountpoint, 'bin'));
    const r = sh(`cp ${files.join(' ')} ${path.join(m.mountpoint, 'bin')}/`);
    if (r.status !== 0) throw new Error(r.stderr);
  });
  afterAll(() => m?.cleanup());

  test('the corpus has 100 programs', () => {
    expect(files).toHaveLength(100);
  });

  test('every copy has the sha256 of its original', () => {
    const mismatched = files.filter((f) => sha(f) !== sha(path.join(m.mountpoint, 'bin', path.basename(f))));
    expect(mismatched).toEqual([]);
  });

  test('programs run from the mount with the output of the originals', () => {
    const cases: Array<[string, string[]]> = [
      ['ls', ['-la', '/etc/hostname']],
      ['cat', ['/etc/os-release']],
      ['sort', ['/etc/passwd']],
      ['sha256sum', ['/etc/os-release']],
      ['grep', ['-c', 'root', '/etc/passwd']],
      ['sed', ['-n', '2p', '/etc/passwd']],
      ['date', ['-d', '@0', '-u']],
    ];
    fs.mkdirSync(path.join(m.mountpoint, 'run'), { recursive: true });
    for (const [prog] of cases) fs.copyFileSync(`/usr/bin/${prog}`, path.join(m.mountpoint, 'run', prog));
    for (const [prog, args] of cases) {
      fs.chmodSync(path.join(m.mountpoint, 'run', prog), 0o755);
      const want = spawnSync(`/usr/bin/${prog}`, args, { encoding: 'utf8' });
      const got = spawnSync(path.join(m.mountpoint, 'run', prog), args, { encoding: 'utf8' });
      expect({ prog, out: got.stdout, status: got.status }).toEqual({ prog, out: want.stdout, status: want.status });
    }
  });

  test('a second copy under another directory grows stored bytes by less than 1%', () => {
    const before = m.stats();
    fs.mkdirSync(path.join(m.mountpoint, 'again'));
    const r = sh(`cp ${files.join(' ')} ${path.join(m.mountpoint, 'again')}/`);
    expect(r.status).toBe(0);
    const after = m.stats();
    expect(after.files).toBe(before.files + 100);
    expect(after.logicalBytes).toBe(before.logicalBytes + files.reduce((n, f) => n + fs.statSync(f).size, 0));
    expect(after.storedBytes).toBeLessThan(before.storedBytes * 1.01);
    expect(after.uniqueBytes).toBe(before.uniqueBytes);
  });

  test('stats --by-dir gives each top-level directory what its files need on their own', () => {
    const r = slinkyfs(['stats', '--store', m.store, '--json', '--by-dir']);
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout).byDir as Array<{ dir: string; files: number; logicalBytes: number; uniqueBytes: number }>;
    const bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
    const bin = rows.find((d) => d.dir === '/bin')!;
    const again = rows.find((d) => d.dir === '/again')!;
    expect([bin.files, bin.logicalBytes, again.files, again.logicalBytes]).toEqual([100, bytes, 100, bytes]);
    // The same files: the same unique chunks, each directory counted on its own (the store as a
    // whole also holds /run, programs copied by the test above).
    expect(again.uniqueBytes).toBe(bin.uniqueBytes);
    expect(bin.uniqueBytes).toBeGreaterThan(0);
    expect(bin.uniqueBytes).toBeLessThan(m.stats().uniqueBytes);
    expect(rows.map((d) => d.dir).sort()).toEqual(['/again', '/bin', '/run']);
  });
});
