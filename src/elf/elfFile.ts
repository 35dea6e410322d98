// Our own reader for 64-bit little-endian x86-64 ELF files: the header, the program headers,
// the dynamic section (DT_NEEDED, SONAME, RPATH/RUNPATH, flags) and, when they are sane, the
// section headers. Input is treated as hostile: every offset and count is checked against the
// file size before use, so malformed input ends in ElfFormatError or UnsupportedElfError and
// never in a RangeError, a hang or a huge allocation.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { ElfFormatError, UnsupportedElfError } from './errors';

export const ET_NONE = 0;
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;

export const EM_386 = 3;
export const EM_X86_64 = 62;

export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;
export const ELFOSABI_SYSV = 0;
export const ELFOSABI_GNU = 3;

export const PT_NULL = 0;
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_NOTE = 4;
export const PT_SHLIB = 5;
export const PT_PHDR = 6;
export const PT_TLS = 7;
export const PT_GNU_EH_FRAME = 0x6474e550;
export const PT_GNU_STACK = 0x6474e551;
export const PT_GNU_RELRO = 0x6474e552;
export const PT_GNU_PROPERTY = 0x6474e553;

export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

export const DT_NULL = 0;
export const DT_NEEDED = 1;
export const DT_STRTAB = 5;
export const DT_STRSZ = 10;
export const DT_SONAME = 14;
export const DT_RPATH = 15;
export const DT_RUNPATH = 29;
export const DT_FLAGS = 30;
export const DT_FLAGS_1 = 0x6ffffffb;
export const DT_AUXILIARY = 0x7ffffffd;
export const DT_FILTER = 0x7fffffff;

export const DF_1_NODEFLIB = 0x00000800;
export const DF_1_PIE = 0x08000000;

export const SHT_NULL = 0;
export const SHT_NOBITS = 8;

export const EHDR_SIZE = 64;
export const PHDR_SIZE = 56;
export const SHDR_SIZE = 64;
const DYN_SIZE = 16;
const PN_XNUM = 0xffff;
const SHN_XINDEX = 0xffff;
/** Longest string we accept from a string table: glibc has no limit, but PATH_MAX is a sane one and it bounds the work per string. */
const MAX_STRING = 4096;
/** A section-name table bigger than this is not sane. */
const MAX_SHSTRTAB = 1 << 20;

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface SectionHeader {
  name: string;
  type: number;
  offset: number;
  size: number;
  addr: number;
  flags: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
}

export interface ElfFile {
  type: 'exec' | 'dyn' | 'rel' | 'core' | 'other';
  machine: number;
  osabi: number;
  entry: number;
  phoff: number;
  phentsize: number;
  phnum: number;
  shoff: number;
  shnum: number;
  programHeaders: ProgramHeader[];
  /** PT_INTERP: the program interpreter's path as written in the file. */
  interpreter?: string;
  /** Whether a PT_DYNAMIC segment exists. */
  dynamic: boolean;
  needed: string[];
  soname?: string;
  /** DT_RPATH split at ':' (empty elements kept: glibc reads them as the current directory). Absent when the file has DT_RUNPATH too, as glibc ignores it then. */
  rpath?: string[];
  /** DT_RUNPATH split at ':'. Present (even if empty) means RPATH is not consulted for this object's dependencies. */
  runpath?: string[];
  /** DT_FILTER / DT_AUXILIARY names, loaded by glibc ahead of the object itself. */
  filters: string[];
  auxiliary: string[];
  /** DT_NEEDED, DT_FILTER and DT_AUXILIARY entries in dynamic-section order, as the loader walks them. */
  deps: { tag: number; name: string }[];
  flags: number;
  flags1: number;
  isPie: boolean;
  isStatic: boolean;
  /** A shared object that is no program: no PT_INTERP, not marked PIE, and a SONAME or no entry
   *  point (a static PIE program has neither). libc.so.6, with its PT_INTERP, runs as a program. */
  isLibrary: boolean;
  loadSegments: ProgramHeader[];
  sections?: SectionHeader[];
}

