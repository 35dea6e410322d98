// Size of slinked programs against the dynamic ones (the shape of the Slinky paper's Table 2(a)):
// per program, and in total for /usr/bin. "dynamic" counts each program plus every library and
// loader it uses, each distinct file once across the whole set (what a dynamic system keeps on
// disk); "slinked" is the sum of the real slinked files, each carrying its own copies. Every
// program is really slinked (into a temporary file that is deleted right after its size is read).
//
//   make build && node dist/bench/slinkSize.js [--limit N] [--dir /usr/bin] [--quiet]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SlinkContext, SlinkRefusal, slinkFile } from '../src/elf/slink';

interface Row {
  readonly name: string;
  readonly program: number;
  readonly withLibraries: number;
  readonly slinked: number;
  readonly objects: number;
}

function parseArgs(argv: string[]) {
  const opt = { limit: Infinity, dir: '/usr/bin', quiet: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--limit') opt.limit = Number(argv[++i]);
    else if (argv[i] === '--dir') opt.dir = argv[++i];
    else if (argv[i] === '--quiet') opt.quiet = true;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return opt;
}

const mb = (n: number) => (n / 1e6).toFixed(1);

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'slinky-size-'));
  const ctx = new SlinkContext();
  const rows: Row[] = [];
  const distinct = new Map<string, number>(); // identity -> size, across the whole set
  const seenPrograms = new Set<string>();
  const skipped = new Map<string, number>();
  try {
    for (const name of fs.readdirSync(opt.dir).sort()) {
      if (rows.length >= opt.limit) break;
      const input = path.join(opt.dir, name);
      let st: fs.Stats;
      try {
        st = fs.statSync(input);
      } catch {
        continue;
      }
      if (!st.isFile() || seenPrograms.has(`${st.dev}:${st.ino}`)) continue;
      seenPrograms.add(`${st.dev}:${st.ino}`);
      const out = path.join(tmp, 'out');
      try {
        const r = await slinkFile(input, out, { context: ctx });
        if (r.kind !== 'slinked') continue;
        let withLibraries = 0;
        for (const o of r.objects) {
          const ost = fs.statSync(o.role === 'program' ? input : o.path);
          distinct.set(`${ost.dev}:${ost.ino}`, o.size);
          withLibraries += o.size;
        }
        rows.push({ name, program: st.size, withLibraries, slinked: r.size, objects: r.objects.length });
      } catch (err) {
        const why = err instanceof SlinkRefusal ? err.reason : err instanceof Error ? err.name : 'error';
        skipped.set(why, (skipped.get(why) ?? 0) + 1);
      } finally {
        fs.rmSync(out, { force: true });
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  if (!opt.quiet) {
    const w = Math.max(7, ...rows.map((r) => r.name.length));
    console.log(`${'program'.padEnd(w)}  ${'dynamic'.padStart(10)}  ${'+ its libs'.padStart(10)}  ${'slinked'.padStart(10)}  objects  slinked/(+libs)`);
    for (const r of rows) {
      console.log(
        `${r.name.padEnd(w)}  ${String(r.program).padStart(10)}  ${String(r.withLibraries).padStart(10)}  ${String(r.slinked).padStart(10)}  ${String(r.objects).padStart(7)}  ${(r.slinked / r.withLibraries).toFixed(3)}`,
      );
    }
    console.log('');
  }
  const programs = rows.reduce((n, r) => n + r.program, 0);
  const dynamicTotal = [...distinct.values()].reduce((n, s) => n + s, 0);
  const slinkedTotal = rows.reduce((n, r) => n + r.slinked, 0);
  const libraries = distinct.size - rows.length;
  console.log(`${rows.length} dynamic programs from ${opt.dir} (skipped: ${[...skipped].map(([k, v]) => `${v} ${k}`).join(', ') || 'none'})`);
  console.log(`  dynamic, programs only:                        ${mb(programs).padStart(9)} MB`);
  console.log(`  dynamic, programs + ${String(libraries).padStart(4)} libraries/loaders once: ${mb(dynamicTotal).padStart(9)} MB`);
  console.log(`  slinked (each file carries its own copies):    ${mb(slinkedTotal).padStart(9)} MB`);
  console.log(`  slinked / dynamic:                             ${(slinkedTotal / dynamicTotal).toFixed(2)}x   (per program, median ${median(rows.map((r) => r.slinked / r.program)).toFixed(1)}x its own size)`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : NaN;
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
