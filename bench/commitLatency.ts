// What one LMDB commit costs through lmdb-js, side by side the two ways the daemon can commit:
//   - on the event loop (what Store.txn does by default): transactionSync, one child transaction
//     per change, the commit's writes done on this thread;
//   - on lmdb-js's writer thread (what Store.txn does with --sync-every-commit, and did always
//     before): an async transaction holding one child transaction, the event loop kept polling
//     as the FUSE loop does after a request.
// For a transaction that writes nothing, and ones that store 1 or 6 new chunks of a small file
// (chunk bytes, reference, compression-queue entry, extent). This is the floor of every
// acknowledged change (create, chmod, a small file's close), so it explains where the
// small-file copy rate of `bench/ingest.ts` ends. Prints microseconds per commit; asserts nothing.
//
//   make build && node dist/bench/commitLatency.js [commits=500]
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { machine } from './slinkedMount';

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
      const work = () =>
        Array.from({ length: commits }, () =>
          Array.from({ length: perCommit }, () => ({ digest: crypto.randomBytes(33), bytes: crypto.randomBytes(8192) })),
        );
      const change = (c: ReturnType<typeof work>[number]) => () => {
        for (const [i, x] of c.entries()) {
          chunks.put(x.digest, x.bytes);
          refs.put(x.digest, Buffer.alloc(20));
          queue.put(x.digest, Buffer.alloc(0));
          extents.put(Buffer.concat([x.digest.subarray(0, 8), Buffer.from([i])]), Buffer.alloc(40));
        }
      };
      // Alternate the two ways in rounds, so that load from other processes falls on both alike.
      let onLoop = 0;
      let onWriter = 0;
      for (let round = 0; round < 4; round++) {
        const a = work();
        let t0 = process.hrtime.bigint();
        for (const c of a) {
          await new Promise((resolve) => setImmediate(resolve)); // Store.txn commits in an immediate
          env.transactionSync(() => env.childTransaction(change(c)));
        }
        onLoop += Number(process.hrtime.bigint() - t0);
        const b = work();
        t0 = process.hrtime.bigint();
        for (const c of b) await env.transaction(() => env.childTransaction(change(c)));
        onWriter += Number(process.hrtime.bigint() - t0);
      }
      const us = (ns: number) => (ns / 1e3 / (4 * commits)).toFixed(0);
      rows.push([perCommit === 0 ? 'writes nothing' : `stores ${perCommit} new 8 KiB chunk${perCommit > 1 ? 's' : ''}`, us(onLoop), us(onWriter), (onWriter / onLoop).toFixed(1) + 'x']);
    }
  } finally {
    polling = false;
    await env.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`lmdb-js commit latency, 4 x ${commits} serial commits each way, ${machine()}`);
  const head = ['commit', 'µs on the event loop', 'µs on the writer thread', 'writer/loop'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i])).join('  '));
}

main().catch((err) => {
  console.error(`commitLatency: ${(err as Error).message}`);
  process.exit(1);
});