/** Internal signal from the decoder to readElf: these bytes are in bounds but not read yet. */
class NeedBytes {
  constructor(
    readonly offset: number,
    readonly length: number,
  ) {}
}

interface ByteSource {
  readonly size: number;
  /** The bytes, or undefined when they have not been read (only in readElf's sparse source). */
  get(offset: number, length: number): Buffer | undefined;
}

const hex = (n: number) => '0x' + n.toString(16);

/** Decodes one ELF file from a source; every read is bounds-checked against source.size first. */
class Decoder {
  constructor(
    private readonly src: ByteSource,
    private readonly what: string,
  ) {}

  fail(message: string): never {
    throw new ElfFormatError(`${this.what}: ${message}`);
  }

  bytes(offset: number, length: number, desc: string): Buffer {
    const size = this.src.size;
    if (offset < 0 || length < 0 || offset > size || length > size - offset) {
      this.fail(`${desc} (offset ${hex(offset)}, ${length} bytes) extends past the end of the file (${size} bytes)`);
    }
    const b = this.src.get(offset, length);
    if (b === undefined) throw new NeedBytes(offset, length);
    return b;
  }

  /** A 64-bit field as a JS number; values past 2^53 are not addresses or sizes any real file has. */
  u64(b: Buffer, pos: number, desc: string): number {
    const lo = b.readUInt32LE(pos);
    const hi = b.readUInt32LE(pos + 4);
    if (hi >= 0x200000) this.fail(`${desc} ${hex(hi)}${lo.toString(16).padStart(8, '0')} is out of range`);
    return hi * 0x100000000 + lo;
  }

  /** A NUL-terminated string starting at `offset`, not running past `limit`. */
  cstring(offset: number, limit: number, desc: string): string {
    const avail = Math.min(limit - offset, MAX_STRING + 1);
    if (avail <= 0) this.fail(`${desc} at ${hex(offset)} starts outside its table`);
    const b = this.bytes(offset, avail, desc);
    const end = b.indexOf(0);
    if (end < 0) {
      this.fail(avail > MAX_STRING ? `${desc} at ${hex(offset)} is longer than ${MAX_STRING} bytes` : `${desc} at ${hex(offset)} is not NUL-terminated`);
    }
    return b.toString('utf8', 0, end);
  }

