// Deterministic test data: xorshift32 (Marsaglia 2003, shifts 13/17/5), four little-endian
// bytes per step. Written out here so the documented test vectors can be regenerated anywhere
// from the seed alone, without depending on any library's random generator.
import * as fs from 'node:fs';

export function xorshift32Bytes(length: number, seed: number): Buffer {
  if (seed === 0) throw new RangeError('xorshift32 needs a non-zero seed');
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0;
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  if (i < length) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    for (let k = 0; i < length; i++, k++) out[i] = (x >>> (8 * k)) & 0xff;
  }
  return out;
}

/** Regular files from /usr/bin, largest first, until at least `bytes` are collected. */
export function usrBinFiles(bytes: number, maxFileBytes = 32 << 20): string[] {
  const files: { path: string; size: number }[] = [];
  for (const name of fs.readdirSync('/usr/bin')) {
    const path = `/usr/bin/${name}`;
    const st = fs.lstatSync(path);
    if (st.isFile() && st.size > 0 && st.size <= maxFileBytes) files.push({ path, size: st.size });
  }
  files.sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1));
  const out: string[] = [];
  let total = 0;
  for (const f of files) {
    if (total >= bytes) break;
    out.push(f.path);
    total += f.size;
  }
  return out;
}
