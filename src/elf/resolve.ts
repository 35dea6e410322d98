// Dependency resolution exactly as glibc 2.36's dynamic loader does it at program start (Debian
// x86-64): which files a program's DT_NEEDED closure maps to, and in which order. The model
// follows elf/dl-load.c (_dl_map_object, open_path, open_verify, DST expansion) and elf/dl-deps.c
// (_dl_map_object_deps: the breadth-first search list), written from scratch.
//
// Choices that are deliberate:
// - The search never reads the caller's environment: LD_LIBRARY_PATH comes only from options.
// - $ORIGIN of the program is the directory of its real path, as the kernel/loader see it after
//   execve (/proc/self/exe). (`ldd prog` runs the loader on the path as given, so for a program
//   reached through a symlink into another directory ldd may differ; a plain execve does not.)
// - The glibc-hwcaps subdirectories and legacy hwcap subdirectories, and $PLATFORM, depend on
//   the CPU as they do for the loader; they are computed from /proc/cpuinfo unless given.
import { constants } from 'node:fs';
import { open, readFile, realpath, stat, lstat, readlink } from 'node:fs/promises';
import path from 'node:path';
import { readElfFromHandle, type ElfFile, DF_1_NODEFLIB, DT_AUXILIARY, DT_FILTER, DT_NEEDED } from './elfFile';
import { ElfFormatError, MissingLibraryError, UnsupportedElfError } from './errors';
import { ldCacheTable, readLdCache } from './ldCache';

export interface LoadedObject {
  /** The path as the loader names it (inside `root`): the search candidate that matched, or the program/interpreter path. */
  path: string;
  /** The host path of the file with every symlink resolved (inside `root`, then prefixed with it). */
  realPath: string;
  soname?: string;
  elf: ElfFile;
  size: number;
  /** The path of the object whose DT_NEEDED first pulled this one in (glibc's l_loader). */
  neededBy?: string;
  /** The names this object was requested under or matched by (DT_NEEDED strings, SONAME). */
  names: string[];
  /** File identity on the host, "dev:ino": equal identities are one object to the loader. */
  identity: string;
}

export interface Closure {
  program: LoadedObject;
  interpreter: LoadedObject;
  /** In the order glibc loads them: breadth-first over DT_NEEDED, first occurrence wins, de-duplicated by name/SONAME and by file identity. Excludes the program and the interpreter. */
  libraries: LoadedObject[];
  /** Where the interpreter stands in the loader's search list when some object lists it in DT_NEEDED: the index in `libraries` it would be inserted at. */
  interpreterIndex?: number;
}

export interface ResolveOptions {
  /** Sysroot prefix; every path the loader would see is looked up inside it. Default '/'. */
  root?: string;
  /** Directories as LD_LIBRARY_PATH would give them. Default none: slink must not depend on the user's environment. */
  ldLibraryPath?: string[];
  /** Supported glibc-hwcaps subdirectories, most preferred first (e.g. ["x86-64-v3", "x86-64-v2"]). Default: from the CPU. */
  glibcHwcaps?: string[];
  /** Legacy hwcap subdirectories searched under every directory (glibc 2.36 still does), most specific first, without the final "". Default: from the CPU. */
  legacyHwcapDirs?: string[];
  /** The value of $PLATFORM. Default: from the CPU ("x86_64", or "haswell"/"xeon_phi" on Intel parts glibc 2.36 names so). */
  platform?: string;
  /** The loader's built-in default directories. Default: Debian's x86-64 glibc ones. */
  systemDirs?: string[];
  /** Consult /etc/ld.so.cache (inside root). Default true. */
  useLdCache?: boolean;
}

/** The directories Debian's glibc 2.36 loader searches last (`ld.so --help`, "system search path"). */
export const DEBIAN_SYSTEM_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib', '/usr/lib'];
/** $LIB on Debian x86-64. */
export const DST_LIB = 'lib/x86_64-linux-gnu';
const VDSO_SONAME = 'linux-vdso.so.1';
const MAX_SYMLINKS = 40;

export interface HostCapabilities {
  glibcHwcaps: string[];
  legacyHwcapDirs: string[];
  platform: string;
}

/**
 * What glibc 2.36 derives from the CPU on x86-64: the supported glibc-hwcaps levels, $PLATFORM
 * and the legacy subdirectories (combinations of "tls", the hwcap names and the platform).
 */