  decode(): ElfFile {
    const size = this.src.size;
    const what = this.what;
    const ident = this.bytes(0, Math.min(size, EHDR_SIZE), 'ELF header');
    if (ident.length >= 2 && ident[0] === 0x23 && ident[1] === 0x21) {
      const line = this.bytes(0, Math.min(size, 256), 'script line');
      const nl = line.indexOf(0x0a);
      const first = line.toString('utf8', 2, nl < 0 ? line.length : nl).trim();
      throw new UnsupportedElfError(`${what} is a script (#!${first})`, 'script');
    }
    if (ident.length < 4 || ident[0] !== 0x7f || ident[1] !== 0x45 || ident[2] !== 0x4c || ident[3] !== 0x46) {
      throw new UnsupportedElfError(`${what} is not an ELF file`, 'not-elf');
    }
    if (ident.length < 5) this.fail(`truncated ELF header (${size} bytes)`);
    const cls = ident[4];
    // Like glibc's loader, any class but ELFCLASS64 is "another class", not damage.
    if (cls === ELFCLASS32) throw new UnsupportedElfError(`${what} is a 32-bit ELF file (ELFCLASS32), not x86-64`, 'class');
    if (cls !== ELFCLASS64) throw new UnsupportedElfError(`${what} has ELF class ${cls}, not ELFCLASS64`, 'class');
    if (ident.length < 6) this.fail(`truncated ELF header (${size} bytes)`);
    const data = ident[5];
    if (data === ELFDATA2MSB) throw new UnsupportedElfError(`${what} is a big-endian ELF file, not x86-64`, 'endian');
    if (data !== ELFDATA2LSB) this.fail(`invalid ELF data encoding ${data}`);
    if (size < EHDR_SIZE) this.fail(`truncated ELF header (${size} of ${EHDR_SIZE} bytes)`);
    const h = ident;
    if (h[6] !== 1) this.fail(`invalid ELF ident version ${h[6]}`);
    const osabi = h[7];
    if (osabi !== ELFOSABI_SYSV && osabi !== ELFOSABI_GNU) {
      throw new UnsupportedElfError(`${what} is for another operating system (ELF OS ABI ${osabi})`, 'osabi');
    }
    const etype = h.readUInt16LE(16);
    const machine = h.readUInt16LE(18);
    if (h.readUInt32LE(20) !== 1) this.fail(`invalid ELF version ${h.readUInt32LE(20)}`);
    if (machine !== EM_X86_64) {
      throw new UnsupportedElfError(`${what} is for machine ${machine}${machine === EM_386 ? ' (i386)' : ''}, not x86-64`, 'machine');
    }
    const entry = this.u64(h, 24, 'e_entry');
    const phoff = this.u64(h, 32, 'e_phoff');
    const shoff = this.u64(h, 40, 'e_shoff');
    const phentsize = h.readUInt16LE(54);
    let phnum = h.readUInt16LE(56);
    const shentsize = h.readUInt16LE(58);
    let shnum = h.readUInt16LE(60);
    let shstrndx = h.readUInt16LE(62);

    // Extended numbering: counts that do not fit 16 bits live in section header 0.
    if (phnum === PN_XNUM || (shnum === 0 && shoff !== 0) || shstrndx === SHN_XINDEX) {
      if (shoff === 0 || shentsize !== SHDR_SIZE) this.fail('extended numbering without a usable section header 0');
      const s0 = this.bytes(shoff, SHDR_SIZE, 'section header 0');
      if (phnum === PN_XNUM) phnum = s0.readUInt32LE(44);
      if (shnum === 0) shnum = this.u64(s0, 32, 'section count');
      if (shstrndx === SHN_XINDEX) shstrndx = s0.readUInt32LE(40);
    }

    const programHeaders = this.programHeaders(phoff, phentsize, phnum);
    const loadSegments = programHeaders.filter((p) => p.type === PT_LOAD);

    let interpreter: string | undefined;
    const interp = programHeaders.find((p) => p.type === PT_INTERP);
    if (interp) {
      if (interp.filesz === 0) this.fail('PT_INTERP is empty');
      interpreter = this.cstring(interp.offset, interp.offset + interp.filesz, 'PT_INTERP');
      if (interpreter === '') this.fail('PT_INTERP is an empty string');
    }

    // glibc keeps the last PT_DYNAMIC it sees.
    let dyn: ProgramHeader | undefined;
    for (const p of programHeaders) if (p.type === PT_DYNAMIC) dyn = p;
    const d = dyn ? this.dynamic(dyn, loadSegments) : undefined;

    const type = etype === ET_EXEC ? 'exec' : etype === ET_DYN ? 'dyn' : etype === ET_REL ? 'rel' : etype === ET_CORE ? 'core' : 'other';
    const needed = d?.needed ?? [];
    const flags1 = d?.flags1 ?? 0;
    const soname = d?.soname;
    const sections = this.sections(shoff, shentsize, shnum, shstrndx);
    return {
      type,
      machine,
      osabi,
      entry,
      phoff,
      phentsize,
      phnum,
      shoff,
      shnum,
      programHeaders,
      interpreter,
      dynamic: dyn !== undefined,
      needed,
      soname,
      rpath: d?.runpath === undefined ? d?.rpath : undefined,
      runpath: d?.runpath,
      filters: d?.filters ?? [],
      auxiliary: d?.auxiliary ?? [],
      deps: d?.deps ?? [],
      flags: d?.flags ?? 0,
      flags1,
      isPie: type === 'dyn' && ((flags1 & DF_1_PIE) !== 0 || (interpreter !== undefined && soname === undefined)),
      isStatic: interpreter === undefined && (dyn === undefined || needed.length === 0),
      isLibrary: type === 'dyn' && interpreter === undefined && (flags1 & DF_1_PIE) === 0 && (soname !== undefined || entry === 0),
      loadSegments,
      sections,
    };
  }

