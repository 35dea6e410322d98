// Page faults per program, the paper's Table 1: `ls`, `cat`, `gcc` and `make` run one after the
// other, dynamic (from /usr/bin) and slinked from a slinkyfs mount. For each run: the faults of
// the program and the children it waited for (minor and major, from wait4's rusage via GNU time),
// and the pages the daemon served meanwhile, split into GDT hits (the page was in the pool) and
// misses (read from the store and verified against its digest before being cached).
//
// A fault the daemon never sees was satisfied from memory already there: the kernel page cache of
// the object file (shared with every earlier program that mapped the same object: "shared"),
// zero pages or copies on write. The slinked sequence runs twice: cold (freshly mounted, nothing
// of the mount in the kernel page cache, the pool empty) and hot. The dynamic sequence runs after
// a warming run, its files being in the page cache of a machine that uses them all the time.
// The table is of a mount with --no-passthrough, where the daemon serves every object page; a
// last line gives the same sequences on a default mount, whose objects pass through to this
// machine's identical files where some process maps them (README, "Twins"): the daemon then
// serves none of their pages.
//
//   make build && node dist/bench/pagefaults.js
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { benchMounts, machine, printTable, type BenchMount } from './slinkedMount';

interface Step {
  label: string;
  program: string;
  args: (dir: string) => string[];
}

const STEPS: Step[] = [
  { label: 'ls', program: 'ls', args: () => ['-l', '/usr/bin'] },
  { label: 'cat', program: 'cat', args: () => ['/usr/share/common-licenses/GPL-3'] },
  { label: 'gcc', program: 'gcc', args: (dir) => ['-O2', '-c', path.join(dir, 'hello.c'), '-o', path.join(dir, 'hello.o')] },
  { label: 'make', program: 'make', args: (dir) => ['-s', '-C', dir, '-f', 'Makefile', 'all'] },
];

interface Faults {
  minor: number;
  major: number;
}

function faultsOf(file: string, args: string[], dir: string, env: NodeJS.ProcessEnv): Faults {
  const out = path.join(dir, 'time.out');
  const r = spawnSync('/usr/bin/time', ['-o', out, '-f', '%R %F', file, ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr}`);
  const [minor, major] = fs.readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { minor, major };
}

interface Row {
  faults: Faults;
  hits: number;
  misses: number;
}

async function sequence(file: (p: string) => string, dir: string, m?: BenchMount): Promise<Row[]> {
  const rows: Row[] = [];
  // Children (cc1, as, sh) come from PATH: the slinked ones when the sequence is the slinked one.
  // GCC_EXEC_PREFIX: a gcc driver outside /usr/bin would look for cc1 next to itself.
  const env = { ...process.env, PATH: m ? `${path.dirname(file('gcc'))}:/usr/bin:/bin` : '/usr/bin:/bin', LC_ALL: 'C', GCC_EXEC_PREFIX: '/usr/lib/gcc/' };
  for (const s of STEPS) {
    const before = m ? (await m.pageStats()).gdt : undefined;
    const faults = faultsOf(file(s.program), s.args(dir), dir, env);
    const after = m ? (await m.pageStats()).gdt : undefined;
    rows.push({ faults, hits: after && before ? after.hits - before.hits : 0, misses: after && before ? after.misses - before.misses : 0 });
  }
  return rows;
}

async function main() {
  const [m, twins] = await benchMounts([['pagefaults', ['--no-passthrough']], ['pagefaults-twins']]);
  const dir = path.join(m.dir, 'work');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'hello.c'), '#include <stdio.h>\nint main(void) { printf("hello\\n"); return 0; }\n');
  // make runs a recipe through the shell: the same tiny work in both sequences.
  fs.writeFileSync(path.join(dir, 'Makefile'), 'all: stamp\nstamp: hello.c\n\t@echo built > stamp\n\t@rm -f stamp\n.PHONY: all\n');
  try {
    const programs = { ls: 'ls', cat: 'cat', gcc: fs.realpathSync('/usr/bin/gcc'), make: 'make', as: fs.realpathSync('/usr/bin/as') };
    await m.add(programs);
    await twins.add(programs);
    m.remount();
    const cold = await sequence(m.bin, dir, m);
    const hot = await sequence(m.bin, dir, m);
    await sequence((p) => `/usr/bin/${p}`, dir);
    const dynamic = await sequence((p) => `/usr/bin/${p}`, dir);
    twins.remount();
    await twins.settled();
    const twinsCold = await sequence(twins.bin, dir, twins);
    const twinsHot = await sequence(twins.bin, dir, twins);
    console.log(`page faults per program, run in sequence (${machine()})`);
    console.log('faults = minor + major of the program and its waited-for children; hits/misses = pages the daemon served\n');
    const f = (x: Faults) => `${x.minor + x.major} (${x.major})`;
    printTable(
      ['program', 'dynamic faults (major)', 'mount cold faults (major)', 'GDT hits', 'GDT misses', 'mount hot faults (major)', 'GDT hits', 'GDT misses', 'hot/dynamic'],
      STEPS.map((s, i) => [
        s.label,
        f(dynamic[i].faults),
        f(cold[i].faults),
        String(cold[i].hits),
        String(cold[i].misses),
        f(hot[i].faults),
        String(hot[i].hits),
        String(hot[i].misses),
        `${((hot[i].faults.minor + hot[i].faults.major) / (dynamic[i].faults.minor + dynamic[i].faults.major)).toFixed(2)}x`,
      ]),
    );
    console.log(
      [
        '',
        'A miss is a page read from the store, decompressed and checked against its page digest; a hit is a page',
        'served from the GDT (pool) without either. Faults the daemon did not see were served from memory: mostly',
        'the kernel page cache of object files that earlier programs in the sequence (and the cold run) already',
        'brought in: libc, the loader and libraries are shared between ls, cat, gcc and make exactly as they are',
        'between the dynamic programs. gcc and make count their children (cc1, as, sh: dynamic ones from /usr/bin',
        'except as, which is slinked on the mount in the mount sequence).',
      ].join('\n'),
    );
    const t = await twins.pageStats();
    const served = (r: Row) => r.hits + r.misses;
    console.log(
      `\ndefault mount (${t.twins.objects} of ${t.published.objects} objects pass through to identical files in use): ` +
        STEPS.map((s, i) => `${s.label} cold ${f(twinsCold[i].faults)} faults, ${served(twinsCold[i])} pages from the daemon, hot ${f(twinsHot[i].faults)}, ${served(twinsHot[i])}`).join('; '),
    );
  } finally {
    m.cleanup();
    twins.cleanup();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exitCode = 1;
});