export function capabilitiesFromCpuinfo(cpuinfo: string): HostCapabilities {
  const flagsLine = /^flags\s*:(.*)$/m.exec(cpuinfo);
  const flags = new Set((flagsLine?.[1] ?? '').trim().split(/\s+/));
  const vendor = /^vendor_id\s*:\s*(\S+)/m.exec(cpuinfo)?.[1] ?? '';
  const all = (...f: string[]) => f.every((x) => flags.has(x));
  const v2 = all('cx16', 'lahf_lm', 'popcnt', 'pni', 'sse4_1', 'sse4_2', 'ssse3');
  const v3 = v2 && all('avx', 'avx2', 'bmi1', 'bmi2', 'f16c', 'fma', 'abm', 'movbe', 'xsave');
  const v4 = v3 && all('avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl');
  const glibcHwcaps = [v4 && 'x86-64-v4', v3 && 'x86-64-v3', v2 && 'x86-64-v2'].filter((x): x is string => !!x);
  let platform = 'x86_64';
  const hwcapNames = ['x86_64'];
  if (vendor === 'GenuineIntel') {
    if (flags.has('avx512cd')) {
      if (flags.has('avx512er')) {
        if (flags.has('avx512pf')) platform = 'xeon_phi';
      } else if (all('avx512bw', 'avx512dq', 'avx512vl')) {
        hwcapNames.push('avx512_1');
      }
    }
    if (platform === 'x86_64' && all('avx2', 'fma', 'bmi1', 'bmi2', 'abm', 'movbe', 'popcnt')) platform = 'haswell';
  }
  // Every subset of [tls, platform, hwcap names from the highest bit down], largest first, the
  // first component most significant: glibc lists the hwcap names by bit, then the platform, then
  // "tls", and builds each directory from that list backwards (tls/haswell/avx512_1/x86_64 first).
  const parts = ['tls', platform, ...[...hwcapNames].reverse()];
  const legacyHwcapDirs: string[] = [];
  for (let mask = (1 << parts.length) - 1; mask > 0; mask--) {
    const picked = parts.filter((_, i) => (mask & (1 << (parts.length - 1 - i))) !== 0);
    legacyHwcapDirs.push(picked.join('/'));
  }
  return { glibcHwcaps, legacyHwcapDirs, platform };
}

const ABSENT_CODES = new Set(['ENOENT', 'ENOTDIR', 'EACCES', 'ELOOP', 'ENAMETOOLONG']);

/** A counting semaphore. */
class Slots {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

type Probe = { kind: 'absent' } | { kind: 'skip'; error: UnsupportedElfError } | { kind: 'found'; file: FileRec };

interface FileRec {
  realPath: string;
  identity: string;
  size: number;
  elf: ElfFile;
}

/** One object in the simulated namespace (glibc's link_map). */
interface Obj {
  /** l_name: '' for the program, as when it is exec'd. */
  lname: string;
  path: string;
  names: string[];
  soname?: string;
  sonameAdded: boolean;
  file?: FileRec;
  loader?: Obj;
  origin: string;
  kind: 'program' | 'interpreter' | 'vdso' | 'library';
  neededBy?: string;
}

/** Caches parsed files and directory lookups; reuse one instance to resolve many programs. */
export class Resolver {
  private readonly root: string;
  private readonly probes = new Map<string, Promise<Probe>>();
  private readonly dirs = new Map<string, Promise<boolean>>();
  private caps?: Promise<HostCapabilities>;
  /** Resolving a whole directory at once must not run out of file descriptors. */
  private readonly openSlots = new Slots(64);
  private cache?: Promise<Map<string, string>>;

  constructor(private readonly opts: ResolveOptions = {}) {
    this.root = path.resolve(opts.root ?? '/');
  }

  private capabilities(): Promise<HostCapabilities> {
    this.caps ??= (async () => {
      const o = this.opts;
      let detected: HostCapabilities | undefined;
      if (!o.glibcHwcaps || !o.legacyHwcapDirs || !o.platform) {
        detected = capabilitiesFromCpuinfo(await readFile('/proc/cpuinfo', 'utf8').catch(() => ''));
      }
      return {
        glibcHwcaps: o.glibcHwcaps ?? detected!.glibcHwcaps,
        legacyHwcapDirs: o.legacyHwcapDirs ?? detected!.legacyHwcapDirs,
        platform: o.platform ?? detected!.platform,
      };
    })();
    return this.caps;
  }

