// Reader for glibc's /etc/ld.so.cache (written by ldconfig), so the resolver can look names up
// the way the loader does without running ldconfig. Two layouts exist: the current one
// ("glibc-ld.so.cache1.1", 24-byte entries, optional glibc-hwcaps extension) and the old libc5
// one ("ld.so-1.7.0", 12-byte entries), which may precede the new one in the same file.
import { readFile } from 'node:fs/promises';
import { ElfFormatError } from './errors';

const OLD_MAGIC = 'ld.so-1.7.0';
const NEW_MAGIC = 'glibc-ld.so.cache1.1';
const OLD_HEADER = 16; // magic (11 bytes, padded to 12) + nlibs
const OLD_ENTRY = 12;
const NEW_HEADER = 48;
const NEW_ENTRY = 24;
const EXTENSION_MAGIC = 0xeaa42174;
const EXTENSION_TAG_GLIBC_HWCAPS = 1;
/** Bit 62 of an entry's hwcap: its low 32 bits index the glibc-hwcaps subdirectory names. */
const HWCAP_EXTENSION = 1n << 62n;

/** ldconfig's flags for an x86-64 glibc library (FLAG_ELF_LIBC6 | FLAG_X8664_LIB64); the only kind the x86-64 loader accepts. */
export const LDCACHE_FLAGS_X86_64_LIBC6 = 0x0303;

export interface LdCacheEntry {
  name: string;
  path: string;
  flags: number;
  hwcap: bigint;
  /** The glibc-hwcaps subdirectory (e.g. "x86-64-v3") an entry belongs to, for extension entries. */
  hwcapsSubdir?: string;
}

function cstr(buf: Buffer, off: number, what: string): string {
  if (off >= buf.length) throw new ElfFormatError(`${what}: string offset ${off} is past the end of the cache`);
  const end = buf.indexOf(0, off);
  if (end < 0) throw new ElfFormatError(`${what}: unterminated string at ${off}`);
  return buf.toString('utf8', off, end);
}

/** Parses the cache's entries in file order. Throws ElfFormatError for a malformed cache. */
export function parseLdCache(buf: Buffer, what = 'ld.so.cache'): LdCacheEntry[] {
  let newStart = -1;
  if (buf.length >= OLD_HEADER && buf.toString('latin1', 0, OLD_MAGIC.length) === OLD_MAGIC) {
    const nlibs = buf.readUInt32LE(12);
    if (nlibs > (buf.length - OLD_HEADER) / OLD_ENTRY) throw new ElfFormatError(`${what}: ${nlibs} old-format entries do not fit`);
    const oldEnd = OLD_HEADER + nlibs * OLD_ENTRY;
    const aligned = (oldEnd + 7) & ~7;
    if (buf.length >= aligned + NEW_HEADER && buf.toString('latin1', aligned, aligned + NEW_MAGIC.length) === NEW_MAGIC) {
      newStart = aligned;
    } else {
      // Old format only: string offsets count from the end of the entry table.
      const out: LdCacheEntry[] = [];
      const strings = buf.subarray(oldEnd);
      for (let i = 0; i < nlibs; i++) {
        const o = OLD_HEADER + i * OLD_ENTRY;
        out.push({
          flags: buf.readInt32LE(o),
          name: cstr(strings, buf.readUInt32LE(o + 4), what),
          path: cstr(strings, buf.readUInt32LE(o + 8), what),
          hwcap: 0n,
        });
      }
      return out;
    }
  } else if (buf.length >= NEW_HEADER && buf.toString('latin1', 0, NEW_MAGIC.length) === NEW_MAGIC) {
    newStart = 0;
  } else {
    throw new ElfFormatError(`${what}: not an ld.so.cache file`);
  }
  const c = buf.subarray(newStart);
  const nlibs = c.readUInt32LE(20);
  const endianFlag = c[28] & 3;
  if (endianFlag !== 0 && endianFlag !== 2) throw new ElfFormatError(`${what}: not a little-endian cache`);
  if (nlibs > (c.length - NEW_HEADER) / NEW_ENTRY) throw new ElfFormatError(`${what}: ${nlibs} entries do not fit`);
  const extOffset = c.readUInt32LE(32);
  const hwcapNames = extOffset !== 0 ? readHwcapsExtension(c, extOffset, what) : [];
  const out: LdCacheEntry[] = [];
  for (let i = 0; i < nlibs; i++) {
    const o = NEW_HEADER + i * NEW_ENTRY;
    const hwcap = c.readBigUInt64LE(o + 16);
    const e: LdCacheEntry = {
      flags: c.readInt32LE(o),
      name: cstr(c, c.readUInt32LE(o + 4), what),
      path: cstr(c, c.readUInt32LE(o + 8), what),
      hwcap,
    };
    if ((hwcap & HWCAP_EXTENSION) !== 0n) {
      const idx = Number(hwcap & 0xffffffffn);
      e.hwcapsSubdir = hwcapNames[idx] ?? `\0unknown-${idx}`;
    }
    out.push(e);
  }
  return out;
}

