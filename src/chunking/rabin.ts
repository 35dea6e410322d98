// Rabin fingerprints over GF(2) and the pure-JS content-defined cut finder. This is the reference
// implementation: native/addon_rabin.c must find exactly the same cuts (the tests compare them),
// and it is the fallback when the addon is not built.
//
// A byte string b_0 .. b_{n-1} is read as the polynomial whose coefficients are its bits, most
// significant bit of b_0 first: B(x) = sum b_j(x) * x^(8(n-1-j)). Its fingerprint under an
// irreducible P of degree d is B(x) mod P, a d-bit number (bit k = coefficient of x^k).

/** Parameters of the cut rule; see docs/FORMAT.md "Chunking" for the meaning of each. */
export interface ChunkerParams {
  /** Bytes in the sliding window whose fingerprint decides a cut. */
  windowSize: number;
  /** No chunk except the last of a buffer is shorter. Must be >= windowSize. */
  minSize: number;
  /** No chunk is longer: a chunk with no boundary by then is cut here. */
  maxSize: number;
  /** A boundary is where the low `maskBits` bits of the fingerprint equal `magic`. */
  maskBits: number;
  magic: number;
  /** Irreducible polynomial over GF(2), bit k = coefficient of x^k; degree 41..63. */
  polynomial: bigint;
}

export class ChunkerParamsError extends Error {
  override name = 'ChunkerParamsError';
}

// ---------------------------------------------------------------------------------------------
// Polynomial arithmetic over GF(2) on bigints. Only used to build tables and in tests, so it
// favours obviousness over speed.

export function polyDegree(p: bigint): number {
  if (p <= 0n) return -1;
  return p.toString(2).length - 1;
}

export function polyMod(a: bigint, p: bigint): bigint {
  const dp = polyDegree(p);
  if (dp < 0) throw new RangeError('polyMod by the zero polynomial');
  let da = polyDegree(a);
  while (da >= dp) {
    a ^= p << BigInt(da - dp);
    da = polyDegree(a);
  }
  return a;
}

export function polyMulMod(a: bigint, b: bigint, p: bigint): bigint {
  const dp = polyDegree(p);
  const top = 1n << BigInt(dp);
  a = polyMod(a, p);
  let r = 0n;
  while (b > 0n) {
    if (b & 1n) r ^= a;
    b >>= 1n;
    a <<= 1n;
    if (a & top) a ^= p;
  }
  return r;
}

export function polyGcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, polyMod(a, b)];
  return a;
}

function primeFactors(n: number): number[] {
  const out: number[] = [];
  for (let q = 2; q <= n; q++) {
    if (n % q !== 0) continue;
    out.push(q);
    while (n % q === 0) n /= q;
  }
  return out;
}

/** x^(2^k) mod p, by k squarings of x. */
function xPow2k(k: number, p: bigint): bigint {
  let r = polyMod(2n, p);
  for (let i = 0; i < k; i++) r = polyMulMod(r, r, p);
  return r;
}

/**
 * Rabin's irreducibility test: P of degree n is irreducible over GF(2) iff x^(2^n) = x (mod P)
 * and gcd(x^(2^(n/q)) - x mod P, P) = 1 for every prime q dividing n.
 */
export function isIrreducible(p: bigint): boolean {
  const n = polyDegree(p);
  if (n < 1) return false;
  const x = polyMod(2n, p);
  if (xPow2k(n, p) !== x) return false;
  for (const q of primeFactors(n)) {
    if (polyGcd(xPow2k(n / q, p) ^ x, p) !== 1n) return false;
  }
  return true;
}

