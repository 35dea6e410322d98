// Random namespace operations applied to the mount and to an ext4 directory side by side
// (test/helpers/nsx.ts): same outcome, same errno, same tree, and the same tree again after a
// remount. Replay a seed by hand: NSX_SEEDS=9 NSX_OPS=3000 NSX_TRACE=1 npx jest test/fs/namespace.
import fs from 'node:fs';
import path from 'node:path';
import { startMount, type TestMount } from '../helpers/mount';
import { compareTrees, runNsx } from '../helpers/nsx';

const seeds = (process.env.NSX_SEEDS ?? '1,2,3,4').split(',').map(Number);
const ops = Number(process.env.NSX_OPS ?? 600);

let m: TestMount;
beforeAll(() => {
  m = startMount();
});
afterAll(() => m?.cleanup());

test.each(seeds)('seed %i: the mount and ext4 agree on every outcome and on the tree, before and after a remount', (seed) => {
  const mine = path.join(m.mountpoint, `nsx-${seed}`);
  const reference = path.join(m.dir, `reference-${seed}`);
  fs.mkdirSync(mine);
  fs.mkdirSync(reference);
  const trace = process.env.NSX_TRACE ? (line: string) => process.stderr.write(`${seed}: ${line}\n`) : undefined;
  const counts = runNsx([mine, reference], { seed, ops, trace });
  // the sequence exercised both successes and refusals of the interesting kinds
  for (const kind of ['rename ok', 'rename ENOTEMPTY', 'rename EINVAL', 'link ok', 'rmdir ENOTEMPTY', 'unlink EISDIR']) {
    expect([kind, counts[kind] ?? 0]).not.toEqual([kind, 0]);
  }
  m.unmount();
  m.remount();
  compareTrees([mine, reference], 'after remount');
});
