// The resolver against glibc's own loader. The oracle is the loader in trace mode (what `ldd`
// prints: LD_TRACE_LOADED_OBJECTS=1 ld.so PROGRAM), run on the program's real path, and LD_DEBUG for what it shows. Real
// programs from /usr/bin, and programs and libraries built with gcc here to pin down $ORIGIN,
// RPATH vs LD_LIBRARY_PATH vs RUNPATH, breadth-first order, class skipping and failures.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { readElf } from '../../src/elf/elfFile';
import { ElfFormatError, MissingLibraryError, UnsupportedElfError } from '../../src/elf/errors';
import { LDCACHE_FLAGS_X86_64_LIBC6, ldCacheTable, parseLdCache } from '../../src/elf/ldCache';
import { capabilitiesFromCpuinfo, resolveClosure, Resolver, type Closure } from '../../src/elf/resolve';

const execFileP = promisify(execFile);
const RTLD = '/lib64/ld-linux-x86-64.so.2';
// The oracle must not see the test runner's own loader settings.
const CLEAN_ENV = { PATH: '/usr/bin:/bin', LC_ALL: 'C' };

interface LoaderView {
  /** Real paths of the loaded libraries in load order, the interpreter excluded. */
  libraries: string[];
  /** Names the loader could not find. */
  notFound: string[];
  interpreter?: string;
}

function parseList(out: string, interpReal: string): LoaderView {
  const v: LoaderView = { libraries: [], notFound: [] };
  for (const raw of out.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('linux-vdso.so')) continue;
    let m = /^(\S+) => not found$/.exec(line);
    if (m) {
      v.notFound.push(m[1]);
      continue;
    }
    m = /^\S+ => (\S+) \(0x[0-9a-f]+\)$/.exec(line) ?? /^(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (!m) throw new Error(`unexpected loader output line: ${line}`);
    const real = realpathSync(m[1]);
    if (real === interpReal) v.interpreter = real;
    else v.libraries.push(real);
  }
  return v;
}

/** What `ldd file` shows, via the loader's trace mode (what ldd runs, without the shell script around it). */
async function loaderList(file: string, env: Record<string, string> = {}): Promise<LoaderView> {
  const real = realpathSync(file);
  const interp = (await readElf(real)).interpreter!;
  let out: string;
  try {
    out = (await execFileP(RTLD, [real], { env: { ...CLEAN_ENV, ...env, LD_TRACE_LOADED_OBJECTS: '1' }, encoding: 'utf8' })).stdout;
  } catch (e) {
    throw new Error(`${RTLD} ${real} in trace mode failed: ${(e as Error).message}`);
  }
  return parseList(out, realpathSync(interp));
}

function expectSameAsLoader(c: Closure, v: LoaderView): void {
  expect(v.notFound).toEqual([]);
  expect(c.libraries.map((l) => l.realPath)).toEqual(v.libraries);
  expect(c.interpreter.realPath).toBe(v.interpreter);
}

