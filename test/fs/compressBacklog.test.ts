// How much raw data a mount lets wait for the idle-time compactor (mount --compress-backlog-mib):
// with no room, a copy's chunks are compressed by the commits themselves.
import fs from 'node:fs';
import path from 'node:path';
import { sh } from '../helpers/cli';
import { useMount } from '../helpers/mount';

const t = useMount(['--compress-backlog-mib', '0']);

test('with no backlog a copied program is stored compressed by the time cp returns', () => {
  expect(sh(`cp /usr/bin/ls /usr/bin/sort ${t.mp}/`).status).toBe(0);
  const s = t.m.stats();
  expect(s.pendingCompression).toBe(0);
  expect(s.storedBytes).toBeLessThan(s.uniqueBytes * 0.7);
  for (const p of ['ls', 'sort']) expect(fs.readFileSync(path.join(t.mp, p)).equals(fs.readFileSync(`/usr/bin/${p}`))).toBe(true);
});
