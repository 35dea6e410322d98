// A macro workload: building a real C project with the slinked toolchain first on PATH (make,
// gcc, as, ld and sh, slinked from /usr/bin and run from a slinkyfs mount) against the same
// build with the dynamic tools, side by side in one run, alternating, from clean each time.
// The project is LMDB (OpenLDAP's C library and its tools: `make` builds liblmdb.a, liblmdb.so
// and ten programs, about thirty compiler and linker runs), from the lmdb package this project
// already depends on, so the benchmark needs no network; any directory with a Makefile can be
// given instead. Both builds run every recipe through a shell given as SHELL= (dash either way:
// /usr/bin/dash or the slinked one), so they spawn the same processes.
//
//   make build && node dist/bench/macro.js [--src DIR] [--rounds 3] [--no-passthrough] [--readahead-kib N]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, benchMount, machine, median, printTable } from './slinkedMount';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const SRC = path.resolve(opt('--src', path.join(ROOT, 'node_modules/lmdb/dependencies/lmdb/libraries/liblmdb')));
const ROUNDS = Number(opt('--rounds', '3'));

const TOOLS: Record<string, string> = {
  make: '/usr/bin/make',
  gcc: '/usr/bin/gcc',
  as: '/usr/bin/as',
  ld: '/usr/bin/ld',
  sh: '/bin/sh',
};

function build(dir: string, env: NodeJS.ProcessEnv, make: string, shell: string): number {
  const clean = spawnSync('/usr/bin/make', ['-s', '-C', dir, 'clean'], { env, stdio: 'ignore' });
  if (clean.status !== 0) throw new Error(`make clean in ${dir} failed`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(make, ['-s', '-C', dir, `SHELL=${shell}`], { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`build in ${dir} failed: ${r.stderr.slice(-2000)}`);
  return s;
}

async function main() {
  if (!fs.existsSync(path.join(SRC, 'Makefile'))) throw new Error(`no Makefile in ${SRC}`);
  // --no-passthrough: every object page from the daemon (README, "Twins").
  const readahead = args.includes('--readahead-kib') ? ['--readahead-kib', opt('--readahead-kib', '128')] : [];
  const m = await benchMount('macro', [...(args.includes('--no-passthrough') ? ['--no-passthrough'] : []), ...readahead]);
  try {
    await m.add(Object.fromEntries(Object.entries(TOOLS).map(([name, file]) => [name, fs.realpathSync(file)])));
    const dynDir = path.join(m.dir, 'src-dynamic');
    const slDir = path.join(m.dir, 'src-slinked');
    for (const d of [dynDir, slDir]) spawnSync('cp', ['-a', SRC, d]);
    // A gcc driver outside /usr/bin looks for cc1 relative to itself unless told where its own
    // programs are (true of any relocated gcc, slinked or not): say it for both builds alike.
    const common = { ...process.env, LC_ALL: 'C', GCC_EXEC_PREFIX: '/usr/lib/gcc/' };
    const dynEnv = { ...common, PATH: '/usr/bin:/bin' };
    const slEnv = { ...common, PATH: `${path.join(m.mountpoint, 'bin')}:/usr/bin:/bin` };
    // Which tools each build really runs: the ones on the mount come first on PATH.
    const which = (env: NodeJS.ProcessEnv) =>
      ['make', 'gcc', 'as', 'ld'].map((t) => spawnSync('bash', ['-c', `command -v ${t}; gcc -print-prog-name=${t}`], { env, encoding: 'utf8' }).stdout.trim().split('\n')[0]);
    const slTools = which(slEnv);
    if (!slTools.every((t) => t.startsWith(m.mountpoint))) throw new Error(`slinked tools not first on PATH: ${slTools.join(' ')}`);
    // Warm both (the page caches, the daemon's objects), then alternate.
    build(dynDir, dynEnv, '/usr/bin/make', '/usr/bin/dash');
    build(slDir, slEnv, m.bin('make'), m.bin('sh'));
    const times: { dynamic: number[]; slinked: number[] } = { dynamic: [], slinked: [] };
    for (let r = 0; r < ROUNDS; r++) {
      times.dynamic.push(build(dynDir, dynEnv, '/usr/bin/make', '/usr/bin/dash'));
      times.slinked.push(build(slDir, slEnv, m.bin('make'), m.bin('sh')));
    }
    // The slinked tools really ran from the mount: the daemon saw their objects mapped.
    const s = await m.pageStats();
    const d = median(times.dynamic);
    const sl = median(times.slinked);
    console.log(`build of ${SRC} (make, clean each time), median of ${ROUNDS} alternating rounds, ${machine()}`);
    printTable(
      ['tools', 'elapsed s (each round)', 'median s', 'ratio'],
      [
        ['dynamic (/usr/bin)', times.dynamic.map((t) => t.toFixed(2)).join(' '), d.toFixed(2), '1.000x'],
        ['slinked, from the mount', times.slinked.map((t) => t.toFixed(2)).join(' '), sl.toFixed(2), `${(sl / d).toFixed(3)}x`],
      ],
    );
    console.log(`\nslinked make, gcc, as, ld, sh from ${path.join(m.mountpoint, 'bin')} (cc1 and collect2 are gcc's own, dynamic);`);
    console.log(`daemon: ${s.gdt.misses} pages read and verified, ${s.gdt.hits} GDT hits, ${s.gdt.verificationFailures} verification failures`);
  } finally {
    m.cleanup();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
