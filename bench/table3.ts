// The paper's Table 3 on real Debian packages: what it costs on the wire to install slinked
// packages with `slinkyfs get --dir`, against their dynamic .deb files, measured in one run.
//
// For each package (in order): `apt-get download` it, unpack it, slink its executables
// (`slinkyfs slink --dir`), and put the tree into one sender store through a real mount; serve
// that store on loopback. Then `get --dir` the trees, in order, into an empty store, and again
// into an empty store seeded from /usr/lib first. Every get's bytes are counted on its sockets.
//
// What the dynamic side costs: seeded, the receiver has the libraries installed, so the package's
// own .deb. Unseeded (a machine with nothing on it), the package's .deb plus the .debs of the
// libraries its slinked executables embed that no earlier package already brought (the owning
// packages found with dpkg -S, their .debs fetched with apt-get download and measured).
//
//   make build && node dist/bench/table3.js [--work DIR] [--packages emacs-nox,vim,...]
//       [--install-deps] [--codec xz --level 9 --batch 32M] [--no-seeded] [--no-unseeded]
//
// Needs root (mount), apt (the .debs) and the packages' libraries installed (for slink):
// --install-deps installs the missing lib* dependencies with apt-get.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { openSlinked } from '../src/elf/slinkedFile';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'slinkyfs');
const DEFAULT_PACKAGES = ['emacs-nox', 'vim', 'xterm', 'x11-utils', 'hexchat'];
const BIN_DIRS = ['usr/bin', 'usr/sbin', 'usr/games', 'bin', 'sbin'];

interface Options {
  work: string;
  packages: string[];
  installDeps: boolean;
  codec: string;
  level: string;
  batch: string;
  seeded: boolean;
  unseeded: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    work: '/tmp/slinkyfs-table3',
    packages: DEFAULT_PACKAGES,
    installDeps: false,
    codec: 'xz',
    level: '9',
    batch: '32M',
    seeded: true,
    unseeded: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i] ?? fail(`${a} needs a value`);
    if (a === '--work') o.work = path.resolve(next());
    else if (a === '--packages') o.packages = next().split(',').filter(Boolean);
    else if (a === '--install-deps') o.installDeps = true;
    else if (a === '--codec') o.codec = next();
    else if (a === '--level') o.level = next();
    else if (a === '--batch') o.batch = next();
    else if (a === '--no-seeded') o.seeded = false;
    else if (a === '--no-unseeded') o.unseeded = false;
    else fail(`unknown option ${a}`);
  }
  return o;
}

function fail(msg: string): never {
  process.stderr.write(`table3: ${msg}\n`);
  process.exit(2);
}

