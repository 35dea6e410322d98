// A deterministic mutation fuzzer over real ELF files: whatever we do to the header, the program
// headers, the dynamic section, the string table or the section headers, the reader either
// parses or throws one of its two typed errors, and never hangs, allocates wildly or throws
// anything else (RangeError, TypeError...).
import { readFileSync } from 'node:fs';
import { parseElf, readElfFromHandle, PT_DYNAMIC, PT_LOAD, SHT_NOBITS, SHT_NULL, type ElfFile } from '../../src/elf/elfFile';
import { ElfFormatError, UnsupportedElfError } from '../../src/elf/errors';
import { parseLdCache } from '../../src/elf/ldCache';

/** mulberry32: small, fast, and the same sequence on every run for a given seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] };
}

interface Layout {
  phoff: number;
  phnum: number;
  shoff: number;
  shnum: number;
  dynOff: number;
  dynCount: number;
  strOff: number;
  strSize: number;
}

function layoutOf(buf: Buffer): Layout {
  const elf = parseElf(buf);
  const dyn = elf.programHeaders.find((p) => p.type === PT_DYNAMIC)!;
  const dynstr = elf.sections!.find((s) => s.name === '.dynstr')!;
  return {
    phoff: elf.phoff,
    phnum: elf.phnum,
    shoff: elf.shoff,
    shnum: elf.shnum,
    dynOff: dyn.offset,
    dynCount: dyn.filesz / 16,
    strOff: dynstr.offset,
    strSize: dynstr.size,
  };
}

/** Records every byte range it overwrites so the buffer can be restored without copying the file. */
class Mutator {
  private readonly undo: { at: number; old: Buffer }[] = [];
  constructor(
    readonly buf: Buffer,
    private readonly rnd: ReturnType<typeof prng>,
  ) {}

  private save(at: number, len: number) {
    this.undo.push({ at, old: Buffer.from(this.buf.subarray(at, at + len)) });
  }

  restore() {
    while (this.undo.length) {
      const u = this.undo.pop()!;
      u.old.copy(this.buf, u.at);
    }
  }

  interesting64(): bigint {
    const size = BigInt(this.buf.length);
    const r = this.rnd;
    return r.pick([
      0n,
      1n,
      8n,
      16n,
      56n,
      64n,
      0x1000n,
      size - 1n,
      size,
      size + 1n,
      size - 16n,
      0xffffn,
      0x10000n,
      0x7fffffffn,
      0xffffffffn,
      (1n << 53n) - 1n,
      1n << 53n,
      1n << 63n,
      (1n << 64n) - 1n,
      BigInt(r.int(this.buf.length)),
      BigInt(r.int(0x7fffffff)) * BigInt(r.int(0x7fffffff)),
    ]);
  }

  u64(at: number, v: bigint) {
    if (at < 0 || at + 8 > this.buf.length) return;
    this.save(at, 8);
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, v), at);
  }

  u32(at: number, v: number) {
    if (at < 0 || at + 4 > this.buf.length) return;
    this.save(at, 4);
    this.buf.writeUInt32LE(v >>> 0, at);
  }

  u16(at: number, v: number) {
    if (at < 0 || at + 2 > this.buf.length) return;
    this.save(at, 2);
    this.buf.writeUInt16LE(v & 0xffff, at);
  }

  byte(at: number, v: number) {
    if (at < 0 || at >= this.buf.length) return;
    this.save(at, 1);
    this.buf[at] = v & 0xff;
  }
}

const DT_TAGS = [0, 1, 5, 10, 14, 15, 29, 30, 0x6ffffffb, 0x7ffffffd, 0x7fffffff, 0xffffffff];

