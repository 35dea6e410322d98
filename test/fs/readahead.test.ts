// The mount's read-ahead window (root only): a wide default for sequential reads, --readahead-kib
// sets another, and what comes back is the file's bytes either way.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startMount, type TestMount } from '../helpers/mount';
import { sh } from '../helpers/cli';
import { mountDevice, READAHEAD_KIB } from '../../src/fs/readahead';

let m: TestMount;
beforeAll(() => {
  m = startMount();
});
afterAll(() => m?.cleanup());

const asRoot = process.getuid?.() === 0 ? test : test.skip;

asRoot('a mount by root has the default read-ahead window', async () => {
  const dev = await mountDevice(m.mountpoint);
  expect(dev).toMatch(/^0:\d+$/);
  expect(fs.readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim()).toBe(String(READAHEAD_KIB));
});

asRoot('mount --readahead-kib sets another window', async () => {
  const other = startMount(['--readahead-kib', '128']);
  try {
    const dev = await mountDevice(other.mountpoint);
    expect(fs.readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim()).toBe('128');
  } finally {
    other.cleanup();
  }
});

test('a 40 MiB file of real libraries reads back identical after the page cache is dropped', () => {
  const libs = fs
    .readdirSync('/usr/lib/x86_64-linux-gnu')
    .map((n) => path.join('/usr/lib/x86_64-linux-gnu', n))
    .filter((p) => fs.lstatSync(p).isFile());
  const src = path.join(m.dir, 'big.bin');
  expect(sh(`cat ${libs.join(' ')} 2>/dev/null | head -c ${40 << 20} > ${src}`).status).toBe(0);
  expect(sh(`cp ${src} ${m.mountpoint}/big.bin`).status).toBe(0);
  // Drop only this file's cached pages: the read goes through the daemon again.
  expect(sh(`dd if=${m.mountpoint}/big.bin iflag=nocache count=0 status=none`).status).toBe(0);
  const sha = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  expect(sha(path.join(m.mountpoint, 'big.bin'))).toBe(sha(src));
});