  private programHeaders(phoff: number, phentsize: number, phnum: number): ProgramHeader[] {
    if (phnum === 0) return [];
    if (phentsize !== PHDR_SIZE) this.fail(`e_phentsize is ${phentsize}, expected ${PHDR_SIZE}`);
    if (phnum > Math.floor(this.src.size / PHDR_SIZE)) this.fail(`e_phnum ${phnum} cannot fit in the file`);
    const table = this.bytes(phoff, phnum * PHDR_SIZE, 'program header table');
    const size = this.src.size;
    const out: ProgramHeader[] = [];
    for (let i = 0; i < phnum; i++) {
      const o = i * PHDR_SIZE;
      const type = table.readUInt32LE(o);
      const desc = `program header ${i}`;
      const p: ProgramHeader = {
        type,
        flags: table.readUInt32LE(o + 4),
        offset: this.u64(table, o + 8, `${desc} p_offset`),
        vaddr: this.u64(table, o + 16, `${desc} p_vaddr`),
        filesz: this.u64(table, o + 32, `${desc} p_filesz`),
        memsz: this.u64(table, o + 40, `${desc} p_memsz`),
        align: this.u64(table, o + 48, `${desc} p_align`),
      };
      if (p.filesz > 0 && (p.offset > size || p.filesz > size - p.offset)) {
        this.fail(`${desc} (type ${hex(type)}) at ${hex(p.offset)}+${hex(p.filesz)} extends past the end of the file (${size} bytes)`);
      }
      if (type === PT_LOAD) {
        if (p.filesz > p.memsz) this.fail(`${desc} (PT_LOAD) has p_filesz ${hex(p.filesz)} > p_memsz ${hex(p.memsz)}`);
        if (p.align > 1) {
          if (p.align > 0x40000000 || (p.align & (p.align - 1)) !== 0) this.fail(`${desc} (PT_LOAD) alignment ${hex(p.align)} is not a power of two`);
          if ((p.vaddr - p.offset) % p.align !== 0) this.fail(`${desc} (PT_LOAD) address ${hex(p.vaddr)} and offset ${hex(p.offset)} disagree modulo ${hex(p.align)}`);
        }
      }
      out.push(p);
    }
    return out;
  }

  /** File offset of a virtual address, through the PT_LOAD segment whose file bytes hold it. */
  private addrToOffset(addr: number, loads: ProgramHeader[]): { offset: number; end: number } | undefined {
    for (const l of loads) {
      if (addr >= l.vaddr && addr - l.vaddr < l.filesz) {
        return { offset: l.offset + (addr - l.vaddr), end: l.offset + l.filesz };
      }
    }
    return undefined;
  }

