// Names as bytes. POSIX file names and symlink targets are byte strings; JavaScript strings are
// UTF-16. A name that is valid UTF-8 is carried as its text. Each byte of a name that is not
// valid UTF-8 (and only such bytes: every one is 0x80-0xFF) is carried as the lone surrogate
// U+DC80-U+DCFF, U+DC00 + byte, as Python's "surrogateescape" does; no valid UTF-8 decodes to a
// lone surrogate, so every name survives the round trip bytes -> string -> bytes unchanged. The
// FUSE binding (native/fusell.c, name_value/get_name) applies the same mapping, and JSON carries
// lone surrogates as \udcXX escapes, so the peer protocol needs nothing more. The store keeps
// the bytes: for UTF-8 names exactly what it kept before this mapping existed.
import { isUtf8 } from 'node:buffer';

const SURROGATE = /[\ud800-\udfff]/;

/** The bytes of a name (or symlink target) held as a string. */
export function encodeName(name: string): Buffer {
  // No surrogates at all (nearly every name): plain UTF-8.
  if (!SURROGATE.test(name)) return Buffer.from(name, 'utf8');
  const out = Buffer.allocUnsafe(name.length * 3);
  let o = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0xdc80 && c <= 0xdcff) {
      out[o++] = c - 0xdc00;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < name.length && (name.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      o += out.write(name.slice(i, i + 2), o, 'utf8');
      i++;
    } else {
      // Any other code unit, a lone surrogate outside the escape range included (U+FFFD then).
      o += out.write(name[i], o, 'utf8');
    }
  }
  return out.subarray(0, o);
}

/** How many bytes `name` is (NAME_MAX, PATH_MAX and a symlink's size count bytes). */
export function nameByteLength(name: string): number {
  return SURROGATE.test(name) ? encodeName(name).length : Buffer.byteLength(name, 'utf8');
}

/** The string for the name bytes `b[start, end)`. */
export function decodeName(b: Uint8Array, start = 0, end = b.length): string {
  const buf = Buffer.from(b.buffer, b.byteOffset + start, end - start);
  if (isUtf8(buf)) return buf.toString('utf8');
  let s = '';
  let i = 0;
  while (i < buf.length) {
    const n = validSequence(buf, i);
    if (n > 0) {
      s += buf.toString('utf8', i, i + n);
      i += n;
    } else {
      s += String.fromCharCode(0xdc00 + buf[i]);
      i++;
    }
  }
  return s;
}

/** Length of the valid UTF-8 sequence at b[i], or 0 if the byte there does not start one. */
function validSequence(b: Buffer, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  // continuation bytes after the lead byte, and the lead byte's payload
  const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
  if (n === 0) return 0;
  let cp = c & (0x3f >> n);
  for (let k = 1; k <= n; k++) {
    const x = b[i + k];
    if (x === undefined || (x & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (x & 0x3f);
  }
  if (n === 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
  if (n === 3 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
  return n + 1;
}
