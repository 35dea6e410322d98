// Start-up of slinked programs run from a slinkyfs mount (objects shared through the page cache,
// kernel caches hot) against the dynamic originals on ext4, side by side in one run: `true`,
// `ls /` and `python3 -c pass`; from the mount twice: by default (objects identical to this
// machine's files pass through to them) and with --no-passthrough (the daemon serves every
// object page). Two more columns explain the difference:
//   - "objects from mount": glibc's loader (the system's, on ext4: objects are not executable)
//     run explicitly on the published object files, i.e. the same opens of the same files the
//     stub hands over, without the stub and without running a file of the mount: what loading
//     the objects from FUSE costs by itself;
//   - "standalone": the same slinked file on ext4, where the stub copies objects into memfds;
//   - "after idle": dynamic and mount again, each run after a 2 ms pause (the daemon no longer
//     polls, the CPUs are idle), where back to back each run finds the daemon still awake.
//
//   make build && node dist/bench/startupMount.js [runs=1000] [rounds=5]
//
// Timing: hyperfine -N; rounds alternate the variants so that load from other processes falls on
// all of them alike; figures are medians over all runs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { openSlinked } from '../src/elf/slinkedFile';
import { digestToString } from '../src/chunking/digest';
import { benchMounts, machine, median, printTable } from './slinkedMount';

interface Program {
  readonly label: string;
  readonly name: string;
  readonly args: readonly string[];
}

const PROGRAMS: readonly Program[] = [
  { label: 'true', name: 'true', args: [] },
  { label: 'ls /', name: 'ls', args: ['/'] },
  { label: 'python3 -c pass', name: 'python3', args: ['-c', 'pass'] },
];

const quote = (s: string) => (/^[\w./=:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** Before each timed run of the "after idle" variants: every CPU and the daemon go quiet. */
const IDLE = ['sleep', '0.002'];

function measure(argv: readonly string[], runs: number, dir: string, prepare?: readonly string[]): number[] {
  const json = path.join(dir, 'hf.json');
  const before = prepare ? ['--prepare', prepare.join(' ')] : [];
  const r = spawnSync('hyperfine', ['-N', '--style', 'none', '--warmup', '20', ...before, '--runs', String(runs), '--export-json', json, argv.map(quote).join(' ')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr}`);
  return JSON.parse(fs.readFileSync(json, 'utf8')).results[0].times.map((t: number) => t * 1000);
}

async function main() {
  if (spawnSync('hyperfine', ['--version']).status !== 0) throw new Error('needs hyperfine (apt-get install hyperfine)');
  const runs = Number(process.argv[2] ?? 1000);
  const rounds = Number(process.argv[3] ?? 5);
  const [m, served] = await benchMounts([['startup-mount'], ['startup-served', ['--no-passthrough']]]);
  try {
    await m.add(Object.fromEntries(PROGRAMS.map((p) => [p.name, p.name])));
    await served.add(Object.fromEntries(PROGRAMS.map((p) => [p.name, p.name])));
    const rows: string[][] = [];
    for (const p of PROGRAMS) {
      const file = await openSlinked(m.standalone(p.name));
      const objectPath = (i: number) => path.join(m.mountpoint, '.slinky', 'objects', digestToString(file.manifest.objects[i].digest));
      const objects = file.manifest.objects.map((o, i) => ({ role: o.role, path: objectPath(i) }));
      const libs = objects.filter((o) => o.role === 'library').map((o) => o.path);
      const prog = objects.find((o) => o.role === 'program')!.path;
      const variants: Record<string, string[]> = {
        dynamic: [path.join('/usr/bin', p.name), ...p.args],
        mount: [m.bin(p.name), ...p.args],
        served: [served.bin(p.name), ...p.args],
        explicit: ['/lib64/ld-linux-x86-64.so.2', ...(libs.length ? ['--preload', libs.join(':')] : []), prog, ...p.args],
        standalone: [m.standalone(p.name), ...p.args],
        dynamicIdle: [path.join('/usr/bin', p.name), ...p.args],
        mountIdle: [m.bin(p.name), ...p.args],
      };
      const times: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
      const perRound = Math.max(1, Math.ceil(runs / rounds));
      for (let r = 0; r < rounds; r++) {
        for (const [k, argv] of Object.entries(variants)) times[k].push(...measure(argv, perRound, m.dir, k.endsWith('Idle') ? IDLE : undefined));
      }
      const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
      rows.push([
        p.label,
        med.dynamic.toFixed(3),
        med.mount.toFixed(3),
        `${(med.mount / med.dynamic).toFixed(2)}x`,
        med.served.toFixed(3),
        `${(med.served / med.dynamic).toFixed(2)}x`,
        med.explicit.toFixed(3),
        `${(med.explicit / med.dynamic).toFixed(2)}x`,
        med.standalone.toFixed(3),
        `${(med.standalone / med.dynamic).toFixed(2)}x`,
        med.dynamicIdle.toFixed(3),
        med.mountIdle.toFixed(3),
        `${(med.mountIdle / med.dynamicIdle).toFixed(2)}x`,
        String(objects.length),
      ]);
    }
    console.log(`start-up from a slinkyfs mount (hot), median of ${Math.ceil(runs / rounds) * rounds} runs each (hyperfine -N), ${machine()}`);
    printTable(['program', 'dynamic ms', 'mount ms', 'mount/dyn', '--no-passthrough ms', '/dyn', 'objects from mount ms', 'objects/dyn', 'standalone ms', 'standalone/dyn', 'after idle: dynamic ms', 'mount ms', 'mount/dyn', 'objects'], rows);
    console.log(
      [
        '',
        'mount: the slinked file run from the mount; its stub reads its objects from its mailbox, finds <mount>/.slinky/objects',
        '(cached lookups), maps the loader from its object file and hands the object files to it. Every open of a',
        'file on the mount is a FUSE round trip to the daemon (OPEN; objects answer without touching the store), so',
        'a program costs (objects + 1) round trips more than on ext4; the page contents come from the kernel page',
        'cache shared with every other process (by default the page cache of the identical system file, e.g.',
        "libc.so.6, through FUSE passthrough; with --no-passthrough the mount's own, filled by the daemon).",
        'objects from mount: the system loader run on the object files of',
        'the mount, without the stub. standalone: memfd copies (bench/startup.ts explains that cost).',
        `after idle: each run follows \`${IDLE.join(' ')}\` (hyperfine --prepare), so the daemon has stopped polling`,
        'and the CPUs are idle when the program starts, as between the commands of a script or a user.',
      ].join('\n'),
    );
    for (const [label, x] of [['mount', m], ['--no-passthrough', served]] as const) {
      const s = await x.pageStats();
      console.log(`${label}: ${s.twins.objects} objects pass through; daemon page cache after the run: ${s.gdt.hits} GDT hits, ${s.gdt.misses} misses, ${s.gdt.verificationFailures} verification failures`);
    }
  } finally {
    m.cleanup();
    served.cleanup();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