  private dynamic(dyn: ProgramHeader, loads: ProgramHeader[]) {
    if (dyn.filesz === 0) this.fail('PT_DYNAMIC is empty');
    const count = Math.floor(dyn.filesz / DYN_SIZE);
    const table = this.bytes(dyn.offset, count * DYN_SIZE, 'dynamic section');
    const depOff: { tag: number; off: number }[] = [];
    let soname: number | undefined;
    let rpath: number | undefined;
    let runpath: number | undefined;
    let strtab: number | undefined;
    let strsz: number | undefined;
    let flags = 0;
    let flags1 = 0;
    // Bounded by the segment size; DT_NULL ends it early as it does for the loader.
    for (let i = 0; i < count; i++) {
      const o = i * DYN_SIZE;
      const tagLo = table.readUInt32LE(o);
      const tagHi = table.readUInt32LE(o + 4);
      if (tagHi !== 0) continue; // negative or huge tags are nothing we read
      if (tagLo === DT_NULL) break;
      const desc = `dynamic entry ${i}`;
      switch (tagLo) {
        case DT_NEEDED:
        case DT_FILTER:
        case DT_AUXILIARY:
          depOff.push({ tag: tagLo, off: this.u64(table, o + 8, desc) });
          break;
        case DT_SONAME:
          soname = this.u64(table, o + 8, desc);
          break;
        case DT_RPATH:
          rpath = this.u64(table, o + 8, desc);
          break;
        case DT_RUNPATH:
          runpath = this.u64(table, o + 8, desc);
          break;
        case DT_STRTAB:
          strtab = this.u64(table, o + 8, desc);
          break;
        case DT_STRSZ:
          strsz = this.u64(table, o + 8, desc);
          break;
        case DT_FLAGS:
          flags = table.readUInt32LE(o + 8);
          break;
        case DT_FLAGS_1:
          flags1 = table.readUInt32LE(o + 8);
          break;
      }
    }
    const usesStrings = depOff.length > 0 || soname !== undefined || rpath !== undefined || runpath !== undefined;
    let str = (_off: number, _desc: string): string => this.fail('unreachable');
    if (usesStrings) {
      if (strtab === undefined) this.fail('dynamic section names strings but has no DT_STRTAB');
      const at = this.addrToOffset(strtab, loads);
      if (!at) this.fail(`DT_STRTAB address ${hex(strtab)} is not in the file bytes of any PT_LOAD segment`);
      let limit = at.end;
      if (strsz !== undefined) {
        if (strsz > at.end - at.offset) this.fail(`DT_STRSZ ${hex(strsz)} runs past the end of its segment`);
        limit = at.offset + strsz;
      }
      const base = at.offset;
      // Ask for the table up front (bounded) so readElf fetches it in one read, not one per string.
      this.bytes(base, Math.min(limit - base, 1 << 20), 'dynamic string table');
      str = (off, desc) => {
        if (off >= limit - base) this.fail(`${desc} string offset ${hex(off)} is outside the string table (${limit - base} bytes)`);
        return this.cstring(base + off, limit, desc);
      };
    }
    const splitPath = (s: string) => (s === '' ? [] : s.split(':'));
    const tagName = (t: number) => (t === DT_NEEDED ? 'DT_NEEDED' : t === DT_FILTER ? 'DT_FILTER' : 'DT_AUXILIARY');
    const deps = depOff.map((d) => ({ tag: d.tag, name: str(d.off, tagName(d.tag)) }));
    return {
      deps,
      needed: deps.filter((d) => d.tag === DT_NEEDED).map((d) => d.name),
      filters: deps.filter((d) => d.tag === DT_FILTER).map((d) => d.name),
      auxiliary: deps.filter((d) => d.tag === DT_AUXILIARY).map((d) => d.name),
      soname: soname === undefined ? undefined : str(soname, 'DT_SONAME'),
      rpath: rpath === undefined ? undefined : splitPath(str(rpath, 'DT_RPATH')),
      runpath: runpath === undefined ? undefined : splitPath(str(runpath, 'DT_RUNPATH')),
      flags,
      flags1,
    };
  }

  /** Section headers are optional to the loader; when anything about them is off we report none. */
  private sections(shoff: number, shentsize: number, shnum: number, shstrndx: number): SectionHeader[] | undefined {
    const size = this.src.size;
    if (shoff === 0 || shnum === 0 || shentsize !== SHDR_SIZE) return undefined;
    if (shnum > Math.floor(size / SHDR_SIZE) || shoff > size - shnum * SHDR_SIZE) return undefined;
    if (shstrndx >= shnum) return undefined;
    const table = this.bytes(shoff, shnum * SHDR_SIZE, 'section header table');
    const raw: Omit<SectionHeader, 'name'>[] = [];
    const nameOffs: number[] = [];
    for (let i = 0; i < shnum; i++) {
      const o = i * SHDR_SIZE;
      const hi = (p: number) => table.readUInt32LE(o + p + 4);
      // Any 64-bit field past 2^53 makes the table insane rather than the file unreadable.
      if (hi(8) >= 0x200000 || hi(16) >= 0x200000 || hi(24) >= 0x200000 || hi(32) >= 0x200000 || hi(48) >= 0x200000 || hi(56) >= 0x200000) return undefined;
      const s = {
        type: table.readUInt32LE(o + 4),
        flags: this.u64(table, o + 8, 'sh_flags'),
        addr: this.u64(table, o + 16, 'sh_addr'),
        offset: this.u64(table, o + 24, 'sh_offset'),
        size: this.u64(table, o + 32, 'sh_size'),
        link: table.readUInt32LE(o + 40),
        info: table.readUInt32LE(o + 44),
        addralign: this.u64(table, o + 48, 'sh_addralign'),
        entsize: this.u64(table, o + 56, 'sh_entsize'),
      };
      if (i > 0 && s.type !== SHT_NOBITS && s.type !== SHT_NULL && (s.offset > size || s.size > size - s.offset)) return undefined;
      raw.push(s);
      nameOffs.push(table.readUInt32LE(o));
    }
    const strs = raw[shstrndx];
    if (shstrndx === 0 || strs.type === SHT_NOBITS || strs.size === 0 || strs.size > MAX_SHSTRTAB) return undefined;
    const names = this.bytes(strs.offset, strs.size, 'section name table');
    const out: SectionHeader[] = [];
    for (let i = 0; i < raw.length; i++) {
      const off = nameOffs[i];
      if (off >= names.length) return undefined;
      const end = names.indexOf(0, off);
      if (end < 0 || end - off > MAX_STRING) return undefined;
      out.push({ name: names.toString('utf8', off, end), ...raw[i] });
    }
    return out;
  }
}

