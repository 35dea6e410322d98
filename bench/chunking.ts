// Ingest hot path on one core, measured side by side in one run on real executables from
// /usr/bin: the JS reference chunker, the native cut finder, native cuts + SHA-256 digests
// (chunkBuffer, node:crypto per chunk), cuts and digests in one C pass on a pool thread
// (chunkAndHash: what a commit runs), SHA-256 alone, zstd level 3 per chunk and decoding. Each figure is the best of
// several passes over the same bytes; ratios are against the 300 MB/s chunk+hash target and
// against the native cut finder.
//
//   make build && node dist/bench/chunking.js [corpusMiB=64] [passes=5]
import { readdirSync, readFileSync, lstatSync } from 'node:fs';
import { cpus } from 'node:os';
import { createHash } from 'node:crypto';
import { chunkBuffer, chunkerImplementation, cutPoints, LBFS_PARAMS } from '../src/chunking/chunker';
import { compress, decompress } from '../src/chunking/compress';
import { nativeStatus, nativeAddon } from '../src/chunking/native';
import { cutsJs, rabinTables } from '../src/chunking/rabin';
import { chunkAndHash } from '../src/chunking/chunkHash';

const TARGET_MBPS = 300;

function corpus(limit: number): Buffer[] {
  // Name order, not size order, so the sample mixes small tools and large programs.
  const out: Buffer[] = [];
  let total = 0;
  for (const name of readdirSync('/usr/bin').sort()) {
    const p = `/usr/bin/${name}`;
    const st = lstatSync(p);
    if (!st.isFile() || st.size === 0) continue;
    const b = readFileSync(p);
    out.push(b.subarray(0, Math.min(b.length, limit - total)));
    total += out[out.length - 1].length;
    if (total >= limit) break;
  }
  return out;
}

/** Best throughput in MB/s (10^6 bytes) of `passes` runs of fn over `bytes` bytes. */
function measure(bytes: number, passes: number, fn: () => unknown): number {
  let best = Infinity;
  for (let i = 0; i < passes; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    const ns = Number(process.hrtime.bigint() - t0);
    best = Math.min(best, ns);
  }
  return bytes / best * 1e3;
}

async function measureAsync(bytes: number, passes: number, fn: () => Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < passes; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0));
  }
  return bytes / best * 1e3;
}

async function main(): Promise<void> {
  const mib = Number(process.argv[2] ?? 64);
  const passes = Number(process.argv[3] ?? 5);
  if (!(mib > 0) || !(passes >= 1)) {
    console.error('usage: node dist/bench/chunking.js [corpusMiB>0] [passes>=1]');
    process.exit(2);
  }
  if (!nativeAddon()) {
    console.error(`bench/chunking: ${(nativeStatus() as { reason: string }).reason}`);
    process.exit(1);
  }
  const files = corpus(mib << 20);
  const bytes = files.reduce((s, f) => s + f.length, 0);
  const tables = rabinTables(LBFS_PARAMS);

  // Cuts once up front: the per-chunk rows (hash, zstd) work on the same chunks ingest would.
  const chunks: Buffer[] = [];
  for (const f of files) {
    let prev = 0;
    for (const c of cutPoints(f)) chunks.push(f.subarray(prev, (prev = c)));
  }
  // Same answer from both implementations, or the comparison is meaningless.
  for (const f of files) {
    if (cutsJs(f, 0, f.length, true, tables).join() !== cutPoints(f).join()) throw new Error('JS and native cuts differ');
  }
  const compressed = chunks.map((c) => compress(c, 3));
  // Stored size as encodeChunk decides it: zstd when smaller, else raw.
  const zBytes = compressed.reduce((s, z, i) => s + Math.min(z.length, chunks[i].length), 0);

  const rows: [string, number][] = [];
  rows.push(['JS chunker (rabin.ts)', measure(bytes, passes, () => files.forEach((f) => cutsJs(f, 0, f.length, true, tables)))]);
  rows.push(['native chunker', measure(bytes, passes, () => files.forEach((f) => cutPoints(f)))]);
  rows.push(['native chunker + SHA-256 (chunkBuffer)', measure(bytes, passes, () => files.forEach((f) => chunkBuffer(f)))]);
  // The commit path: cuts and digests of a whole window in one C pass on a pool thread. One file
  // at a time, awaited, so it is one core's work like the other rows; it includes one hand-off
  // to a pool thread and back per file (most files here are small), which the rows above lack.
  const oneFileAtATime = async () => {
    for (const f of files) await chunkAndHash({ data: f, fileBase: 0, start: 0, isFinal: true, stopFrom: Infinity, stops: new Float64Array(0) }, LBFS_PARAMS);
  };
  rows.push(['native cuts + SHA-256 in one C pass (chunkAndHash)', await measureAsync(bytes, passes, oneFileAtATime)]);
  rows.push(['SHA-256 per chunk alone (node:crypto)', measure(bytes, passes, () => chunks.forEach((c) => createHash('sha256').update(c).digest()))]);
  rows.push(['zstd-3 compress per chunk', measure(bytes, Math.min(passes, 3), () => chunks.forEach((c) => compress(c, 3)))]);
  rows.push(['zstd-1 compress per chunk (for comparison)', measure(bytes, Math.min(passes, 3), () => chunks.forEach((c) => compress(c, 1)))]);
  rows.push(['zstd decompress per chunk', measure(bytes, Math.min(passes, 3), () => compressed.forEach((z, i) => decompress(z, chunks[i].length)))]);

  const native = rows[1][1];
  console.log(`chunking bench: ${files.length} files from /usr/bin, ${(bytes / 2 ** 20).toFixed(1)} MiB, ${chunks.length} chunks ` +
    `(mean ${(bytes / chunks.length / 1024).toFixed(1)} KiB), best of ${passes}; cut finder: ${chunkerImplementation()}; ` +
    `zstd ${nativeAddon()!.zstdVersion()}; CPU: ${cpus()[0]?.model ?? '?'}`);
  console.log(`stored per chunk (zstd-3 or raw): ${(bytes / 2 ** 20).toFixed(1)} MiB -> ${(zBytes / 2 ** 20).toFixed(1)} MiB (${(zBytes / bytes).toFixed(3)}x)`);
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(`${'what'.padEnd(w)}  ${'MB/s'.padStart(7)}  ${'vs 300 MB/s'.padStart(11)}  ${'vs native'.padStart(9)}`);
  for (const [name, mbps] of rows) {
    console.log(`${name.padEnd(w)}  ${mbps.toFixed(0).padStart(7)}  ${(mbps / TARGET_MBPS).toFixed(2).padStart(10)}x  ${(mbps / native).toFixed(2).padStart(8)}x`);
  }
  // The target is judged on what ingest runs: chunkAndHash on the commit path.
  const ingest = rows[3][1];
  console.log(`target (chunking + hashing >= ${TARGET_MBPS} MB/s on one core, chunkAndHash): ${ingest >= TARGET_MBPS ? 'met' : 'NOT met'} at ${ingest.toFixed(0)} MB/s`);
}

void main();