/** One random mutation in one of the regions the reader interprets. */
function mutate(m: Mutator, L: Layout, r: ReturnType<typeof prng>): void {
  const phdr = (i: number) => L.phoff + i * 56;
  const shdr = (i: number) => L.shoff + i * 64;
  switch (r.int(9)) {
    case 0: // any byte of the ELF header
      m.byte(r.int(64), r.int(256));
      break;
    case 1: {
      // a header field set to an edge value
      const field = r.pick(['phoff', 'shoff', 'phnum', 'shnum', 'phentsize', 'shentsize', 'shstrndx', 'entry'] as const);
      const v = m.interesting64();
      if (field === 'phoff') m.u64(32, v);
      else if (field === 'shoff') m.u64(40, v);
      else if (field === 'entry') m.u64(24, v);
      else {
        const at = { phentsize: 54, phnum: 56, shentsize: 58, shnum: 60, shstrndx: 62 }[field];
        m.u16(at, r.pick([0, 1, 2, 55, 56, 57, 64, 0xfffe, 0xffff, r.int(0x10000)]));
      }
      break;
    }
    case 2: {
      // a program header field
      const at = phdr(r.int(L.phnum));
      const f = r.int(7);
      if (f === 0) m.u32(at, r.pick([0, 1, 2, 3, 4, 6, 7, 0x6474e550, 0x6474e551, 0x6474e552, r.int(0x100000000)]));
      else if (f === 1) m.u32(at + 4, r.int(8));
      else m.u64(at + [8, 16, 24, 32, 40, 48][f - 1], m.interesting64());
      break;
    }
    case 3: {
      // a dynamic entry's tag or value
      const at = L.dynOff + 16 * r.int(L.dynCount);
      if (r.next() < 0.5) m.u64(at, BigInt(r.pick(DT_TAGS)));
      else m.u64(at + 8, r.next() < 0.5 ? m.interesting64() : BigInt(r.int(L.strSize + 64)));
      break;
    }
    case 4: {
      // turn string terminators into letters: unterminated strings
      const start = L.strOff + r.int(L.strSize);
      const len = 1 + r.int(64);
      for (let i = 0; i < len; i++) if (m.buf[start + i] === 0) m.byte(start + i, 0x41);
      break;
    }
    case 5: {
      // a section header field
      const at = shdr(r.int(L.shnum));
      const f = r.int(6);
      if (f === 0) m.u32(at, r.int(0x100000000));
      else if (f === 1) m.u32(at + 4, r.pick([SHT_NULL, 1, 3, SHT_NOBITS, r.int(0x100000000)]));
      else m.u64(at + [16, 24, 32, 48, 56][f - 2], m.interesting64());
      break;
    }
    case 6: {
      // a loop in the dynamic section: DT_NULL removed everywhere in a window, entries duplicated
      const i = r.int(L.dynCount);
      const j = r.int(L.dynCount);
      const src = Buffer.from(m.buf.subarray(L.dynOff + 16 * i, L.dynOff + 16 * i + 16));
      m.u64(L.dynOff + 16 * j, src.readBigUInt64LE(0) === 0n ? 1n : src.readBigUInt64LE(0));
      m.u64(L.dynOff + 16 * j + 8, src.readBigUInt64LE(8));
      break;
    }
    case 7: // program headers overlapping the header or each other
      m.u64(phdr(r.int(L.phnum)) + 8, BigInt(r.pick([0, 1, 32, 64, L.phoff, L.dynOff, L.strOff])));
      break;
    default: // random bytes anywhere in the first 64 KiB
      for (let k = 1 + r.int(8); k > 0; k--) m.byte(r.int(Math.min(m.buf.length, 65536)), r.int(256));
  }
}

function checkInvariants(elf: ElfFile, size: number): void {
  for (const p of elf.programHeaders) {
    if (p.filesz > 0 && p.offset + p.filesz > size) throw new Error(`accepted a segment past the end: ${JSON.stringify(p)}`);
  }
  for (const p of elf.loadSegments) if (p.filesz > p.memsz) throw new Error('accepted p_filesz > p_memsz');
  for (const s of elf.sections ?? []) {
    if (s.type !== SHT_NOBITS && s.type !== SHT_NULL && s.offset + s.size > size) throw new Error(`accepted a section past the end: ${s.name}`);
  }
  if (elf.interpreter !== undefined && elf.interpreter.includes('\0')) throw new Error('interpreter contains NUL');
  if (elf.loadSegments.some((p) => p.type !== PT_LOAD)) throw new Error('non-PT_LOAD in loadSegments');
}

type Outcome = 'parsed' | 'format' | 'unsupported';

function classify(fn: () => ElfFile, size: number): Outcome {
  try {
    checkInvariants(fn(), size);
    return 'parsed';
  } catch (e) {
    if (e instanceof ElfFormatError) return 'format';
    if (e instanceof UnsupportedElfError) return 'unsupported';
    throw e;
  }
}

const TARGETS = ['/usr/bin/ls', '/lib/x86_64-linux-gnu/libc.so.6'];