function run(cmd: string, args: readonly string[], opts: { cwd?: string; allowFail?: boolean } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, maxBuffer: 256 << 20 });
  if (r.status !== 0 && !opts.allowFail) fail(`${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  return r;
}

const slinkyfs = (args: readonly string[], opts: { allowFail?: boolean } = {}) => run(process.execPath, [CLI, ...args], opts);

const log = (line: string) => process.stderr.write(`table3: ${line}\n`);

// ---- packages ----------------------------------------------------------------------------------

/** `apt-get download` into `dir` unless a .deb of that package is there; returns its path. */
function download(pkg: string, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const base = pkg.replace(/:.*/, '');
  const find = () => fs.readdirSync(dir).find((f) => f.startsWith(`${base}_`) && f.endsWith('.deb'));
  let f = find();
  if (!f) {
    const r = run('apt-get', ['download', pkg], { cwd: dir, allowFail: true });
    f = find();
    if (!f) fail(`apt-get download ${pkg} failed (run apt-get update?): ${r.stderr.trim().split('\n').pop()}`);
  }
  return path.join(dir, f);
}

/** lib* packages a package depends on that are not installed. */
function missingLibraryDeps(pkg: string): string[] {
  const deps = run('apt-cache', ['depends', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', pkg]).stdout;
  const libs = new Set<string>();
  for (const line of deps.split('\n')) {
    const m = /^\s+\|?Depends: (lib[^\s<>]+)/.exec(line);
    if (m) libs.add(m[1]);
  }
  return [...libs].filter((l) => !/install ok installed/.test(run('dpkg-query', ['-W', '-f=${Status}', l], { allowFail: true }).stdout));
}

function isElf(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 0) === 4 && b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    fs.closeSync(fd);
  }
}

/** Slink the executables of a tree's bin directories in place; returns the slinked files. */
function slinkTree(tree: string, scratch: string): string[] {
  const slinked: string[] = [];
  for (const d of BIN_DIRS) {
    const dir = path.join(tree, d);
    if (!fs.existsSync(dir) || !fs.lstatSync(dir).isDirectory()) continue;
    const out = path.join(scratch, d.replace(/\//g, '_'));
    fs.rmSync(out, { recursive: true, force: true });
    const r = slinkyfs(['slink', '--dir', dir, '-o', out], { allowFail: true });
    if (r.status !== 0 && !/slinked \d+/.test(r.stdout)) fail(`slink --dir ${dir}: ${r.stderr.trim()}`);
    const failed = r.stdout.split('\n').filter((l) => l.startsWith('failed:'));
    if (failed.length) fail(`slink --dir ${dir}: ${failed.join('; ')} (install the libraries: --install-deps)`);
    for (const name of fs.readdirSync(dir)) {
      const orig = path.join(dir, name);
      const made = path.join(out, name);
      // Only regular ELF files are replaced; symlinks, scripts and the rest stay as packaged.
      if (!fs.lstatSync(orig).isFile() || !isElf(orig) || !fs.existsSync(made) || !fs.lstatSync(made).isFile()) continue;
      const mode = fs.statSync(orig).mode & 0o7777;
      fs.copyFileSync(made, orig);
      fs.chmodSync(orig, mode);
      slinked.push(orig);
    }
  }
  return slinked;
}

/** Packages owning the libraries and loader embedded in slinked files. */
async function embeddedPackages(files: readonly string[]): Promise<string[]> {
  const paths = new Set<string>();
  for (const f of files) {
    try {
      for (const o of (await openSlinked(f)).manifest.objects) if (o.role !== 'program') paths.add(o.path);
    } catch {
      /* a static program copied as it is */
    }
  }
  const owners = new Set<string>();
  for (const p of paths) {
    const real = fs.existsSync(p) ? fs.realpathSync(p) : p;
    const candidates = [...new Set([p, real, p.replace(/^\/usr/, ''), real.replace(/^\/usr/, ''), `/usr${p}`, `/usr${real}`])];
    const r = run('dpkg', ['-S', ...candidates], { allowFail: true });
    const line = r.stdout.split('\n').find((l) => l.includes(': '));
    if (!line) fail(`no package owns ${p}`);
    owners.add(line.slice(0, line.indexOf(': ')).split(',')[0].trim());
  }
  return [...owners].sort();
}

function treeBytes(dir: string): number {
  let n = 0;
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p);
    if (st.isDirectory()) n += treeBytes(p);
    else if (st.isFile()) n += st.size;
  }
  return n;
}

// ---- serving and getting -----------------------------------------------------------------------

function serve(store: string): Promise<{ url: string; stop: () => void }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--store', store, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve({ url: m[1], stop: () => child.kill('SIGTERM') });
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
  });
}

interface GetResult {
  receivedBytes: number;
  chunkBytes: number;
  fetchedBytes: number;
  seededBytes: number;
  objectBytes: number;
  localBytes: number;
  seconds: number;
}

function getTree(url: string, pkg: string, store: string, o: Options): GetResult {
  const r = slinkyfs(['get', url, `/${pkg}`, '--dir', '--into', '/', '--store', store, '--codec', o.codec, '--level', o.level, '--batch', o.batch, '--json']);
  return JSON.parse(r.stdout);
}

// ---- the table -----------------------------------------------------------------------------------

const MB = (n: number) => (n / 1e6).toFixed(2);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) fail('needs root (it mounts the sender store)');
  fs.mkdirSync(o.work, { recursive: true });
  const debs = path.join(o.work, 'debs');
  const libDebs = path.join(o.work, 'lib-debs');

  // 1. Packages, their libraries, slinked trees.
  const missing = [...new Set(o.packages.flatMap(missingLibraryDeps))];
  if (missing.length) {
    if (!o.installDeps) fail(`libraries the packages need are not installed: ${missing.join(' ')} (pass --install-deps)`);
    log(`installing ${missing.join(' ')}`);
    run('apt-get', ['install', '-y', '--no-install-recommends', ...missing]);
  }
  const trees = path.join(o.work, 'trees');
  fs.rmSync(trees, { recursive: true, force: true });
  const pkgs: Array<{ name: string; deb: string; debBytes: number; treeBytes: number; slinked: string[]; libPackages: string[] }> = [];
  for (const name of o.packages) {
    const deb = download(name, debs);
    const tree = path.join(trees, name);
    fs.mkdirSync(tree, { recursive: true });
    run('dpkg-deb', ['-x', deb, tree]);
    const slinked = slinkTree(tree, path.join(o.work, 'slink-out', name));
    const libPackages = await embeddedPackages(slinked);
    pkgs.push({ name, deb, debBytes: fs.statSync(deb).size, treeBytes: treeBytes(tree), slinked, libPackages });
    log(`${name}: ${slinked.length} executables slinked, ${MB(treeBytes(tree))} MB tree, embeds libraries of ${libPackages.length} packages`);
  }

  // 2. The sender store, through a real mount.
  const sender = path.join(o.work, 'sender');
  const mnt = path.join(o.work, 'mnt');
  fs.rmSync(sender, { recursive: true, force: true });
  fs.mkdirSync(mnt, { recursive: true });
  slinkyfs(['mount', mnt, '--store', sender]);
  try {
    for (const p of pkgs) run('cp', ['-a', path.join(trees, p.name), path.join(mnt, p.name)]);
  } finally {
    slinkyfs(['umount', mnt], { allowFail: true });
    spawnSync('fusermount', ['-uz', mnt]);
  }
  const server = await serve(sender);

  // 3. Gets, in order, into empty stores (one seeded from /usr/lib first).
  const results: Record<string, GetResult[]> = {};
  try {
    for (const scenario of ['unseeded', 'seeded'] as const) {
      if ((scenario === 'seeded' && !o.seeded) || (scenario === 'unseeded' && !o.unseeded)) continue;
      const store = path.join(o.work, `receiver-${scenario}`);
      fs.rmSync(store, { recursive: true, force: true });
      if (scenario === 'seeded') {
        const t0 = Date.now();
        const s = JSON.parse(slinkyfs(['seed', '/usr/lib', '--store', store, '--json']).stdout);
        log(`seeded /usr/lib: ${s.files} files, ${MB(s.bytes)} MB, ${s.indexedChunks} chunks indexed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      }
      results[scenario] = pkgs.map((p) => {
        const r = getTree(server.url, p.name, store, o);
        log(`${scenario} ${p.name}: received ${MB(r.receivedBytes)} MB in ${r.seconds.toFixed(1)} s`);
        return r;
      });
      const v = slinkyfs(['verify', '--store', store], { allowFail: true });
      if (v.status !== 0) fail(`receiver store ${store} does not verify: ${v.stdout}`);
    }
  } finally {
    server.stop();
  }

  // 4. The dynamic side: the .debs, plus (unseeded) the library packages each needs first.
  const brought = new Set<string>();
  const libDebBytes = pkgs.map((p) => {
    let n = 0;
    for (const lib of p.libPackages) {
      if (brought.has(lib)) continue;
      brought.add(lib);
      n += fs.statSync(download(lib, libDebs)).size;
    }
    return n;
  });

  const head = ['package', 'tree MB', '.deb MB', '+lib .debs MB'];
  if (results.unseeded) head.push('unseeded MB', 'vs .deb+libs');
  if (results.seeded) head.push('seeded MB', 'vs .deb');
  const rows = [head];
  const tot = { tree: 0, deb: 0, lib: 0, un: 0, se: 0 };
  pkgs.forEach((p, i) => {
    const row = [p.name, MB(p.treeBytes), MB(p.debBytes), MB(libDebBytes[i])];
    tot.tree += p.treeBytes;
    tot.deb += p.debBytes;
    tot.lib += libDebBytes[i];
    if (results.unseeded) {
      const u = results.unseeded[i].receivedBytes;
      tot.un += u;
      row.push(MB(u), ratio(u, p.debBytes + libDebBytes[i]));
    }
    if (results.seeded) {
      const s = results.seeded[i].receivedBytes;
      tot.se += s;
      row.push(MB(s), ratio(s, p.debBytes));
    }
    rows.push(row);
  });
  const total = ['total', MB(tot.tree), MB(tot.deb), MB(tot.lib)];
  if (results.unseeded) total.push(MB(tot.un), ratio(tot.un, tot.deb + tot.lib));
  if (results.seeded) total.push(MB(tot.se), ratio(tot.se, tot.deb));
  rows.push(total);
  process.stdout.write(`Table 3: slinked packages fetched with \`slinkyfs get --dir\` (${o.codec} -${o.level}, ${o.batch} batches), bytes received on the wire\n`);
  process.stdout.write(table(rows) + '\n');
  process.stdout.write('targets: unseeded <= 1.30x the .deb plus library .debs an empty machine needs (paper: 1.34x); seeded from /usr/lib <= 1.00x the .deb\n');
  fs.writeFileSync(path.join(o.work, 'table3.json'), JSON.stringify({ options: o, packages: pkgs.map((p, i) => ({ ...p, libDebBytes: libDebBytes[i] })), results }, null, 2));
}

main().catch((e) => fail((e as Error).stack ?? String(e)));
