// Random operation sequences on one file through a real mount, checked against a model after
// every read and after close, unmount and kill -9 (test/helpers/fsx.ts). A failing seed can be
// replayed by hand: FSX_SEEDS=17 FSX_OPS=2000 FSX_TRACE=1 npx jest test/fs/exerciser.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { startMount, type TestMount } from '../helpers/mount';
import { sh, slinkyfs } from '../helpers/cli';
import { runFsx } from '../helpers/fsx';

const seeds = (process.env.FSX_SEEDS ?? '1,2,3').split(',').map(Number);
const ops = Number(process.env.FSX_OPS ?? 150);
const MAX_SIZE = 24 << 20;

let m: TestMount;
beforeAll(() => {
  m = startMount();
});
afterAll(() => m?.cleanup());

/** The file's SHA-256 as another process reads it. */
const shaOf = (p: string) => sh(`sha256sum '${p}'`).stdout.split(' ')[0];
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

test.each(seeds)('seed %i: every read matches the model, and the closed file survives unmount and kill -9', (seed) => {
  const file = path.join(m.mountpoint, `fsx-${seed}`);
  const trace = process.env.FSX_TRACE ? (line: string) => process.stderr.write(`${seed}: ${line}\n`) : undefined;
  const { expected, counts } = runFsx(file, { seed, ops, maxSize: MAX_SIZE, trace });
  // the sequence did what it is for: large and small writes, truncates, holes, reopens
  for (const name of ['write', 'stream', 'read', 'truncate', 'punch', 'reopen']) expect(counts[name]).toBeGreaterThan(0);
  const want = sha(expected);
  expect(shaOf(file)).toBe(want);
  m.unmount();
  m.remount();
  expect(shaOf(file)).toBe(want);
  // closed before the kill: intact after it
  m.kill9();
  m.remount();
  expect(shaOf(file)).toBe(want);
  expect(fs.statSync(file).size).toBe(expected.length);
});

test('the store verifies clean after the sequences', () => {
  m.unmount();
  const r = slinkyfs(['verify', '--store', m.store]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  m.remount();
});
