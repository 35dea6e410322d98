// What one LMDB commit costs through lmdb-js, the way the daemon commits (an async transaction
// holding one child transaction per change, the event loop kept polling as the FUSE loop does
// after a request): a transaction that writes nothing, and ones that store 1 or 6 new chunks of
// a small file (chunk bytes, reference, compression-queue entry, extent). This is the floor of
// every acknowledged change (create, chmod, a small file's close), so it explains where the
// small-file copy rate of `bench/ingest.ts` ends. Prints microseconds per commit; asserts nothing.
//
//   make build && node dist/bench/commitLatency.js [commits=500]
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';

async function main(): Promise<void> {
  const commits = Number(process.argv[2] ?? 500);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-commit-'));
  const env = open<Buffer, Buffer>({ path: dir, noSync: true, encoding: 'binary', keyEncoding: 'binary', cache: false, maxDbs: 8 });
  const db = (name: string) => env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary', cache: false });
  const chunks = db('chunks');
  const refs = db('chunkrefs');
  const queue = db('compressq');
  const extents = db('extents');
  // The daemon's loop polls for a moment after each request (fusell.c spin): do the same, or
  // every commit would also pay for waking this thread.
  let polling = true;
  const poll = () => {
    if (polling) setImmediate(poll);
  };
  poll();
  const rows: string[][] = [];
  try {
    for (const perCommit of [0, 1, 6]) {
      const work = Array.from({ length: commits }, () =>
        Array.from({ length: perCommit }, () => ({ digest: crypto.randomBytes(33), bytes: crypto.randomBytes(8192) })),
      );
      const t0 = process.hrtime.bigint();
      for (const change of work) {
        await env.transaction(() =>
          env.childTransaction(() => {
            for (const [i, c] of change.entries()) {
              chunks.put(c.digest, c.bytes);
              refs.put(c.digest, Buffer.alloc(20));
              queue.put(c.digest, Buffer.alloc(0));
              extents.put(Buffer.concat([c.digest.subarray(0, 8), Buffer.from([i])]), Buffer.alloc(40));
            }
          }),
        );
      }
      const us = Number(process.hrtime.bigint() - t0) / 1e3 / commits;
      rows.push([perCommit === 0 ? 'writes nothing' : `stores ${perCommit} new 8 KiB chunk${perCommit > 1 ? 's' : ''}`, us.toFixed(0)]);
    }
  } finally {
    polling = false;
    await env.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`lmdb-js commit latency, ${commits} serial commits each, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}`);
  const head = ['commit', 'µs per commit'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i])).join('  '));
}

main().catch((err) => {
  console.error(`commitLatency: ${(err as Error).message}`);
  process.exit(1);
});
