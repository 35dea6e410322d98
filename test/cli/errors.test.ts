// Bad input gets one clear line on stderr and a non-zero exit: no stack trace, no hang.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, sh, slinkyfs } from '../helpers/cli';
import { startMount } from '../helpers/mount';

const oneLine = (s: string) => s.trim().split('\n').length === 1 && !/\n\s+at /.test(s);

test('--help lists the subcommands', () => {
  const r = slinkyfs(['--help']);
  expect(r.status).toBe(0);
  for (const c of ['mount', 'umount', 'stats', 'verify', 'gc']) expect(r.stdout).toMatch(new RegExp(`slinkyfs ${c}`));
});

test('--version prints the package version', () => {
  const r = slinkyfs(['--version']);
  expect(r.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8')).version);
});

test('an unknown command is one line and exit 2', () => {
  const r = slinkyfs(['frobnicate']);
  expect(r.status).toBe(2);
  expect(oneLine(r.stderr)).toBe(true);
});

test('mount with a negative --spin-us is one line and exit 2', () => {
  const r = slinkyfs(['mount', os.tmpdir(), '--spin-us', '-1']);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: --spin-us wants a whole number of microseconds from 0 to 100000, not -1');
});

test('mount with a fractional --flush-delay-ms is one line and exit 2', () => {
  const r = slinkyfs(['mount', os.tmpdir(), '--flush-delay-ms', '2.5']);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: --flush-delay-ms wants a whole number of milliseconds from 0 to 60000, not 2.5');
});

test('mount on a missing mountpoint is one line and non-zero', () => {
  const r = slinkyfs(['mount', '/nonexistent/slinky-mnt', '--store', os.tmpdir() + '/x-never']);
  expect(r.status).not.toBe(0);
  expect(r.stderr.trim()).toBe('slinkyfs: mountpoint /nonexistent/slinky-mnt does not exist');
});

test('stats of a directory that is no store is one line and non-zero', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-nostore-'));
  const r = slinkyfs(['stats', '--store', dir]);
  fs.rmSync(dir, { recursive: true });
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: no slinkyfs store at ${dir}`);
});

test('a store held by a running daemon cannot be mounted twice or gc-ed', () => {
  const m = startMount();
  try {
    const other = path.join(m.dir, 'other');
    fs.mkdirSync(other);
    const r = slinkyfs(['mount', other, '--store', m.store]);
    expect(r.status).toBe(3);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/in use by slinkyfs daemon pid \d+/);
    const g = slinkyfs(['gc', '--store', m.store]);
    expect(g.status).toBe(3);
    expect(oneLine(g.stderr)).toBe(true);
  } finally {
    m.cleanup();
  }
});

test('mounting over a live slinkyfs mount is refused', () => {
  const m = startMount();
  try {
    const r = slinkyfs(['mount', m.mountpoint, '--store', path.join(m.dir, 'store2')]);
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toMatch(/already mounted by a running slinkyfs daemon/);
  } finally {
    m.cleanup();
  }
});

test('umount of something that is not a slinkyfs mount is one line and non-zero', () => {
  const r = slinkyfs(['umount', os.tmpdir()]);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${os.tmpdir()} is not a slinkyfs mount`);
});

test('stats prints the documented JSON keys', () => {
  const m = startMount();
  try {
    fs.writeFileSync(path.join(m.mountpoint, 'f'), 'abc');
    const s = m.stats();
    expect(s).toMatchObject({ files: 1, logicalBytes: 3, uniqueBytes: 3, chunks: 1 });
    expect(typeof s.storedBytes).toBe('number');
  } finally {
    m.cleanup();
  }
});

describe('output that cannot be written', () => {
  let m: ReturnType<typeof startMount>;
  beforeAll(() => {
    m = startMount();
    m.unmount();
  });
  afterAll(() => m?.cleanup());

  test('a reader that goes away ends the output quietly, with the status of a broken pipe', () => {
    // The reader closes the pipe before slinkyfs writes: its first write fails with EPIPE.
    const r = sh(`'${BIN}' stats --store '${m.store}' 2>'${m.dir}/err' | { exec 0<&-; sleep 1; }; echo \${PIPESTATUS[0]}`);
    expect(r.stdout.trim()).toBe('141');
    expect(fs.readFileSync(path.join(m.dir, 'err'), 'utf8')).toBe('');
  });

  test('a full disk under the output is one line and exit 3', () => {
    const r = sh(`'${BIN}' stats --store '${m.store}' > /dev/full`);
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toBe('slinkyfs: cannot write the output: ENOSPC: no space left on device, write');
  });
});
