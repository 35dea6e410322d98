// Concurrent writers and readers lose nothing: four parallel copies of real executables into the
// mount while another process keeps reading files back.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startMount, type TestMount } from '../helpers/mount';
import { realExecutables } from '../helpers/corpus';
import { slinkyfs } from '../helpers/cli';

const sha = (p: string) => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
let m: TestMount;
afterAll(() => m?.cleanup());

test('four parallel copies and a reader: every file intact, store verified', async () => {
  m = startMount();
  const files = realExecutables(160);
  const jobs = [0, 1, 2, 3].map((j) => files.filter((_, i) => i % 4 === j));
  const run = (cmd: string) =>
    new Promise<number>((resolve) => spawn('bash', ['-c', cmd], { stdio: 'ignore' }).on('exit', (c) => resolve(c ?? -1)));
  // The same files land in two trees from different jobs, so writers race on shared chunks too.
  const writers = jobs.map((list, j) =>
    run(`mkdir -p '${m.mountpoint}/a${j}' '${m.mountpoint}/b${3 - j}' && cp ${list.join(' ')} '${m.mountpoint}/a${j}/' && cp ${list.join(' ')} '${m.mountpoint}/b${3 - j}/'`),
  );
  const reader = run(`for i in $(seq 1 30); do cat '${m.mountpoint}'/a*/* > /dev/null 2>&1; done; true`);
  expect(await Promise.all(writers)).toEqual([0, 0, 0, 0]);
  expect(await reader).toBe(0);
  for (let j = 0; j < 4; j++) {
    for (const f of jobs[j]) {
      expect(sha(path.join(m.mountpoint, `a${j}`, path.basename(f)))).toBe(sha(f));
      expect(sha(path.join(m.mountpoint, `b${3 - j}`, path.basename(f)))).toBe(sha(f));
    }
  }
  const v = slinkyfs(['verify', '--store', m.store]);
  expect(v.stdout).toMatch(/no damage/);
  expect(m.stats().files).toBe(files.length * 2);
});