  /** The subdirectories tried under each search directory, in order, each ending in '/' (the last is ''). */
  async searchSubdirs(): Promise<string[]> {
    const c = await this.capabilities();
    return [...c.glibcHwcaps.map((h) => `glibc-hwcaps/${h}/`), ...c.legacyHwcapDirs.map((d) => d + '/'), ''];
  }

  private ldCache(): Promise<Map<string, string>> {
    this.cache ??= (async () => {
      if (this.opts.useLdCache === false) return new Map<string, string>();
      const caps = await this.capabilities();
      const host = await this.hostPath('/etc/ld.so.cache');
      const entries = host === undefined ? [] : await readLdCache(host);
      return ldCacheTable(entries, caps.glibcHwcaps);
    })();
    return this.cache;
  }

  /** The host path for an absolute in-root path, following symlinks inside the root; undefined if it does not resolve. */
  private async hostPath(p: string): Promise<string | undefined> {
    if (this.root === '/') return p;
    const resolved = await this.resolveInRoot(p);
    return resolved === undefined ? undefined : path.join(this.root, resolved);
  }

  /** chroot-style resolution of an absolute path inside the root. */
  private async resolveInRoot(p: string): Promise<string | undefined> {
    const pending = p.split('/').filter((s) => s !== '' && s !== '.');
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '..') {
        done.pop();
        continue;
      }
      const host = path.join(this.root, ...done, part);
      let st;
      try {
        st = await lstat(host);
      } catch {
        return undefined;
      }
      if (st.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) return undefined;
        const target = await readlink(host);
        if (target.startsWith('/')) done.length = 0;
        pending.unshift(...target.split('/').filter((s) => s !== '' && s !== '.'));
      } else {
        done.push(part);
      }
    }
    return '/' + done.join('/');
  }

  /**
   * An in-root path made absolute the way the loader would (relative names are taken from the
   * current directory, or from the root's top under a sysroot). Not normalized: glibc keeps
   * "dir/../lib" as written in l_name and $ORIGIN, and symlinks make that differ from "lib".
   */
  private absolute(p: string): string {
    if (p.startsWith('/')) return p;
    const cwd = this.root === '/' ? process.cwd() : '/';
    return cwd.endsWith('/') ? cwd + p : cwd + '/' + p;
  }

  private dirExists(dir: string): Promise<boolean> {
    let r = this.dirs.get(dir);
    if (!r) {
      r = (async () => {
        const host = await this.hostPath(this.absolute(dir === '' ? '.' : dir));
        if (host === undefined) return false;
        try {
          return (await stat(host)).isDirectory();
        } catch {
          return false;
        }
      })();
      this.dirs.set(dir, r);
    }
    return r;
  }

  /**
   * glibc's open_verify on one candidate: absent (keep searching), skipped (another ELF class or
   * machine: keep searching), or found. Anything else wrong with an existing file is fatal, as
   * for the loader ("invalid ELF header", "only ET_DYN and ET_EXEC can be loaded", ...).
   */
  private probe(candidate: string): Promise<Probe> {
    const abs = this.absolute(candidate);
    let r = this.probes.get(abs);
    if (!r) {
      r = this.probeUncached(abs);
      this.probes.set(abs, r);
    }
    return r;
  }

  private async probeUncached(abs: string): Promise<Probe> {
    const host = await this.hostPath(abs);
    if (host === undefined) return { kind: 'absent' };
    await this.openSlots.acquire();
    let fh;
    try {
      // O_NONBLOCK: a FIFO in a search directory must not hang the search.
      fh = await open(host, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      this.openSlots.release();
      // The loader goes on past names that do not resolve to a readable file. Anything else
      // (EMFILE, EIO) is our problem, not an answer: treating it as "absent" would give a wrong closure.
      if (ABSENT_CODES.has((e as NodeJS.ErrnoException).code ?? '')) return { kind: 'absent' };
      throw e;
    }
    try {
      const st = await fh.stat({ bigint: true });
      if (st.isDirectory()) throw new ElfFormatError(`${abs}: cannot read file data: Is a directory`);
      if (!st.isFile()) throw new ElfFormatError(`${abs}: not a regular file`);
      let elf: ElfFile;
      try {
        elf = await readElfFromHandle(fh, Number(st.size), abs);
      } catch (e) {
        if (e instanceof UnsupportedElfError && (e.reason === 'class' || e.reason === 'machine')) return { kind: 'skip', error: e };
        throw e;
      }
      if (elf.type !== 'dyn' && elf.type !== 'exec') {
        throw new UnsupportedElfError(`${abs}: only ET_DYN and ET_EXEC can be loaded (it is ${elf.type})`, 'type');
      }
      const realPath = this.root === '/' ? await realpath(host) : host;
      return { kind: 'found', file: { realPath, identity: `${st.dev}:${st.ino}`, size: Number(st.size), elf } };
    } finally {
      await fh.close();
      this.openSlots.release();
    }
  }

  async resolveClosure(programPath: string): Promise<Closure> {
    return new Run(this, await this.capabilities()).resolve(programPath);
  }

  // Internal services for Run.
  /** @internal */ _probe(p: string) {
    return this.probe(p);
  }
  /** @internal */ _dirExists(d: string) {
    return this.dirExists(d);
  }
  /** @internal */ _ldCache() {
    return this.ldCache();
  }
  /** @internal */ _absolute(p: string) {
    return this.absolute(p);
  }
  /** @internal */ async _realInRoot(p: string): Promise<string> {
    const abs = this.absolute(p);
    if (this.root === '/') return realpath(abs);
    return (await this.resolveInRoot(abs)) ?? abs;
  }
  /** @internal */ get _opts() {
    return this.opts;
  }
  /** @internal */ get _root() {
    return this.root;
  }
}

