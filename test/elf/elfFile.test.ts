// The ELF reader against real files (binutils' readelf is the oracle) and against inputs that
// are not x86-64 ELF programs: 32-bit, foreign machine, big-endian, scripts, non-ELF, truncated.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  parseElf,
  readElf,
  readElfFromHandle,
  PT_LOAD,
  PT_DYNAMIC,
  PT_INTERP,
  PT_NOTE,
  PT_PHDR,
  PT_TLS,
  PT_GNU_EH_FRAME,
  PT_GNU_STACK,
  PT_GNU_RELRO,
  PT_GNU_PROPERTY,
  PF_R,
  PF_W,
  PF_X,
  DF_1_PIE,
  type ElfFile,
} from '../../src/elf/elfFile';
import { ElfFormatError, UnsupportedElfError } from '../../src/elf/errors';

const PT_BY_NAME: Record<string, number> = {
  LOAD: PT_LOAD,
  DYNAMIC: PT_DYNAMIC,
  INTERP: PT_INTERP,
  NOTE: PT_NOTE,
  PHDR: PT_PHDR,
  TLS: PT_TLS,
  GNU_EH_FRAME: PT_GNU_EH_FRAME,
  GNU_STACK: PT_GNU_STACK,
  GNU_RELRO: PT_GNU_RELRO,
  GNU_PROPERTY: PT_GNU_PROPERTY,
};

interface ReadelfView {
  type: string;
  entry: number;
  programHeaders: { type: number; flags: number; offset: number; vaddr: number; filesz: number; memsz: number; align: number }[];
  interpreter?: string;
  needed: string[];
  soname?: string;
  runpath?: string;
  rpath?: string;
  flags1: string[];
  sections: { name: string; addr: number; offset: number; size: number }[];
}

function readelf(file: string): ReadelfView {
  const out = execFileSync('readelf', ['-hlSdW', file], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  const v: ReadelfView = { type: '', entry: 0, programHeaders: [], needed: [], flags1: [], sections: [] };
  for (const line of out.split('\n')) {
    let m = /^\s+Type:\s+(\w+)/.exec(line);
    if (m && !v.type) v.type = m[1];
    m = /^\s+Entry point address:\s+(0x[0-9a-f]+)/.exec(line);
    if (m) v.entry = Number(m[1]);
    m = /^\s+([A-Z_]+)\s+(0x[0-9a-f]+) (0x[0-9a-f]+) 0x[0-9a-f]+ (0x[0-9a-f]+) (0x[0-9a-f]+) ([RWE ]{3}) (0x[0-9a-f]+)$/.exec(line);
    if (m) {
      const f = m[6];
      v.programHeaders.push({
        type: PT_BY_NAME[m[1]] ?? -1,
        flags: (f[0] === 'R' ? PF_R : 0) | (f[1] === 'W' ? PF_W : 0) | (f[2] === 'E' ? PF_X : 0),
        offset: Number(m[2]),
        vaddr: Number(m[3]),
        filesz: Number(m[4]),
        memsz: Number(m[5]),
        align: Number(m[7]),
      });
    }
    m = /Requesting program interpreter: (.*)\]$/.exec(line);
    if (m) v.interpreter = m[1];
    m = /\(NEEDED\)\s+Shared library: \[(.*)\]$/.exec(line);
    if (m) v.needed.push(m[1]);
    m = /\(SONAME\)\s+Library soname: \[(.*)\]$/.exec(line);
    if (m) v.soname = m[1];
    m = /\(RUNPATH\)\s+Library runpath: \[(.*)\]$/.exec(line);
    if (m) v.runpath = m[1];
    m = /\(RPATH\)\s+Library rpath: \[(.*)\]$/.exec(line);
    if (m) v.rpath = m[1];
    m = /\(FLAGS_1\)\s+Flags: (.*)$/.exec(line);
    if (m) v.flags1 = m[1].trim().split(/\s+/);
    m = /^\s+\[\s*\d+\]\s+(\S*)\s+\S+\s+([0-9a-f]{16}) ([0-9a-f]{6,}) ([0-9a-f]{6,})/.exec(line);
    if (m) v.sections.push({ name: m[1], addr: parseInt(m[2], 16), offset: parseInt(m[3], 16), size: parseInt(m[4], 16) });
  }
  return v;
}