/** Fingerprint of `bytes` computed directly (no rolling): the definition the tables implement. */
export function fingerprint(bytes: Uint8Array, polynomial: bigint): bigint {
  let f = 0n;
  for (const b of bytes) f = polyMod((f << 8n) | BigInt(b), polynomial);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Parameters

/**
 * The project's parameters: LBFS's window, mask and size limits (8 KiB average gap between
 * boundaries, ~10 KiB mean chunk once the 2 KiB minimum is added).
 *
 * The polynomial was chosen once, reproducibly: take the first 8 bytes of
 * SHA-256("slinkyfs rabin polynomial, degree 53") big-endian, keep the low 53 bits, set the x^53
 * and x^0 coefficients, then step by 2 until Rabin's test says irreducible (5 steps).
 * The magic value is non-zero so that a window of zero bytes (fingerprint 0) is never a
 * boundary: long zero runs become maximum-size chunks, which all share one digest.
 * Changing any of these values changes every chunk boundary, i.e. every digest in every store.
 */
export const LBFS_PARAMS: ChunkerParams = Object.freeze({
  windowSize: 48,
  minSize: 2048,
  maxSize: 65536,
  maskBits: 13,
  magic: 0x78,
  polynomial: 0x37e92f0a25602fn,
});

/** Throws ChunkerParamsError unless the parameters are usable by both implementations. */
export function validateParams(p: ChunkerParams): void {
  const int = (v: number) => Number.isSafeInteger(v);
  const d = polyDegree(p.polynomial);
  if (!(d >= 41 && d <= 63)) throw new ChunkerParamsError(`polynomial degree must be 41..63, got ${d}`);
  if ((p.polynomial & 1n) === 0n) throw new ChunkerParamsError('polynomial is divisible by x');
  if (!int(p.windowSize) || p.windowSize < 1 || p.windowSize > 255) throw new ChunkerParamsError('windowSize must be 1..255');
  if (!int(p.minSize) || p.minSize < p.windowSize) throw new ChunkerParamsError('minSize must be an integer >= windowSize');
  if (!int(p.maxSize) || p.maxSize < p.minSize || p.maxSize > 0x7fffffff) throw new ChunkerParamsError('maxSize must be an integer in minSize..2^31-1');
  if (!int(p.maskBits) || p.maskBits < 1 || p.maskBits > 31) throw new ChunkerParamsError('maskBits must be 1..31');
  if (!int(p.magic) || p.magic < 0 || p.magic >= 2 ** p.maskBits) throw new ChunkerParamsError('magic must fit in maskBits');
}

// ---------------------------------------------------------------------------------------------
// Tables. A d-bit fingerprint is held as two int32 halves (lo = bits 0..31, hi = bits 32..d-1)
// so the inner loop stays in V8's small-integer arithmetic instead of bigints or doubles.

export interface RabinTables {
  readonly params: ChunkerParams;
  /**
   * ((t * x^d) mod P) | (t << d) for every top byte t pushed above x^(d-1) by a shift: XOR-ing
   * it both reduces and clears those bits, so the loop needs no separate mask.
   */
  readonly modLo: Int32Array;
  readonly modHi: Int32Array;
  /** (b * x^(8w)) mod P: the contribution, after the shift, of the byte leaving the window. */
  readonly outLo: Int32Array;
  readonly outHi: Int32Array;
  readonly hiShift: number;
  readonly mask: number;
}

const tableCache = new WeakMap<ChunkerParams, RabinTables>();

export function rabinTables(params: ChunkerParams): RabinTables {
  const cached = tableCache.get(params);
  if (cached) return cached;
  validateParams(params);
  const P = params.polynomial;
  const d = polyDegree(P);
  const modLo = new Int32Array(256);
  const modHi = new Int32Array(256);
  const outLo = new Int32Array(256);
  const outHi = new Int32Array(256);
  const outShift = polyMod(1n << BigInt(8 * params.windowSize), P);
  for (let t = 0; t < 256; t++) {
    const m = polyMod(BigInt(t) << BigInt(d), P) | (BigInt(t) << BigInt(d));
    modLo[t] = Number(m & 0xffffffffn) | 0;
    modHi[t] = Number((m >> 32n) & 0xffffffffn) | 0;
    const o = polyMulMod(BigInt(t), outShift, P);
    outLo[t] = Number(o & 0xffffffffn) | 0;
    outHi[t] = Number(o >> 32n) | 0;
  }
  const tables: RabinTables = {
    params,
    modLo,
    modHi,
    outLo,
    outHi,
    hiShift: d - 40,
    mask: ((1 << params.maskBits) - 1) | 0,
  };
  tableCache.set(params, tables);
  return tables;
}

// ---------------------------------------------------------------------------------------------
// The cut rule

/**
 * Length of the chunk that starts at data[start], reading only data[start..end).
 *
 * A chunk of length L (minSize <= L <= maxSize) ends at the first L whose window
 * data[start+L-w .. start+L) has a fingerprint with (f & mask) == magic. The fingerprint is
 * restarted at every chunk start and the first minSize - w bytes are not hashed at all, so the
 * answer depends only on the bytes from `start` on: re-chunking from any old cut reproduces
 * the old cuts as soon as the data agrees again.
 *
 * Returns -1 when more bytes are needed (no boundary before `end`, !isFinal, and fewer than
 * maxSize bytes available); with isFinal the chunk ends at `end` at the latest; 0 for
 * start == end with isFinal.
 */
export function nextCutJs(data: Uint8Array, start: number, end: number, isFinal: boolean, tables: RabinTables): number {
  const { windowSize: w, minSize, maxSize, magic } = tables.params;
  const avail = end - start;
  if (avail < minSize) return isFinal ? avail : -1;
  const limit = start + (avail < maxSize ? avail : maxSize);
  const { modLo, modHi, outLo, outHi, hiShift, mask } = tables;

  let lo = 0;
  let hi = 0;
  // Fill the window: nothing leaves it yet.
  let i = start + minSize - w;
  const full = start + minSize;
  for (; i < full; i++) {
    const t = hi >>> hiShift;
    hi = ((hi << 8) | (lo >>> 24)) ^ modHi[t];
    lo = ((lo << 8) | data[i]) ^ modLo[t];
  }
  if ((lo & mask) === magic) return minSize;
  for (; i < limit; i++) {
    const t = hi >>> hiShift;
    const o = data[i - w];
    hi = ((hi << 8) | (lo >>> 24)) ^ modHi[t] ^ outHi[o];
    lo = ((lo << 8) | data[i]) ^ modLo[t] ^ outLo[o];
    if ((lo & mask) === magic) return i + 1 - start;
  }
  if (avail >= maxSize) return maxSize;
  return isFinal ? avail : -1;
}

/** Exclusive end offsets of every chunk of data[start..end); see nextCutJs for `isFinal`. */
export function cutsJs(data: Uint8Array, start: number, end: number, isFinal: boolean, tables: RabinTables): number[] {
  const cuts: number[] = [];
  let pos = start;
  while (pos < end) {
    const len = nextCutJs(data, pos, end, isFinal, tables);
    if (len <= 0) break;
    pos += len;
    cuts.push(pos);
  }
  return cuts;
}