/** One program's resolution: the simulated namespace and the breadth-first search list. */
class Run {
  private readonly loaded: Obj[] = [];
  private main!: Obj;
  private subdirs: string[];

  constructor(
    private readonly r: Resolver,
    private readonly caps: HostCapabilities,
  ) {
    this.subdirs = [...caps.glibcHwcaps.map((h) => `glibc-hwcaps/${h}/`), ...caps.legacyHwcapDirs.map((d) => d + '/'), ''];
  }

  async resolve(programPath: string): Promise<Closure> {
    const progAbs = this.r._root === '/' ? path.resolve(programPath) : path.posix.resolve('/', programPath);
    const prog = await this.r._probe(progAbs);
    if (prog.kind === 'absent') {
      const err: NodeJS.ErrnoException = new Error(`${programPath}: no such file or not readable`);
      err.code = 'ENOENT';
      throw err;
    }
    if (prog.kind === 'skip') throw prog.error;
    const pelf = prog.file.elf;
    if (pelf.interpreter === undefined) {
      if (pelf.isStatic) throw new UnsupportedElfError(`${progAbs} is statically linked`, 'static');
      throw new UnsupportedElfError(`${progAbs} has no program interpreter (PT_INTERP)`, 'type');
    }
    // The kernel hands the loader /proc/self/exe: $ORIGIN is the real directory.
    const progReal = await this.r._realInRoot(progAbs);
    this.main = {
      lname: '',
      path: progAbs,
      names: [''],
      soname: pelf.soname,
      sonameAdded: false,
      file: prog.file,
      origin: path.posix.dirname(progReal),
      kind: 'program',
    };
    this.loaded.push(this.main);

    const interpName = pelf.interpreter;
    const interpProbe = await this.r._probe(interpName);
    if (interpProbe.kind === 'skip') throw interpProbe.error;
    if (interpProbe.kind !== 'found') throw new MissingLibraryError(interpName, progAbs);
    const interp: Obj = {
      lname: interpName,
      path: this.r._absolute(interpName),
      names: [interpName],
      soname: interpProbe.file.elf.soname,
      sonameAdded: false,
      file: interpProbe.file,
      origin: path.posix.dirname(this.r._absolute(interpName)),
      kind: 'interpreter',
    };
    this.loaded.push(interp);
    this.loaded.push({ lname: VDSO_SONAME, path: VDSO_SONAME, names: [VDSO_SONAME], sonameAdded: true, origin: '', kind: 'vdso' });

    const list = await this.searchList();
    const libs = list.filter((o) => o.kind === 'library');
    const interpPos = list.indexOf(interp);
    return {
      program: this.toLoaded(this.main),
      interpreter: this.toLoaded(interp),
      libraries: libs.map((o) => this.toLoaded(o)),
      interpreterIndex: interpPos < 0 ? undefined : list.slice(0, interpPos).filter((o) => o.kind === 'library').length,
    };
  }

