// The Rabin fingerprint and cut rule as specified in docs/FORMAT.md ("Chunking"), checked
// against a direct, non-rolling implementation of that specification and against fixed vectors.
import {
  LBFS_PARAMS,
  ChunkerParamsError,
  cutsJs,
  fingerprint,
  isIrreducible,
  polyDegree,
  polyMulMod,
  rabinTables,
  validateParams,
  type ChunkerParams,
} from '../../src/chunking/rabin';
import { xorshift32Bytes } from './prng';
import { VECTOR_CUTS, VECTOR_FIRST_BYTES, VECTOR_LENGTH, VECTOR_SEED } from './vectors';

/** The cut rule written straight from its definition: every window hashed from scratch. */
function specCuts(data: Uint8Array, p: ChunkerParams): number[] {
  const mask = BigInt(2 ** p.maskBits - 1);
  const magic = BigInt(p.magic);
  const cuts: number[] = [];
  let start = 0;
  while (start < data.length) {
    const avail = data.length - start;
    let len = Math.min(avail, p.maxSize);
    for (let l = p.minSize; l <= Math.min(avail, p.maxSize); l++) {
      const f = fingerprint(data.subarray(start + l - p.windowSize, start + l), p.polynomial);
      if ((f & mask) === magic) {
        len = l;
        break;
      }
    }
    start += len;
    cuts.push(start);
  }
  return cuts;
}

/** Smallest irreducible polynomial of the given degree above x^degree + `from`. */
function irreducibleOfDegree(degree: number, from: bigint): bigint {
  let p = (1n << BigInt(degree)) | from | 1n;
  while (!isIrreducible(p)) p += 2n;
  return p;
}

describe('GF(2) polynomial arithmetic', () => {
  test('isIrreducible accepts known irreducible polynomials', () => {
    expect(isIrreducible(0b111n)).toBe(true); // x^2 + x + 1
    expect(isIrreducible(0x11bn)).toBe(true); // x^8 + x^4 + x^3 + x + 1 (AES)
    expect(isIrreducible(0b1011n)).toBe(true); // x^3 + x + 1
  });

  test('isIrreducible rejects products, including ones with no root in GF(2)', () => {
    expect(isIrreducible(0b101n)).toBe(false); // x^2 + 1 = (x + 1)^2
    expect(isIrreducible(0b10101n)).toBe(false); // x^4 + x^2 + 1 = (x^2 + x + 1)^2
    expect(isIrreducible(polyMulMod(0x11bn, 0b1011n, 1n << 20n))).toBe(false); // degree 11, no linear factor
  });

  test('the project polynomial has degree 53 and is irreducible', () => {
    expect(LBFS_PARAMS.polynomial).toBe(0x37e92f0a25602fn);
    expect(polyDegree(LBFS_PARAMS.polynomial)).toBe(53);
    expect(isIrreducible(LBFS_PARAMS.polynomial)).toBe(true);
  });

  test('fingerprint vectors (docs/FORMAT.md)', () => {
    const P = LBFS_PARAMS.polynomial;
    expect(fingerprint(Buffer.from('slinkyfs'), P)).toBe(0x8cc66268e2b6bn);
    expect(fingerprint(Uint8Array.from({ length: 48 }, (_, i) => i), P)).toBe(0x4b4398301fec7n);
    expect(fingerprint(Buffer.alloc(48, 0xff), P)).toBe(0xdb1f914dee12bn);
  });
});

describe('LBFS parameters', () => {
  test('are the documented ones', () => {
    expect(LBFS_PARAMS).toEqual({
      windowSize: 48,
      minSize: 2048,
      maxSize: 65536,
      maskBits: 13,
      magic: 0x78,
      polynomial: 0x37e92f0a25602fn,
    });
    expect(Object.isFrozen(LBFS_PARAMS)).toBe(true);
  });

  test('invalid parameters are rejected with ChunkerParamsError', () => {
    const bad: Partial<ChunkerParams>[] = [
      { minSize: 47 },
      { maxSize: 2047 },
      { maskBits: 0 },
      { magic: 0x2000 },
      { polynomial: 0x37e92f0a25602en },
      { polynomial: 1n << 30n | 1n },
      { windowSize: 0 },
    ];
    for (const b of bad) expect(() => validateParams({ ...LBFS_PARAMS, ...b })).toThrow(ChunkerParamsError);
  });
});

describe('the rolling JS chunker follows the specification', () => {
  test('LBFS parameters: same cuts as hashing every window from scratch (48 KiB)', () => {
    const data = xorshift32Bytes(48 << 10, 7);
    expect(cutsJs(data, 0, data.length, true, rabinTables(LBFS_PARAMS))).toEqual(specCuts(data, LBFS_PARAMS));
  });

  test.each([
    [41, 16, 64, 1024, 6],
    [47, 32, 32, 512, 5],
    [63, 7, 100, 4000, 7],
  ])('degree %i, window %i, min %i, max %i, mask %i bits', (degree, windowSize, minSize, maxSize, maskBits) => {
    const params: ChunkerParams = {
      windowSize,
      minSize,
      maxSize,
      maskBits,
      magic: 3,
      polynomial: irreducibleOfDegree(degree, 0x5a5a5a5an),
    };
    const data = xorshift32Bytes(24 << 10, degree);
    const cuts = cutsJs(data, 0, data.length, true, rabinTables(params));
    expect(cuts).toEqual(specCuts(data, params));
    expect(cuts.length).toBeGreaterThan(10); // boundaries were found, not only forced cuts
  });
});

describe('test vector', () => {
  test('the generator is the documented xorshift32', () => {
    expect(xorshift32Bytes(16, VECTOR_SEED).toString('hex')).toBe(VECTOR_FIRST_BYTES);
  });

  test('JS reference reproduces the cut vector', () => {
    const data = xorshift32Bytes(VECTOR_LENGTH, VECTOR_SEED);
    expect(cutsJs(data, 0, data.length, true, rabinTables(LBFS_PARAMS))).toEqual(VECTOR_CUTS);
  });
});