function expectMatchesReadelf(elf: ElfFile, r: ReadelfView): void {
  expect(elf.type).toBe(r.type.toLowerCase());
  expect(elf.entry).toBe(r.entry);
  expect(elf.programHeaders).toEqual(r.programHeaders);
  expect(elf.phnum).toBe(r.programHeaders.length);
  expect(elf.loadSegments).toEqual(r.programHeaders.filter((p) => p.type === PT_LOAD));
  expect(elf.interpreter).toBe(r.interpreter);
  expect(elf.needed).toEqual(r.needed);
  expect(elf.soname).toBe(r.soname);
  expect(elf.runpath?.join(':')).toBe(r.runpath);
  expect(elf.rpath?.join(':')).toBe(r.rpath);
  expect((elf.flags1 & DF_1_PIE) !== 0).toBe(r.flags1.includes('PIE'));
  expect(elf.sections?.map((s) => ({ name: s.name, addr: s.addr, offset: s.offset, size: s.size }))).toEqual(r.sections);
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'slinky-elf-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A 64-byte ELF header for a given class/data/machine, everything else empty. */
function header64(opts: { cls?: number; data?: number; machine?: number; type?: number }): Buffer {
  const b = Buffer.alloc(64);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = opts.cls ?? 2;
  b[5] = opts.data ?? 1;
  b[6] = 1;
  b.writeUInt16LE(opts.type ?? 2, 16);
  b.writeUInt16LE(opts.machine ?? 62, 18);
  b.writeUInt32LE(1, 20);
  b.writeUInt16LE(64, 52);
  return b;
}

describe('real files, with readelf as the oracle', () => {
  test('/usr/bin/ls: a PIE with an interpreter, DT_NEEDED, program and section headers as readelf shows them', async () => {
    const elf = await readElf('/usr/bin/ls');
    expectMatchesReadelf(elf, readelf('/usr/bin/ls'));
    expect(elf.type).toBe('dyn');
    expect(elf.isPie).toBe(true);
    expect(elf.isStatic).toBe(false);
    expect(elf.interpreter).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(elf.needed).toContain('libc.so.6');
  });

  test('libc.so.6: a shared library with a SONAME, its loader in DT_NEEDED, and not a PIE', async () => {
    const elf = await readElf('/lib/x86_64-linux-gnu/libc.so.6');
    expectMatchesReadelf(elf, readelf('/lib/x86_64-linux-gnu/libc.so.6'));
    expect(elf.soname).toBe('libc.so.6');
    expect(elf.needed).toEqual(['ld-linux-x86-64.so.2']);
    expect(elf.isPie).toBe(false);
    expect(elf.isStatic).toBe(false);
  });

  test('the dynamic loader itself: dynamic, no interpreter and no DT_NEEDED, so self-contained', async () => {
    const elf = await readElf('/lib64/ld-linux-x86-64.so.2');
    expectMatchesReadelf(elf, readelf('/lib64/ld-linux-x86-64.so.2'));
    expect(elf.interpreter).toBeUndefined();
    expect(elf.dynamic).toBe(true);
    expect(elf.isStatic).toBe(true);
  });

  test('/sbin/ldconfig is static-pie: PT_DYNAMIC but no PT_INTERP and no DT_NEEDED counts as static', async () => {
    const elf = await readElf('/sbin/ldconfig');
    expectMatchesReadelf(elf, readelf('/sbin/ldconfig'));
    expect(elf.type).toBe('dyn');
    expect(elf.dynamic).toBe(true);
    expect(elf.interpreter).toBeUndefined();
    expect(elf.needed).toEqual([]);
    expect(elf.isStatic).toBe(true);
  });

  test('a RUNPATH is read and split, and a file with RUNPATH reports no RPATH', async () => {
    const src = path.join(tmp, 'rp.c');
    writeFileSync(src, 'int main(void){return 0;}\n');
    const out = path.join(tmp, 'rp');
    execFileSync('gcc', [src, '-o', out, '-Wl,--enable-new-dtags', '-Wl,-rpath,$ORIGIN/lib::/opt/x//']);
    const elf = await readElf(out);
    expectMatchesReadelf(elf, readelf(out));
    expect(elf.runpath).toEqual(['$ORIGIN/lib', '', '/opt/x//']);
    expect(elf.rpath).toBeUndefined();
  });

  test('a static non-PIE executable has no PT_DYNAMIC and no interpreter', async () => {
    const src = path.join(tmp, 'st.c');
    writeFileSync(src, 'void _start(void){for(;;);}\n');
    const out = path.join(tmp, 'st');
    execFileSync('gcc', ['-nostdlib', '-static', '-no-pie', src, '-o', out]);
    const elf = await readElf(out);
    expectMatchesReadelf(elf, readelf(out));
    expect(elf.type).toBe('exec');
    expect(elf.dynamic).toBe(false);
    expect(elf.isStatic).toBe(true);
    expect(elf.isPie).toBe(false);
  });

  test('readElf of a large library reads a small part of it and gives what parsing the whole file gives', async () => {
    const dir = '/usr/lib/x86_64-linux-gnu';
    const biggest = execFileSync('sh', ['-c', `ls -S ${dir}/*.so* | head -1`], { encoding: 'utf8' }).trim();
    const whole = readFileSync(biggest);
    expect(whole.length).toBeGreaterThan(8 << 20);
    const fh = await open(biggest, 'r');
    let bytesRead = 0;
    const counting = {
      read: async (buf: Buffer, off: number, len: number, pos: number) => {
        const r = await fh.read(buf, off, len, pos);
        bytesRead += r.bytesRead;
        return r;
      },
    };
    try {
      const sparse = await readElfFromHandle(counting as unknown as typeof fh, whole.length, biggest);
      expect(sparse).toEqual(parseElf(whole, biggest));
    } finally {
      await fh.close();
    }
    expect(bytesRead).toBeLessThan(2 << 20);
  });

  test('readElf and parseElf agree on every ELF file in /usr/bin whose name starts with "g"', async () => {
    const names = execFileSync('sh', ['-c', 'ls /usr/bin | grep "^g"'], { encoding: 'utf8' }).trim().split('\n');
    let compared = 0;
    for (const n of names) {
      const p = path.join('/usr/bin', n);
      const buf = readFileSync(p);
      if (buf.length < 4 || buf.toString('latin1', 0, 4) !== '\x7fELF') continue;
      expect(await readElf(p)).toEqual(parseElf(buf, p));
      compared++;
    }
    expect(compared).toBeGreaterThan(10);
  });
});

describe('files that are not x86-64 ELF programs', () => {
  test('a 32-bit ELF header is unsupported, reason "class"', () => {
    const b = Buffer.alloc(52);
    b.write('\x7fELF', 0, 'latin1');
    b[4] = 1;
    b[5] = 1;
    b[6] = 1;
    b.writeUInt16LE(2, 16);
    b.writeUInt16LE(3, 18);
    const err = captureError(() => parseElf(b, 'prog32'));
    expect(err).toBeInstanceOf(UnsupportedElfError);
    expect((err as UnsupportedElfError).reason).toBe('class');
    expect(err.message).toBe('prog32 is a 32-bit ELF file (ELFCLASS32), not x86-64');
  });

  test('a real 32-bit shared object built by gcc -m32 is unsupported, reason "class"', async () => {
    const src = path.join(tmp, 'f32.c');
    writeFileSync(src, 'int f(void){return 1;}\n');
    const out = path.join(tmp, 'lib32.so');
    execFileSync('gcc', ['-m32', '-nostdlib', '-shared', '-fPIC', src, '-o', out]);
    await expect(readElf(out)).rejects.toMatchObject({ name: 'UnsupportedElfError', reason: 'class' });
  });

  test('a 64-bit ELF for another machine is unsupported, reason "machine"', () => {
    const err = captureError(() => parseElf(header64({ machine: 183 }), 'arm64prog'));
    expect(err).toBeInstanceOf(UnsupportedElfError);
    expect((err as UnsupportedElfError).reason).toBe('machine');
    expect(err.message).toBe('arm64prog is for machine 183, not x86-64');
  });

  test('a big-endian ELF is unsupported, reason "endian"', () => {
    const err = captureError(() => parseElf(header64({ data: 2 }), 'be'));
    expect(err).toBeInstanceOf(UnsupportedElfError);
    expect((err as UnsupportedElfError).reason).toBe('endian');
  });

  test('a script says it is a script and names its interpreter', async () => {
    const p = path.join(tmp, 'script.sh');
    writeFileSync(p, '#!/bin/sh -e\necho hello\n');
    const err = await readElf(p).catch((e: Error) => e);
    expect(err).toBeInstanceOf(UnsupportedElfError);
    expect((err as UnsupportedElfError).reason).toBe('script');
    expect((err as Error).message).toBe(`${p} is a script (#!/bin/sh -e)`);
  });

  test('a text file is not an ELF file', () => {
    const err = captureError(() => parseElf(Buffer.from('hello, world\n'), 'notes.txt'));
    expect(err).toBeInstanceOf(UnsupportedElfError);
    expect((err as UnsupportedElfError).reason).toBe('not-elf');
    expect(err.message).toBe('notes.txt is not an ELF file');
  });

  test('an empty file is not an ELF file', () => {
    expect(() => parseElf(Buffer.alloc(0), 'empty')).toThrow(new UnsupportedElfError('empty is not an ELF file', 'not-elf'));
  });

  test('an ELF header cut short is a format error that says so', () => {
    const ls = readFileSync('/usr/bin/ls');
    expect(() => parseElf(ls.subarray(0, 40), 'ls40')).toThrow(new ElfFormatError('ls40: truncated ELF header (40 of 64 bytes)'));
  });

  test('an ELF cut after its program headers is a format error naming the segment that runs past the end', () => {
    const ls = readFileSync('/usr/bin/ls');
    const err = captureError(() => parseElf(ls.subarray(0, 1000), 'ls1000'));
    expect(err).toBeInstanceOf(ElfFormatError);
    expect(err.message).toMatch(/^ls1000: program header \d+ \(type 0x1\) at 0x[0-9a-f]+\+0x[0-9a-f]+ extends past the end of the file \(1000 bytes\)$/);
  });

  test('readElf of a truncated copy on disk fails the same way', async () => {
    const p = path.join(tmp, 'ls-truncated');
    writeFileSync(p, readFileSync('/usr/bin/ls').subarray(0, 100_000));
    await expect(readElf(p)).rejects.toBeInstanceOf(ElfFormatError);
  });

  test('a FIFO is refused at once instead of waiting for a writer', async () => {
    const fifo = path.join(tmp, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(readElf(fifo)).rejects.toMatchObject({ code: 'EINVAL', message: `${fifo}: not a regular file` });
  });

  test('an unterminated PT_INTERP string is a format error', () => {
    const ls = Buffer.from(readFileSync('/usr/bin/ls'));
    const elf = parseElf(ls);
    const interp = elf.programHeaders.find((p) => p.type === PT_INTERP)!;
    ls.fill(0x41, interp.offset, interp.offset + interp.filesz);
    expect(() => parseElf(ls, 'ls')).toThrow(new ElfFormatError(`ls: PT_INTERP at 0x${interp.offset.toString(16)} is not NUL-terminated`));
  });
});

function captureError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}