  private toLoaded(o: Obj): LoadedObject {
    const f = o.file!;
    return {
      path: o.path,
      realPath: f.realPath,
      soname: f.elf.soname,
      elf: f.elf,
      size: f.size,
      neededBy: o.neededBy,
      names: [...o.names],
      identity: f.identity,
    };
  }

  /** _dl_map_object_deps: the breadth-first search list starting at the program. */
  private async searchList(): Promise<Obj[]> {
    const known: Obj[] = [this.main];
    const done: boolean[] = [false];
    const reserved = new Set<Obj>([this.main]);
    let i = 0;
    while (i < known.length) {
      const l = known[i];
      done[i] = true;
      let insertAt = i;
      const deps = l.file?.elf.deps ?? [];
      for (const d of deps) {
        const name = this.expandDst(l, d.name);
        if (name === '') continue; // an empty DST substitution is skipped, as in dl-deps.c
        if (d.tag === DT_NEEDED) {
          const dep = await this.mapObject(l, name, true);
          if (!dep) continue;
          if (!reserved.has(dep)) {
            known.push(dep);
            done.push(false);
            reserved.add(dep);
          }
        } else if (d.tag === DT_FILTER || d.tag === DT_AUXILIARY) {
          // Filtees go into the search list ahead of the filter object itself.
          const aux = await this.mapObject(l, name, d.tag === DT_FILTER);
          if (!aux) continue;
          if (reserved.has(aux)) {
            const at = known.indexOf(aux);
            if (at > insertAt) {
              known.splice(at, 1);
              done.splice(at, 1);
              known.splice(insertAt, 0, aux);
              done.splice(insertAt, 0, false);
              insertAt++;
            }
          } else {
            known.splice(insertAt, 0, aux);
            done.splice(insertAt, 0, false);
            reserved.add(aux);
            insertAt++;
          }
        }
      }
      while (i < known.length && done[i]) i++;
    }
    return known;
  }

  /** _dl_map_object: an already loaded object matching the name, else a search. Returns undefined only for a missing DT_AUXILIARY. */
  private async mapObject(loader: Obj, name: string, required: boolean): Promise<Obj | undefined> {
    for (const o of this.loaded) {
      let match = o.lname === name || o.names.includes(name);
      if (!match && !o.sonameAdded && o.soname !== undefined && o.soname === name) {
        o.names.push(name);
        o.sonameAdded = true;
        match = true;
      }
      if (match) {
        if (o.kind === 'interpreter' && o.neededBy === undefined) o.neededBy = loader.path;
        return o;
      }
    }
    const found = name.includes('/') ? await this.openPathName(loader, name) : await this.search(loader, name);
    if (!found) {
      if (!required) return undefined;
      throw new MissingLibraryError(name, loader.path);
    }
    const same = this.loaded.find((o) => o.file?.identity === found.file.identity);
    if (same) {
      if (!same.names.includes(name)) same.names.push(name);
      if (same.kind === 'interpreter' && same.neededBy === undefined) same.neededBy = loader.path;
      return same;
    }
    const abs = this.r._absolute(found.realname);
    const obj: Obj = {
      lname: found.realname,
      path: abs,
      names: [name],
      soname: found.file.elf.soname,
      sonameAdded: false,
      file: found.file,
      loader,
      origin: path.posix.dirname(abs),
      kind: 'library',
      neededBy: loader.path,
    };
    this.loaded.push(obj);
    return obj;
  }

  private async openPathName(loader: Obj, name: string): Promise<{ realname: string; file: FileRec } | undefined> {
    const realname = this.expandDst(loader, name);
    if (realname === '') return undefined;
    const p = await this.r._probe(realname);
    return p.kind === 'found' ? { realname, file: p.file } : undefined;
  }