/** Parses an ELF file held in memory. Throws only ElfFormatError or UnsupportedElfError. */
export function parseElf(buf: Buffer, what = 'ELF file'): ElfFile {
  const src: ByteSource = { size: buf.length, get: (o, l) => buf.subarray(o, o + l) };
  try {
    return new Decoder(src, what).decode();
  } catch (e) {
    if (e instanceof NeedBytes) throw new ElfFormatError(`${what}: internal read of ${e.length} bytes at ${hex(e.offset)} failed`);
    throw e;
  }
}

/** The smallest read readElf makes: one read at the start usually covers header, program headers and strings. */
const READ_CHUNK = 64 * 1024;
const MAX_REFILLS = 24;

/**
 * Reads and parses an ELF file from disk. Only the parts the decoder touches are read (header,
 * program headers, dynamic section, its strings, section headers): a 100 MB library costs a few
 * small reads, not 100 MB. File-system errors (ENOENT, EACCES, EISDIR) pass through unchanged.
 */
export async function readElf(path: string): Promise<ElfFile> {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) {
      const err: NodeJS.ErrnoException = new Error(`${path}: not a regular file`);
      err.code = st.isDirectory() ? 'EISDIR' : 'EINVAL';
      throw err;
    }
    return await readElfFromHandle(fh, st.size, path);
  } finally {
    await fh.close();
  }
}

/** readElf on a file the caller has opened and stat'ed (the resolver needs its identity too). */
export async function readElfFromHandle(fh: FileHandle, size: number, path: string): Promise<ElfFile> {
  {
    const chunks: { offset: number; buf: Buffer }[] = [];
    const read = async (offset: number, length: number) => {
      const len = Math.min(Math.max(length, READ_CHUNK), size - offset);
      const buf = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, offset + got);
        if (bytesRead === 0) break; // the file shrank under us; the decoder sees a short chunk
        got += bytesRead;
      }
      chunks.push({ offset, buf: buf.subarray(0, got) });
    };
    const src: ByteSource = {
      size,
      get(offset, length) {
        for (const c of chunks) {
          if (offset >= c.offset && offset + length <= c.offset + c.buf.length) {
            return c.buf.subarray(offset - c.offset, offset - c.offset + length);
          }
        }
        return undefined;
      },
    };
    if (size > 0) await read(0, READ_CHUNK);
    for (let attempt = 0; ; attempt++) {
      try {
        return new Decoder(src, path).decode();
      } catch (e) {
        if (!(e instanceof NeedBytes)) throw e;
        if (attempt >= MAX_REFILLS) {
          // A file that needs this many scattered reads is odd; read it whole and decode once.
          chunks.length = 0;
          await read(0, size);
          return parseElf(chunks[0].buf, path);
        }
        await read(e.offset, e.length);
      }
    }
  }
}