function readHwcapsExtension(c: Buffer, off: number, what: string): string[] {
  if (off % 4 !== 0 || off + 8 > c.length || c.readUInt32LE(off) !== EXTENSION_MAGIC) return [];
  const count = c.readUInt32LE(off + 4);
  if (count > (c.length - off - 8) / 16) throw new ElfFormatError(`${what}: extension table does not fit`);
  for (let i = 0; i < count; i++) {
    const s = off + 8 + i * 16;
    if (c.readUInt32LE(s) !== EXTENSION_TAG_GLIBC_HWCAPS) continue;
    const start = c.readUInt32LE(s + 8);
    const size = c.readUInt32LE(s + 12);
    if (size % 4 !== 0 || start > c.length || size > c.length - start) throw new ElfFormatError(`${what}: glibc-hwcaps section does not fit`);
    const names: string[] = [];
    for (let k = 0; k < size / 4; k++) names.push(cstr(c, c.readUInt32LE(start + k * 4), what));
    return names;
  }
  return [];
}

/**
 * The name -> path table the x86-64 loader would use: only FLAG_ELF_LIBC6|FLAG_X8664_LIB64
 * entries; among entries for one name, a glibc-hwcaps entry for the most preferred supported
 * subdirectory wins, else the first plain entry. `hwcapsSubdirs` lists the supported
 * subdirectories, most preferred first (see resolve.ts). Legacy hwcap-bit entries (no longer
 * written by ldconfig) are not used.
 */
export function ldCacheTable(entries: LdCacheEntry[], hwcapsSubdirs: string[]): Map<string, string> {
  const best = new Map<string, { path: string; priority: number }>();
  for (const e of entries) {
    if (e.flags !== LDCACHE_FLAGS_X86_64_LIBC6) continue;
    let priority: number;
    if (e.hwcapsSubdir !== undefined) {
      const idx = hwcapsSubdirs.indexOf(e.hwcapsSubdir);
      if (idx < 0) continue;
      priority = idx;
    } else if (e.hwcap !== 0n) {
      continue;
    } else {
      priority = Number.MAX_SAFE_INTEGER;
    }
    const cur = best.get(e.name);
    if (!cur || priority < cur.priority) best.set(e.name, { path: e.path, priority });
  }
  const out = new Map<string, string>();
  for (const [name, b] of best) out.set(name, b.path);
  return out;
}

/** Reads a cache file; a missing or malformed cache is no cache, as for the loader. */
export async function readLdCache(path: string): Promise<LdCacheEntry[]> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch {
    return [];
  }
  try {
    return parseLdCache(buf, path);
  } catch (e) {
    if (e instanceof ElfFormatError) return [];
    throw e;
  }
}