// ---------------------------------------------------------------------------------------------
describe('real programs from /usr/bin', () => {
  const resolver = new Resolver();
  const NAMED = ['ls', 'cat', 'sort', 'grep', 'sed', 'mawk', 'tar', 'gzip', 'find', 'diff', 'make', 'bash', 'perl', 'git', 'openssl', 'python3'];

  test.each(NAMED)('%s: same libraries in the same order and the same interpreter as the loader', async (name) => {
    const file = path.join('/usr/bin', name);
    const c = await resolver.resolveClosure(file);
    expectSameAsLoader(c, await loaderList(file));
    expect(c.program.path).toBe(file);
    expect(c.libraries.map((l) => l.realPath)).toContain(realpathSync('/lib/x86_64-linux-gnu/libc.so.6'));
  });

  test('ls: libraries list the loader in DT_NEEDED, and the loader is noted as the interpreter, not as a library', async () => {
    const c = await resolver.resolveClosure('/usr/bin/ls');
    const libc = c.libraries.find((l) => l.soname === 'libc.so.6')!;
    expect(libc.elf.needed).toContain('ld-linux-x86-64.so.2');
    expect(c.libraries.some((l) => l.realPath === c.interpreter.realPath)).toBe(false);
    expect(c.interpreter.path).toBe('/lib64/ld-linux-x86-64.so.2');
    // The first object in load order that asks for it is its requester, as for any library.
    const firstAsker = c.libraries.find((l) => l.elf.needed.includes('ld-linux-x86-64.so.2'))!;
    expect(c.interpreter.neededBy).toBe(firstAsker.path);
    expect(c.interpreterIndex).toBe(c.libraries.length);
    expect(c.libraries.map((l) => l.neededBy)[0]).toBe('/usr/bin/ls');
  });

  test('programs with DT_RPATH or DT_RUNPATH (and $ORIGIN) resolve as the loader resolves them', async () => {
    const withPaths: string[] = [];
    for (const n of readdirSync('/usr/bin').sort()) {
      const p = path.join('/usr/bin', n);
      try {
        const e = await readElf(p);
        if (e.interpreter && (e.rpath || e.runpath)) withPaths.push(p);
      } catch {
        // not an ELF file
      }
    }
    expect(withPaths.length).toBeGreaterThan(0);
    for (const p of withPaths.slice(0, 25)) {
      expectSameAsLoader(await resolver.resolveClosure(p), await loaderList(p));
    }
  });

  test('every program in /usr/bin and /usr/sbin: dynamic ones match the loader, the rest are refused with a reason', async () => {
    const files = [...new Set(['/usr/bin', '/usr/sbin'].flatMap((d) => readdirSync(d).map((n) => path.join(d, n))))]
      .filter((p) => {
        try {
          return statSync(p).isFile();
        } catch {
          return false;
        }
      })
      .sort();
    const fresh = new Resolver();
    const t0 = process.hrtime.bigint();
    const results = await Promise.all(files.map((f) => fresh.resolveClosure(f).catch((e: Error) => e)));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const dynamic = results.filter((r) => !(r instanceof Error)).length;
    console.log(`resolved ${files.length} files (${dynamic} dynamic programs) in ${ms.toFixed(0)} ms with one Resolver`);
    expect(dynamic).toBeGreaterThan(500);

    let i = 0;
    const worker = async () => {
      while (i < files.length) {
        const k = i++;
        const f = files[k];
        const r = results[k];
        if (r instanceof UnsupportedElfError) {
          if (r.reason === 'script' || r.reason === 'not-elf') continue;
          // The loader agrees it cannot run this as a dynamic program.
          const verify = spawnSync(RTLD, ['--verify', realpathSync(f)], { env: CLEAN_ENV });
          expect({ f, verify: verify.status }).not.toEqual({ f, verify: 0 });
          continue;
        }
        if (r instanceof Error) throw new Error(`${f}: ${r.name}: ${r.message}`);
        const v = await loaderList(f);
        expect({ f, libs: r.libraries.map((l) => l.realPath), interp: r.interpreter.realPath }).toEqual({ f, libs: v.libraries, interp: v.interpreter });
      }
    };
    await Promise.all([worker(), worker()]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('ld.so.cache', () => {
  test('our reader lists exactly the entries `ldconfig -p` prints, in order', () => {
    const entries = parseLdCache(readFileSync('/etc/ld.so.cache'));
    const printed = execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8', env: CLEAN_ENV })
      .split('\n')
      .slice(1)
      .filter((l) => l.includes('=>'))
      .map((l) => {
        const m = /^\s+(\S+) \(([^)]*)\) => (\S+)$/.exec(l)!;
        return { name: m[1], kind: m[2], path: m[3] };
      });
    expect(entries.map((e) => ({ name: e.name, path: e.path }))).toEqual(printed.map((p) => ({ name: p.name, path: p.path })));
    const x8664 = entries.filter((e) => e.flags === LDCACHE_FLAGS_X86_64_LIBC6);
    expect(x8664.length).toBe(printed.filter((p) => p.kind.startsWith('libc6,x86-64')).length);
  });

  test('the lookup table maps a name to its first x86-64 entry', () => {
    const entries = parseLdCache(readFileSync('/etc/ld.so.cache'));
    const table = ldCacheTable(entries, []);
    expect(table.get('libc.so.6')).toBe('/lib/x86_64-linux-gnu/libc.so.6');
    expect(table.size).toBe(new Set(entries.filter((e) => e.flags === LDCACHE_FLAGS_X86_64_LIBC6).map((e) => e.name)).size);
  });

  test('a glibc-hwcaps entry wins over the plain one only when its subdirectory is supported', () => {
    const entries = [
      { name: 'libh.so.1', path: '/x/libh.so.1', flags: LDCACHE_FLAGS_X86_64_LIBC6, hwcap: 0n },
      { name: 'libh.so.1', path: '/x/glibc-hwcaps/x86-64-v3/libh.so.1', flags: LDCACHE_FLAGS_X86_64_LIBC6, hwcap: (1n << 62n) | 1n, hwcapsSubdir: 'x86-64-v3' },
      { name: 'libh.so.1', path: '/x/glibc-hwcaps/x86-64-v2/libh.so.1', flags: LDCACHE_FLAGS_X86_64_LIBC6, hwcap: 1n << 62n, hwcapsSubdir: 'x86-64-v2' },
      { name: 'libh.so.1', path: '/x32/libh.so.1', flags: 0x0003, hwcap: 0n },
    ];
    expect(ldCacheTable(entries, ['x86-64-v3', 'x86-64-v2']).get('libh.so.1')).toBe('/x/glibc-hwcaps/x86-64-v3/libh.so.1');
    expect(ldCacheTable(entries, ['x86-64-v2']).get('libh.so.1')).toBe('/x/glibc-hwcaps/x86-64-v2/libh.so.1');
    expect(ldCacheTable(entries, []).get('libh.so.1')).toBe('/x/libh.so.1');
  });

  test('a file that is not a cache is a format error', () => {
    expect(() => parseLdCache(Buffer.from('not a cache at all, not at all'))).toThrow(ElfFormatError);
  });
});

// ---------------------------------------------------------------------------------------------
describe('the search path the loader builds for this CPU', () => {
  test('hwcap subdirectories are the ones LD_DEBUG=libs shows the loader trying, in the same order', async () => {
    const dir = '/nonexistent-slinky-dir';
    const r = spawnSync('/bin/true', [], { env: { ...CLEAN_ENV, LD_DEBUG: 'libs', LD_LIBRARY_PATH: dir }, encoding: 'utf8' });
    const line = r.stderr.split('\n').find((l) => l.includes('search path=') && l.includes('(LD_LIBRARY_PATH)'))!;
    const shown = /search path=(\S+)/.exec(line)![1].split(':');
    const subdirs = await new Resolver().searchSubdirs();
    expect(subdirs.map((s) => (dir + '/' + s).replace(/\/$/, ''))).toEqual(shown);
  });
});

// ---------------------------------------------------------------------------------------------
describe('generated programs and libraries', () => {
  let T: string;
  const caps = capabilitiesFromCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));

  function gcc(args: string[]): void {
    execFileSync('gcc', args, { cwd: T, stdio: ['ignore', 'ignore', 'pipe'] });
  }
  /** A shared library whose function `fn` calls each function in `calls`. */
  function lib(out: string, fn: string, opts: { soname?: string; deps?: string[]; calls?: string[]; extra?: string[] } = {}): string {
    const src = path.join(T, `${fn}-${path.basename(out)}.c`);
    const calls = opts.calls ?? [];
    writeFileSync(src, `${calls.map((c) => `int ${c}(void);`).join('')}int ${fn}(void){return 1${calls.map((c) => `+${c}()`).join('')};}\n`);
    mkdirSync(path.dirname(path.join(T, out)), { recursive: true });
    gcc(['-shared', '-fPIC', '-o', out, src, ...(opts.soname ? [`-Wl,-soname,${opts.soname}`] : []), '-Wl,--no-as-needed', ...(opts.deps ?? []), ...(opts.extra ?? [])]);
    return path.join(T, out);
  }
  function prog(out: string, calls: string[], link: string[]): string {
    const src = path.join(T, `${path.basename(out)}.c`);
    writeFileSync(src, `${calls.map((c) => `int ${c}(void);`).join('')}int main(void){return ${calls.length ? calls.map((c) => `${c}()`).join('+') : '0'} > 0 ? 0 : 1;}\n`);
    gcc(['-o', out, src, '-Wl,--no-as-needed', ...link]);
    return path.join(T, out);
  }
  const run = (file: string, env: Record<string, string> = {}) => spawnSync(file, [], { env: { ...CLEAN_ENV, ...env }, encoding: 'utf8' });

  beforeAll(() => {
    T = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'slinky-resolve-')));
    lib('lib/libb.so.1', 'b', { soname: 'libb.so.1' });
    lib('lib/liba.so.1', 'a', { soname: 'liba.so.1', deps: ['lib/libb.so.1'], calls: ['b'] });
    lib('p1/libv.so.1', 'v', { soname: 'libv.so.1' });
    lib('p2/libv.so.1', 'v', { soname: 'libv.so.1' });
    // Breadth-first versus depth-first: p1 -> q1 -> q2, p2 -> q2, p1.
    lib('o/libq2.so.1', 'q2', { soname: 'libq2.so.1' });
    lib('o/libq1.so.1', 'q1', { soname: 'libq1.so.1', deps: ['o/libq2.so.1'], calls: ['q2'] });
    lib('o/libp1.so.1', 'p1', { soname: 'libp1.so.1', deps: ['o/libq1.so.1'], calls: ['q1'] });
    lib('o/libp2.so.1', 'p2', { soname: 'libp2.so.1', deps: ['o/libq2.so.1', 'o/libp1.so.1'], calls: ['q2', 'p1'] });
  });
  afterAll(() => rmSync(T, { recursive: true, force: true }));

  test('$ORIGIN in DT_RPATH, and a library without RPATH finds its own dependency through the program\'s RPATH', async () => {
    const p = prog('prog_rpath', ['a'], ['lib/liba.so.1', `-Wl,-rpath-link,${T}/lib`, '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/lib']);
    const c = await resolveClosure(p);
    expect(c.program.elf.rpath).toEqual(['$ORIGIN/lib']);
    expect(c.libraries.map((l) => l.path)).toEqual([`${T}/lib/liba.so.1`, '/lib/x86_64-linux-gnu/libc.so.6', `${T}/lib/libb.so.1`]);
    expect(c.libraries[2].neededBy).toBe(`${T}/lib/liba.so.1`);
    expectSameAsLoader(c, await loaderList(p));
    expect(run(p).status).toBe(0);
  });

  test('DT_RUNPATH applies only to the object that has it: the same program with RUNPATH cannot find libb', async () => {
    const p = prog('prog_runpath', ['a'], ['lib/liba.so.1', `-Wl,-rpath-link,${T}/lib`, '-Wl,--enable-new-dtags', '-Wl,-rpath,$ORIGIN/lib']);
    expect((await readElf(p)).runpath).toEqual(['$ORIGIN/lib']);
    const err = await resolveClosure(p).catch((e: Error) => e);
    expect(err).toBeInstanceOf(MissingLibraryError);
    expect(err).toMatchObject({ soname: 'libb.so.1', neededBy: `${T}/lib/liba.so.1` });
    expect((err as Error).message).toBe(`libb.so.1 (needed by ${T}/lib/liba.so.1) not found`);
    expect((await loaderList(p)).notFound).toEqual(['libb.so.1']);
    expect(run(p).stderr).toContain('libb.so.1: cannot open shared object file');
  });

  test('DT_RPATH is inherited down the chain of loaders, and a RUNPATH on the requesting object turns all RPATHs off for its dependencies', async () => {
    lib('ch/deep/libk3.so.1', 'k3', { soname: 'libk3.so.1' });
    lib('ch/libk2.so.1', 'k2', { soname: 'libk2.so.1', deps: ['ch/deep/libk3.so.1'], calls: ['k3'] });
    lib('ch/libk1.so.1', 'k1', { soname: 'libk1.so.1', deps: ['ch/libk2.so.1'], calls: ['k2'], extra: ['-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/deep'] });
    const link = ['ch/libk1.so.1', `-Wl,-rpath-link,${T}/ch:${T}/ch/deep`, '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/ch'];
    const p = prog('prog_chain', ['k1'], link);
    const c = await resolveClosure(p);
    // libk2 has no RPATH: libk3 is found through libk1's, one loader up.
    expect(c.libraries.map((l) => [l.path, l.neededBy])).toEqual([
      [`${T}/ch/libk1.so.1`, p],
      ['/lib/x86_64-linux-gnu/libc.so.6', p],
      [`${T}/ch/libk2.so.1`, `${T}/ch/libk1.so.1`],
      [`${T}/ch/deep/libk3.so.1`, `${T}/ch/libk2.so.1`],
    ]);
    expectSameAsLoader(c, await loaderList(p));

    lib('ch/libk2.so.1', 'k2', { soname: 'libk2.so.1', deps: ['ch/deep/libk3.so.1'], calls: ['k3'], extra: ['-Wl,--enable-new-dtags', '-Wl,-rpath,/nonexistent-slinky'] });
    await expect(resolveClosure(p)).rejects.toThrow(new MissingLibraryError('libk3.so.1', `${T}/ch/libk2.so.1`));
    expect((await loaderList(p)).notFound).toEqual(['libk3.so.1']);
  });

  test('DT_RPATH is searched before LD_LIBRARY_PATH', async () => {
    const p = prog('prog_v_rpath', ['v'], ['p1/libv.so.1', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/p1']);
    const c = await resolveClosure(p, { ldLibraryPath: [`${T}/p2`] });
    expect(c.libraries[0].path).toBe(`${T}/p1/libv.so.1`);
    expectSameAsLoader(c, await loaderList(p, { LD_LIBRARY_PATH: `${T}/p2` }));
  });

  test('LD_LIBRARY_PATH (from options only) is searched before DT_RUNPATH', async () => {
    const p = prog('prog_v_runpath', ['v'], ['p1/libv.so.1', '-Wl,--enable-new-dtags', '-Wl,-rpath,$ORIGIN/p1']);
    const c = await resolveClosure(p, { ldLibraryPath: [`${T}/p2`] });
    expect(c.libraries[0].path).toBe(`${T}/p2/libv.so.1`);
    expectSameAsLoader(c, await loaderList(p, { LD_LIBRARY_PATH: `${T}/p2` }));
  });

  test('without options the user\'s LD_LIBRARY_PATH is ignored', async () => {
    const p = path.join(T, 'prog_v_runpath');
    const saved = process.env.LD_LIBRARY_PATH;
    process.env.LD_LIBRARY_PATH = `${T}/p2`;
    try {
      const c = await resolveClosure(p);
      expect(c.libraries[0].path).toBe(`${T}/p1/libv.so.1`);
    } finally {
      if (saved === undefined) delete process.env.LD_LIBRARY_PATH;
      else process.env.LD_LIBRARY_PATH = saved;
    }
  });

  test('libraries come in breadth-first DT_NEEDED order, first occurrence wins (checked against LD_DEBUG=files too)', async () => {
    const p = prog('prog_bfs', ['p1', 'p2'], ['o/libp1.so.1', 'o/libp2.so.1', `-Wl,-rpath-link,${T}/o`, '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/o']);
    const c = await resolveClosure(p);
    expect(c.libraries.map((l) => l.soname)).toEqual(['libp1.so.1', 'libp2.so.1', 'libc.so.6', 'libq1.so.1', 'libq2.so.1']);
    expectSameAsLoader(c, await loaderList(p));
    const debug = run(p, { LD_DEBUG: 'files' });
    expect(debug.status).toBe(0);
    const mapped = [...debug.stderr.matchAll(/file=(\S+) \[0\];\s+generating link map/g)].map((m) => m[1]);
    expect(mapped).toEqual(['libp1.so.1', 'libp2.so.1', 'libc.so.6', 'libq1.so.1', 'libq2.so.1']);
  });

  test('a library of the wrong class in an earlier directory is skipped, as the loader does', async () => {
    const src32 = path.join(T, 'w32.c');
    writeFileSync(src32, 'int w(void){return 1;}\n');
    mkdirSync(path.join(T, 'w32'));
    gcc(['-m32', '-nostdlib', '-shared', '-fPIC', '-o', 'w32/libw.so.1', src32, '-Wl,-soname,libw.so.1']);
    lib('w64/libw.so.1', 'w', { soname: 'libw.so.1' });
    const p = prog('prog_w', ['w'], ['w64/libw.so.1', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/w32:$ORIGIN/w64']);
    const c = await resolveClosure(p);
    expect(c.libraries[0].path).toBe(`${T}/w64/libw.so.1`);
    expectSameAsLoader(c, await loaderList(p));
  });

  test('a non-ELF file where a library is searched for is fatal, as it is for the loader', async () => {
    mkdirSync(path.join(T, 'bad'));
    // Longer than an ELF header, so the loader's complaint is the header, not the length.
    writeFileSync(path.join(T, 'bad/libv.so.1'), 'this is not a library, just text that is longer than sixty-four bytes\n');
    const p = prog('prog_bad', ['v'], ['p1/libv.so.1', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/bad:$ORIGIN/p1']);
    await expect(resolveClosure(p)).rejects.toMatchObject({ name: 'UnsupportedElfError', reason: 'not-elf' });
    const r = run(p);
    expect(r.status).toBe(127);
    expect(r.stderr).toContain('invalid ELF header');
  });

  test('a DT_NEEDED holding a path is opened as that path, without a search', async () => {
    const so = lib('nos/libnos.so', 'nos');
    const p = prog('prog_nos', ['nos'], [so]);
    expect((await readElf(p)).needed[0]).toBe(so);
    const c = await resolveClosure(p);
    expect(c.libraries[0].path).toBe(so);
    expect(c.libraries[0].soname).toBeUndefined();
    expectSameAsLoader(c, await loaderList(p));
  });

  test('one file reached under two names is loaded once (file identity)', async () => {
    lib('d/libdd.so.1', 'dd');
    symlinkSync('libdd.so.1', path.join(T, 'd/libdd-alias.so.1'));
    lib('d/libe.so.1', 'e', { soname: 'libe.so.1', deps: [`-L${T}/d`, '-l:libdd-alias.so.1'], calls: ['dd'] });
    const p = prog('prog_dd', ['dd', 'e'], [`-L${T}/d`, '-l:libdd.so.1', '-l:libe.so.1', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/d']);
    expect((await readElf(path.join(T, 'd/libe.so.1'))).needed[0]).toBe('libdd-alias.so.1');
    const c = await resolveClosure(p);
    const dd = c.libraries.filter((l) => l.realPath === `${T}/d/libdd.so.1`);
    expect(dd).toHaveLength(1);
    expect(dd[0].names.sort()).toEqual(['libdd-alias.so.1', 'libdd.so.1']);
    expectSameAsLoader(c, await loaderList(p));
  });

  test('$PLATFORM and $LIB expand as they do for the loader', async () => {
    lib(`${caps.platform}/lib/x86_64-linux-gnu/libz1.so.1`, 'z1', { soname: 'libz1.so.1' });
    const p = prog('prog_dst', ['z1'], [`${caps.platform}/lib/x86_64-linux-gnu/libz1.so.1`, '-Wl,--disable-new-dtags', '-Wl,-rpath,${ORIGIN}/$PLATFORM/$LIB']);
    const c = await resolveClosure(p);
    expect(c.libraries[0].path).toBe(`${T}/${caps.platform}/lib/x86_64-linux-gnu/libz1.so.1`);
    expectSameAsLoader(c, await loaderList(p));
  });

  test('a glibc-hwcaps subdirectory the CPU supports is preferred to the directory itself', async () => {
    lib('h/libh.so.1', 'h', { soname: 'libh.so.1' });
    const level = caps.glibcHwcaps[caps.glibcHwcaps.length - 1];
    if (level !== undefined) lib(`h/glibc-hwcaps/${level}/libh.so.1`, 'h', { soname: 'libh.so.1' });
    const p = prog('prog_h', ['h'], ['h/libh.so.1', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/h']);
    const c = await resolveClosure(p);
    expect(c.libraries[0].path).toBe(level === undefined ? `${T}/h/libh.so.1` : `${T}/h/glibc-hwcaps/${level}/libh.so.1`);
    expectSameAsLoader(c, await loaderList(p));
  });

  test('DT_FILTER filtees go ahead of their filter; a missing DT_AUXILIARY is ignored, a missing DT_FILTER is fatal', async () => {
    lib('f/libfiltee.so.1', 'f', { soname: 'libfiltee.so.1' });
    lib('f/libx.so.1', 'x', { soname: 'libx.so.1' });
    lib('f/libfilter.so.1', 'f', { soname: 'libfilter.so.1', deps: ['f/libx.so.1'], extra: ['-Wl,-F,libfiltee.so.1', '-Wl,-f,libnoaux.so.1'] });
    const filter = await readElf(path.join(T, 'f/libfilter.so.1'));
    expect(filter.filters).toEqual(['libfiltee.so.1']);
    expect(filter.auxiliary).toEqual(['libnoaux.so.1']);
    const p = prog('prog_filter', ['f'], ['f/libfilter.so.1', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/f']);
    const c = await resolveClosure(p);
    expect(c.libraries.map((l) => l.soname)).toEqual(['libfiltee.so.1', 'libfilter.so.1', 'libc.so.6', 'libx.so.1']);
    const v = await loaderList(p);
    // Trace mode lists the missing auxiliary object as "not found"; a real run ignores it.
    expect(v.notFound).toEqual(['libnoaux.so.1']);
    expect(c.libraries.map((l) => l.realPath)).toEqual(v.libraries);
    expect(run(p).status).toBe(0);

    lib('f/libfilter2.so.1', 'f', { soname: 'libfilter2.so.1', extra: ['-Wl,-F,libnofiltee.so.1'] });
    const p2 = prog('prog_filter2', ['f'], ['f/libfilter2.so.1', '-Wl,--disable-new-dtags', '-Wl,-rpath,$ORIGIN/f']);
    await expect(resolveClosure(p2)).rejects.toThrow(new MissingLibraryError('libnofiltee.so.1', `${T}/f/libfilter2.so.1`));
    expect(run(p2).status).toBe(127);
  });

  test('-z nodefaultlib keeps the cache and the system directories out of the search', async () => {
    const p = prog('prog_nodeflib', [], ['-Wl,-z,nodefaultlib']);
    await expect(resolveClosure(p)).rejects.toThrow(new MissingLibraryError('libc.so.6', p));
    expect((await loaderList(p)).notFound).toEqual(['libc.so.6']);
  });

  test('a library deleted after linking is reported missing, naming it and the program that needs it', async () => {
    lib('gone/libgone.so.1', 'gone', { soname: 'libgone.so.1' });
    const p = prog('prog_gone', ['gone'], ['gone/libgone.so.1', '-Wl,-rpath,$ORIGIN/gone']);
    rmSync(path.join(T, 'gone/libgone.so.1'));
    const err = await resolveClosure(p).catch((e: Error) => e);
    expect(err).toBeInstanceOf(MissingLibraryError);
    expect((err as Error).message).toBe(`libgone.so.1 (needed by ${p}) not found`);
  });

  test('a static program and a script are refused with their reason', async () => {
    await expect(resolveClosure('/sbin/ldconfig')).rejects.toMatchObject({ name: 'UnsupportedElfError', reason: 'static' });
    const sh = path.join(T, 'script');
    writeFileSync(sh, '#!/bin/sh\nexit 0\n');
    chmodSync(sh, 0o755);
    await expect(resolveClosure(sh)).rejects.toThrow(new UnsupportedElfError(`${sh} is a script (#!/bin/sh)`, 'script'));
  });

  test('under a sysroot every path, absolute symlinks included, is looked up inside it', async () => {
    const root = path.join(T, 'root');
    const host = await resolveClosure('/usr/bin/ls');
    const place = (inRoot: string, from: string) => {
      mkdirSync(path.dirname(path.join(root, inRoot)), { recursive: true });
      copyFileSync(from, path.join(root, inRoot));
    };
    place('/usr/bin/ls', '/usr/bin/ls');
    for (const l of host.libraries) place(path.join('/usr/lib/x86_64-linux-gnu', path.basename(l.path)), l.realPath);
    place('/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', host.interpreter.realPath);
    // Debian's layout: /lib a relative link, /lib64/ld-linux an absolute one that must stay in the root.
    symlinkSync('usr/lib', path.join(root, 'lib'));
    mkdirSync(path.join(root, 'lib64'));
    symlinkSync('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', path.join(root, 'lib64/ld-linux-x86-64.so.2'));
    const c = await resolveClosure('/usr/bin/ls', { root });
    expect(c.program.realPath).toBe(`${root}/usr/bin/ls`);
    expect(c.interpreter.path).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(c.interpreter.realPath).toBe(`${root}/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`);
    // No ld.so.cache in the root: found in the first system directory, /lib/x86_64-linux-gnu.
    expect(c.libraries.map((l) => l.path)).toEqual(host.libraries.map((l) => `/lib/x86_64-linux-gnu/${path.basename(l.path)}`));
    expect(c.libraries.map((l) => l.realPath)).toEqual(host.libraries.map((l) => `${root}/usr/lib/x86_64-linux-gnu/${path.basename(l.path)}`));
  });
});