  /** The search order of _dl_map_object for a name without '/'. */
  private async search(loader: Obj, name: string): Promise<{ realname: string; file: FileRec } | undefined> {
    const opts = this.r._opts;
    const main = this.main;
    let hit: { realname: string; file: FileRec } | undefined;
    if (loader.file?.elf.runpath === undefined) {
      let didMain = false;
      for (let l: Obj | undefined = loader; l; l = l.loader) {
        const dirs = this.pathDirs(l, l.file?.elf.rpath);
        if (dirs) {
          hit = await this.openPath(name, dirs);
          if (hit) return hit;
          didMain ||= l === main;
        }
      }
      if (!didMain) {
        const dirs = this.pathDirs(main, main.file?.elf.rpath);
        if (dirs) {
          hit = await this.openPath(name, dirs);
          if (hit) return hit;
        }
      }
    }
    if (opts.ldLibraryPath && opts.ldLibraryPath.length > 0) {
      const dirs = this.pathDirs(main, opts.ldLibraryPath);
      if (dirs) {
        hit = await this.openPath(name, dirs);
        if (hit) return hit;
      }
    }
    const runDirs = this.pathDirs(loader, loader.file?.elf.runpath);
    if (runDirs) {
      hit = await this.openPath(name, runDirs);
      if (hit) return hit;
    }
    const systemDirs = opts.systemDirs ?? DEBIAN_SYSTEM_DIRS;
    const nodeflib = ((loader.file?.elf.flags1 ?? 0) & DF_1_NODEFLIB) !== 0;
    const cached = (await this.r._ldCache()).get(name);
    if (cached !== undefined) {
      const inSystemDir = systemDirs.some((d) => cached.startsWith(d.endsWith('/') ? d : d + '/'));
      if (!(nodeflib && inSystemDir)) {
        const p = await this.r._probe(cached);
        if (p.kind === 'found') return { realname: cached, file: p.file };
      }
    }
    if (!nodeflib) {
      hit = await this.openPath(name, this.normalizeDirs(systemDirs));
      if (hit) return hit;
    }
    return undefined;
  }

  /** fillin_rpath: DST expansion, empty-element and trailing-slash handling of a path list; undefined when there is none. */
  private pathDirs(l: Obj, elements: string[] | undefined): string[] | undefined {
    if (elements === undefined || elements.length === 0) return undefined;
    const out: string[] = [];
    for (const el of elements) {
      let dir: string;
      if (el === '') {
        dir = '';
      } else {
        const x = this.expandDst(l, el);
        if (x === '') continue;
        dir = x.replace(/\/+$/, '');
        dir = dir === '' ? '/' : dir + '/';
      }
      if (!out.includes(dir)) out.push(dir);
    }
    return out.length > 0 ? out : undefined;
  }

  private normalizeDirs(dirs: string[]): string[] {
    return dirs.map((d) => (d.endsWith('/') ? d : d + '/'));
  }

  /** open_path: every directory, and in each every hwcap subdirectory, in order. */
  private async openPath(name: string, dirs: string[]): Promise<{ realname: string; file: FileRec } | undefined> {
    for (const dir of dirs) {
      for (const sub of this.subdirs) {
        const d = dir + sub;
        if (d !== '' && !(await this.r._dirExists(d))) continue;
        const candidate = d + name;
        const p = await this.r._probe(candidate);
        if (p.kind === 'found') return { realname: candidate, file: p.file };
      }
    }
    return undefined;
  }

  /** _dl_dst_substitute: $ORIGIN, $PLATFORM, $LIB (and the ${...} forms); '' when a token has no value. */
  private expandDst(l: Obj, input: string): string {
    if (!input.includes('$')) return input;
    let out = '';
    let i = 0;
    while (i < input.length) {
      const c = input[i];
      if (c !== '$') {
        out += c;
        i++;
        continue;
      }
      const rest = input.slice(i + 1);
      const tok = this.matchDst(rest);
      if (!tok) {
        out += '$';
        i++;
        continue;
      }
      const value = tok.name === 'ORIGIN' ? l.origin : tok.name === 'PLATFORM' ? this.caps.platform : DST_LIB;
      if (value === '') return '';
      out += value;
      i += 1 + tok.len;
    }
    return out;
  }

  private matchDst(s: string): { name: string; len: number } | undefined {
    for (const name of ['ORIGIN', 'PLATFORM', 'LIB']) {
      if (s.startsWith('{' + name + '}')) return { name, len: name.length + 2 };
      if (s.startsWith(name) && !/^[A-Za-z0-9_]/.test(s.slice(name.length))) return { name, len: name.length };
    }
    return undefined;
  }
}

/** Resolves one program with a fresh resolver (no cache shared with other calls). */
export async function resolveClosure(programPath: string, opts?: ResolveOptions): Promise<Closure> {
  return new Resolver(opts).resolveClosure(programPath);
}
