// Slinked programs are self-contained: each one, alone in an empty chroot (nothing but the slinked
// file, /proc and /dev), gives the same stdout, stderr and exit status as the dynamic original run
// on the host with the same arguments, input and environment.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLEAN_ENV, EmptyRoot, run, slinkPrograms, tempDir } from './slinkHelpers';

const TEXT = 'banana 3\napple 10\ncherry 7\napple 2\ndate 1\n\tindented line with  spaces\n';

interface Case {
  readonly prog: string;
  readonly args: readonly string[];
  readonly input?: string | Buffer;
}

function fixtures(dir: string) {
  fs.writeFileSync(path.join(dir, 'a.txt'), TEXT);
  fs.writeFileSync(path.join(dir, 'b.txt'), 'second file\n');
  const tar = spawnSync('tar', ['--format=ustar', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '-C', dir, 'a.txt', 'b.txt']);
  const gz = spawnSync('gzip', ['-cn'], { input: TEXT });
  if (tar.status !== 0 || gz.status !== 0) throw new Error('cannot build fixtures');
  return { tar: tar.stdout, gz: gz.stdout };
}

function cases(tar: Buffer, gz: Buffer): Case[] {
  return [
    // The ones the issue names.
    { prog: 'ls', args: ['-d', '/', '/dev', '/proc', '/nonexistent'] },
    { prog: 'cat', args: ['-n', '-'], input: TEXT },
    { prog: 'sort', args: ['-k2,2n'], input: TEXT },
    { prog: 'sha256sum', args: [], input: TEXT },
    { prog: 'grep', args: ['-n', 'an'], input: TEXT },
    { prog: 'sed', args: ['-e', 's/a/A/g', '-e', '3d'], input: TEXT },
    { prog: 'mawk', args: ['{ s += $2 } END { print s, NR }'], input: TEXT },
    { prog: 'tar', args: ['-tvf', '-'], input: tar },
    { prog: 'gzip', args: ['-cn'], input: TEXT },
    { prog: 'find', args: ['/dev', '-maxdepth', '1', '-name', 'null'] },
    { prog: 'diff', args: ['-u', '/dev/stdin', '/dev/null'], input: TEXT },
    { prog: 'make', args: ['-f', '/dev/stdin', 'all'], input: 'N := $(words a b c)\n$(info words=$(N) $(subst a,A,banana))\nall: ;\n' },
    { prog: 'bash', args: ['-c', 'x=0; for i in 1 2 3 4; do x=$((x + i * i)); done; printf "%s %05d\\n" "$x" 42; exit 3'] },
    { prog: 'perl', args: ['-e', 'my %h = map { $_ => length } qw(a bb ccc); print join(",", map { "$_=$h{$_}" } sort keys %h), "\\n"; exit 4'] },
    { prog: 'git', args: ['hash-object', '--stdin'], input: TEXT },
    { prog: 'openssl', args: ['dgst', '-sha256'], input: TEXT },
    // More of /usr/bin.
    { prog: 'tar', args: ['-xOf', '-', 'b.txt'], input: tar },
    { prog: 'gzip', args: ['-dc'], input: gz },
    { prog: 'head', args: ['-n', '2'], input: TEXT },
    { prog: 'tail', args: ['-n', '2'], input: TEXT },
    { prog: 'wc', args: [], input: TEXT },
    { prog: 'tr', args: ['a-z', 'A-Z'], input: TEXT },
    { prog: 'cut', args: ['-d', ' ', '-f2'], input: TEXT },
    { prog: 'uniq', args: ['-c'], input: 'a\na\nb\na\n' },
    { prog: 'nl', args: [], input: TEXT },
    { prog: 'od', args: ['-c'], input: TEXT },
    { prog: 'base64', args: [], input: TEXT },
    { prog: 'base32', args: [], input: TEXT },
    { prog: 'md5sum', args: [], input: TEXT },
    { prog: 'sha1sum', args: [], input: TEXT },
    { prog: 'sha224sum', args: [], input: TEXT },
    { prog: 'sha384sum', args: [], input: TEXT },
    { prog: 'sha512sum', args: [], input: TEXT },
    { prog: 'b2sum', args: [], input: TEXT },
    { prog: 'cksum', args: [], input: TEXT },
    { prog: 'sum', args: [], input: TEXT },
    { prog: 'fold', args: ['-w', '5'], input: TEXT },
    { prog: 'fmt', args: ['-w', '20'], input: TEXT },
    { prog: 'expand', args: [], input: TEXT },
    { prog: 'unexpand', args: ['-a'], input: TEXT },
    { prog: 'rev', args: [], input: TEXT },
    { prog: 'comm', args: ['-3', '/dev/stdin', '/dev/null'], input: 'a\nb\nd\n' },
    { prog: 'paste', args: ['-s', '-d,'], input: TEXT },
    { prog: 'seq', args: ['1', '3', '10'] },
    { prog: 'printf', args: ['%s-%d-%x\\n', 'a', '5', '255'] },
    { prog: 'echo', args: ['-e', 'a\\tb'] },
    { prog: 'expr', args: ['6', '*', '7'] },
    { prog: 'factor', args: ['360', '97'] },
    { prog: 'basename', args: ['/a/b/c.txt', '.txt'] },
    { prog: 'dirname', args: ['/a/b/c'] },
    { prog: 'true', args: [] },
    { prog: 'false', args: [] },
    { prog: 'numfmt', args: ['--to=iec', '1048576', '123'] },
    { prog: 'tsort', args: [], input: 'a b\nb c\na c\n' },
    { prog: 'shuf', args: ['-i', '1-9', '--random-source=/dev/zero'] },
    { prog: 'env', args: [] },
    { prog: 'printenv', args: ['LC_ALL', 'NOPE'] },
    { prog: 'uname', args: ['-sm'] },
    { prog: 'nproc', args: [] },
    { prog: 'realpath', args: ['/dev/../proc/'] },
    { prog: 'readlink', args: ['-f', '/dev/../dev/null'] },
    { prog: 'cmp', args: ['/dev/stdin', '/dev/null'], input: TEXT },
    { prog: 'pr', args: ['-t', '-2'], input: TEXT },
    { prog: 'dd', args: ['bs=4', 'count=3', 'status=none'], input: TEXT },
    { prog: 'tee', args: ['/dev/null'], input: TEXT },
    { prog: 'test', args: ['1', '-lt', '2'] },
    { prog: 'sleep', args: ['0'] },
    { prog: 'date', args: ['-d', '@86400', '+%F %T %Z'] },
    { prog: 'id', args: ['-u'] },
    { prog: 'tty', args: [] },
    { prog: 'nice', args: [] },
    { prog: 'bzip2', args: ['-c'], input: TEXT },
    { prog: 'xz', args: ['-c'], input: TEXT },
    { prog: 'zstd', args: ['-c', '-q'], input: TEXT },
    { prog: 'xxd', args: [], input: TEXT },
    { prog: 'bc', args: ['-q'], input: '2^70\nscale=5; 22/7\n' },
    { prog: 'hexdump', args: ['-C'], input: TEXT },
    { prog: 'column', args: ['-t'], input: TEXT },
    { prog: 'strings', args: ['-n', '5'], input: Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from('hello world\0\x01bye\0longer string\n')]) },
    { prog: 'dash', args: ['-c', 'i=0; while [ $i -lt 3 ]; do echo "n$i"; i=$((i+1)); done; exit 5'] },
    { prog: 'stat', args: ['-c', '%n %F', '/dev/null'] },
  ];
}