describe.each(TARGETS)('mutations of %s', (file) => {
  const original = readFileSync(file);
  const layout = layoutOf(original);

  test('12,000 mutated files each parse or throw ElfFormatError/UnsupportedElfError', () => {
    const buf = Buffer.from(original);
    const rnd = prng(0x51ee7 ^ buf.length);
    const m = new Mutator(buf, rnd);
    const counts: Record<Outcome, number> = { parsed: 0, format: 0, unsupported: 0 };
    let worst = 0;
    const t0 = process.hrtime.bigint();
    for (let it = 0; it < 12_000; it++) {
      for (let k = 1 + rnd.int(3); k > 0; k--) mutate(m, layout, rnd);
      const t = process.hrtime.bigint();
      try {
        counts[classify(() => parseElf(buf, file), buf.length)]++;
      } catch (e) {
        throw new Error(`iteration ${it}: ${(e as Error).name}: ${(e as Error).message}`);
      }
      worst = Math.max(worst, Number(process.hrtime.bigint() - t) / 1e6);
      m.restore();
    }
    const total = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`${file}: ${JSON.stringify(counts)} in ${total.toFixed(0)} ms, slowest iteration ${worst.toFixed(2)} ms`);
    expect(buf.equals(original)).toBe(true);
    // The mutations reach every outcome: the fuzzer is exercising the checks, not bouncing off the magic.
    expect(counts.parsed).toBeGreaterThan(100);
    expect(counts.format).toBeGreaterThan(100);
    expect(counts.unsupported).toBeGreaterThan(10);
  });

  test('truncation at 2,000 lengths never escapes the typed errors', () => {
    const rnd = prng(7 ^ original.length);
    const counts: Record<Outcome, number> = { parsed: 0, format: 0, unsupported: 0 };
    for (let it = 0; it < 2000; it++) {
      const len = it < 200 ? it : rnd.int(Math.min(original.length, 1 << 20));
      const cut = original.subarray(0, len);
      counts[classify(() => parseElf(cut, file), cut.length)]++;
    }
    expect(counts.format).toBeGreaterThan(1000);
    expect(counts.unsupported).toBeGreaterThan(0);
  });

  test('1,000 mutated files read through readElf\'s partial reads agree with parseElf', async () => {
    const buf = Buffer.from(original);
    const rnd = prng(99 ^ buf.length);
    const m = new Mutator(buf, rnd);
    const handle = {
      read: async (dst: Buffer, off: number, len: number, pos: number) => {
        const n = Math.max(0, Math.min(len, buf.length - pos));
        buf.copy(dst, off, pos, pos + n);
        return { bytesRead: n, buffer: dst };
      },
    };
    for (let it = 0; it < 1000; it++) {
      for (let k = 1 + rnd.int(3); k > 0; k--) mutate(m, layout, rnd);
      let fromBuffer: ElfFile | Error;
      try {
        fromBuffer = parseElf(buf, file);
      } catch (e) {
        fromBuffer = e as Error;
      }
      let partial: ElfFile | Error;
      try {
        partial = await readElfFromHandle(handle as never, buf.length, file);
      } catch (e) {
        partial = e as Error;
      }
      if (fromBuffer instanceof Error) {
        expect(partial).toBeInstanceOf(fromBuffer.constructor);
        expect((partial as Error).message).toBe(fromBuffer.message);
      } else {
        expect(partial).toEqual(fromBuffer);
      }
      m.restore();
    }
  });
});

test('5,000 mutated copies of /etc/ld.so.cache each parse or throw ElfFormatError', () => {
  const original = readFileSync('/etc/ld.so.cache');
  const buf = Buffer.from(original);
  const rnd = prng(0x1dcac4e);
  const m = new Mutator(buf, rnd);
  const counts = { parsed: 0, format: 0 };
  for (let it = 0; it < 5000; it++) {
    for (let k = 1 + rnd.int(3); k > 0; k--) {
      const kind = rnd.int(4);
      // header counts and offsets, entry fields, or any byte
      if (kind === 0) m.u32(rnd.pick([20, 24, 32]), Number(m.interesting64() & 0xffffffffn));
      else if (kind === 1) m.u32(48 + 24 * rnd.int(64) + rnd.pick([0, 4, 8]), Number(m.interesting64() & 0xffffffffn));
      else if (kind === 2) m.byte(28, rnd.int(256));
      else m.byte(rnd.int(buf.length), rnd.int(256));
    }
    const cut = rnd.next() < 0.1 ? buf.subarray(0, rnd.int(buf.length)) : buf;
    try {
      parseLdCache(cut);
      counts.parsed++;
    } catch (e) {
      if (!(e instanceof ElfFormatError)) throw new Error(`iteration ${it}: ${(e as Error).name}: ${(e as Error).message}`);
      counts.format++;
    }
    m.restore();
  }
  expect(buf.equals(original)).toBe(true);
  expect(counts.parsed).toBeGreaterThan(100);
  expect(counts.format).toBeGreaterThan(100);
});