const MIN_PROGRAMS = 60;
const dir = tempDir('chroot');
const { tar, gz } = fixtures(dir);
const all = cases(tar, gz);
let root: EmptyRoot;
let slinked: Map<string, string>;

beforeAll(async () => {
  slinked = await slinkPrograms([...new Set(all.map((c) => c.prog))], dir);
  root = new EmptyRoot();
}, 300000);

afterAll(() => {
  root?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test(`at least ${MIN_PROGRAMS} different programs take part, including those the issue names`, () => {
  const programs = new Set(all.map((c) => c.prog));
  expect(programs.size).toBeGreaterThanOrEqual(MIN_PROGRAMS);
  for (const p of ['ls', 'cat', 'sort', 'sha256sum', 'grep', 'sed', 'mawk', 'tar', 'gzip', 'find', 'diff', 'make', 'bash', 'perl', 'git', 'openssl']) {
    expect(programs).toContain(p);
  }
});

test('the chroot holds nothing but /proc, /dev and the one slinked file while a program runs', () => {
  const r = root.run(slinked.get('ls')!, 'ls', ['-A', '/', '/usr', '/usr/bin']);
  expect(r.stdout.toString()).toBe('/:\ndev\nproc\nusr\n\n/usr:\nbin\n\n/usr/bin:\nls\n');
  expect(root.contents()).toEqual(['dev', 'proc', 'usr', 'usr/bin']);
});

describe('a slinked program in an empty chroot behaves as the dynamic one on the host', () => {
  test.each(all.map((c) => [`${c.prog} ${c.args.join(' ')}`.slice(0, 60), c] as const))('%s', (_label, c) => {
    const host = run(`/usr/bin/${c.prog}`, c.args, { input: c.input });
    const jailed = root.run(slinked.get(c.prog)!, c.prog, c.args, { input: c.input });
    const show = (r: typeof host) => ({ prog: c.prog, args: c.args, error: r.error?.message, status: r.status, signal: r.signal, stdout: r.stdout.toString('latin1'), stderr: r.stderr.toString('latin1') });
    expect(show(jailed)).toEqual(show(host));
  });
});

test('the comparison environment is the clean one, passed through unchanged', () => {
  const r = root.run(slinked.get('env')!, 'env', []);
  const expected = Object.entries(CLEAN_ENV).map(([k, v]) => `${k}=${v}\n`).join('');
  expect(r.stdout.toString()).toBe(expected);
});

test('on a system whose libraries differ, the embedded ones are used and the system ones ignored', () => {
  // Decoys where the loader and libc would be: garbage a dynamic program cannot start with.
  const decoys = ['lib64/ld-linux-x86-64.so.2', 'lib/x86_64-linux-gnu/libc.so.6', 'etc/ld.so.cache'];
  for (const d of decoys) {
    fs.mkdirSync(path.join(root.dir, path.dirname(d)), { recursive: true });
    fs.writeFileSync(path.join(root.dir, d), 'not a library\n');
  }
  const dynamicCopy = path.join(dir, 'dynamic-sort');
  fs.copyFileSync('/usr/bin/sort', dynamicCopy);
  try {
    const env = { ...CLEAN_ENV, LD_LIBRARY_PATH: '/lib/x86_64-linux-gnu' };
    const dynamic = root.run(dynamicCopy, 'sort', [], { input: TEXT, env });
    expect(dynamic.status).not.toBe(0);
    const slinkedRun = root.run(slinked.get('sort')!, 'sort', [], { input: TEXT, env });
    expect({ status: slinkedRun.status, out: slinkedRun.stdout.toString(), err: slinkedRun.stderr.toString() }).toEqual({
      status: 0,
      out: [...TEXT.trimEnd().split('\n')].sort().join('\n') + '\n',
      err: '',
    });
  } finally {
    for (const d of ['lib64', 'lib', 'etc']) fs.rmSync(path.join(root.dir, d), { recursive: true, force: true });
  }
});
