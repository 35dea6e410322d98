// The public chunker API (src/chunking/chunker.ts) with the native cut finder, cross-checked
// against the JS reference, and the properties the store relies on.
import { readFileSync } from 'node:fs';
import { digestOf, digestToString } from '../../src/chunking/digest';
import {
  LBFS_PARAMS,
  ChunkerParamsError,
  chunkBuffer,
  chunkerImplementation,
  cutPoints,
  findCuts,
  nextCut,
  type ChunkerParams,
} from '../../src/chunking/chunker';
import { nativeStatus } from '../../src/chunking/native';
import { cutsJs, isIrreducible, nextCutJs, rabinTables } from '../../src/chunking/rabin';
import { usrBinFiles, xorshift32Bytes } from './prng';
import { VECTOR_CUTS, VECTOR_LENGTH, VECTOR_SEED } from './vectors';

const { minSize: MIN, maxSize: MAX } = LBFS_PARAMS;
const jsCuts = (data: Uint8Array, p: ChunkerParams = LBFS_PARAMS) => cutsJs(data, 0, data.length, true, rabinTables(p));

function lengths(cuts: number[]): number[] {
  return cuts.map((c, i) => c - (i === 0 ? 0 : cuts[i - 1]));
}

function insertAt(data: Buffer, at: number, removed: number, inserted: Buffer): Buffer {
  return Buffer.concat([data.subarray(0, at), inserted, data.subarray(at + removed)]);
}

describe('implementation', () => {
  test('the native addon is loaded (run `make build` first)', () => {
    expect(nativeStatus()).toMatchObject({ loaded: true });
    expect(chunkerImplementation()).toBe('native');
  });
});

describe('cut positions', () => {
  test('native reproduces the documented cut vector', () => {
    expect(cutPoints(xorshift32Bytes(VECTOR_LENGTH, VECTOR_SEED))).toEqual(VECTOR_CUTS);
  });

  test('native and JS find identical cuts in 8 MiB of random data', () => {
    const data = xorshift32Bytes(8 << 20, 0x1234567);
    const cuts = cutPoints(data);
    expect(cuts).toEqual(jsCuts(data));
    expect(cuts.length).toBeGreaterThan(600);
  });

  test('native and JS find identical cuts in real executables from /usr/bin', () => {
    const files = usrBinFiles(24 << 20);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const data = readFileSync(f);
      expect({ f, cuts: cutPoints(data) }).toEqual({ f, cuts: jsCuts(data) });
    }
  });

  test('native and JS agree on other parameter sets (generic native kernel)', () => {
    const poly = (d: number) => {
      let p = (1n << BigInt(d)) | 0x1d2c3b4a5n;
      while (!isIrreducible(p)) p += 2n;
      return p;
    };
    const sets: ChunkerParams[] = [
      { windowSize: 48, minSize: 2048, maxSize: 65536, maskBits: 13, magic: 0, polynomial: poly(61) },
      { windowSize: 31, minSize: 31, maxSize: 700, maskBits: 4, magic: 9, polynomial: poly(41) },
      { windowSize: 64, minSize: 4096, maxSize: 1 << 20, maskBits: 16, magic: 0xbeef, polynomial: poly(63) },
    ];
    const data = xorshift32Bytes(3 << 20, 99);
    for (const p of sets) expect(cutPoints(data, p)).toEqual(jsCuts(data, p));
  });

  test('a subarray is chunked like a copy of the same bytes', () => {
    const big = xorshift32Bytes(1 << 20, 5);
    const view = big.subarray(12345, 12345 + 300000);
    expect(cutPoints(view)).toEqual(cutPoints(Buffer.from(view)));
    expect(cutPoints(view)).toEqual(jsCuts(Buffer.from(view)));
  });

  test('empty input has no chunks', () => {
    expect(cutPoints(new Uint8Array(0))).toEqual([]);
    expect(chunkBuffer(new Uint8Array(0))).toEqual([]);
  });
});

describe('size limits', () => {
  test('every chunk but the last is between minSize and maxSize; the last is 1..maxSize', () => {
    const data = Buffer.concat([xorshift32Bytes(4 << 20, 77), Buffer.alloc(300000), xorshift32Bytes(1000, 3)]);
    const ls = lengths(cutPoints(data));
    for (const l of ls.slice(0, -1)) {
      expect(l).toBeGreaterThanOrEqual(MIN);
      expect(l).toBeLessThanOrEqual(MAX);
    }
    expect(ls[ls.length - 1]).toBeGreaterThanOrEqual(1);
    expect(ls[ls.length - 1]).toBeLessThanOrEqual(MAX);
  });

  test('data without boundaries (zeros: fingerprint 0 != magic) is cut every maxSize bytes', () => {
    const data = Buffer.alloc(4 * MAX + 100);
    expect(cutPoints(data)).toEqual([MAX, 2 * MAX, 3 * MAX, 4 * MAX, 4 * MAX + 100]);
    expect(jsCuts(data)).toEqual([MAX, 2 * MAX, 3 * MAX, 4 * MAX, 4 * MAX + 100]);
  });

  test('with a boundary at almost every position, chunks still respect minSize', () => {
    const dense: ChunkerParams = { ...LBFS_PARAMS, maskBits: 1, magic: 0 };
    const ls = lengths(cutPoints(xorshift32Bytes(1 << 20, 8), dense));
    expect(ls.slice(0, -1).every((l) => l >= MIN)).toBe(true);
    expect(ls.filter((l) => l === MIN).length).toBeGreaterThan(ls.length / 3);
  });

  test('input shorter than minSize is one chunk', () => {
    expect(cutPoints(xorshift32Bytes(MIN - 1, 4))).toEqual([MIN - 1]);
  });

  test('mean chunk size over 32 MiB of random data is 8..12 KiB', () => {
    const data = xorshift32Bytes(32 << 20, 0xc0ffee);
    const mean = data.length / cutPoints(data).length;
    expect(mean).toBeGreaterThan(8 << 10);
    expect(mean).toBeLessThan(12 << 10);
  });
});

describe('nextCut', () => {
  const data = xorshift32Bytes(1 << 20, VECTOR_SEED);
  const first = VECTOR_CUTS[0]; // 5346

  test('finds the first chunk of the vector', () => {
    expect(nextCut(data, 0, data.length, false)).toBe(first);
    expect(nextCut(data, 0, first, false)).toBe(first);
  });

  test('asks for more bytes (-1) when no cut is found before end and fewer than maxSize bytes were given', () => {
    expect(nextCut(data, 0, first - 1, false)).toBe(-1);
    expect(nextCut(data, 0, MIN - 1, false)).toBe(-1);
    expect(nextCut(data, 10, 10, false)).toBe(-1);
  });

  test('with isFinal the chunk ends at end at the latest', () => {
    expect(nextCut(data, 0, first - 1, true)).toBe(first - 1);
    expect(nextCut(data, 0, 100, true)).toBe(100);
    expect(nextCut(data, 10, 10, true)).toBe(0);
  });

  test('returns maxSize once maxSize bytes without a boundary are available', () => {
    const zeros = Buffer.alloc(MAX + 10);
    expect(nextCut(zeros, 0, MAX, false)).toBe(MAX);
    expect(nextCut(zeros, 5, MAX + 10, false)).toBe(MAX);
    expect(nextCut(zeros, 0, MAX - 1, false)).toBe(-1);
  });

  test('native and JS agree for every start, end and isFinal tried', () => {
    const t = rabinTables(LBFS_PARAMS);
    const rnd = xorshift32Bytes(4000 * 8, 1234);
    for (let k = 0; k < 4000; k++) {
      const start = rnd.readUInt32LE(8 * k) % (data.length - 1);
      const end = start + (rnd.readUInt32LE(8 * k + 4) % Math.min(data.length - start, 3 * MAX));
      for (const fin of [false, true]) {
        expect([start, end, fin, nextCut(data, start, end, fin)]).toEqual([start, end, fin, nextCutJs(data, start, end, fin, t)]);
      }
    }
  });

  test('feeding the data in pieces (streaming) gives the same cuts as the whole buffer', () => {
    const cuts: number[] = [];
    let pos = 0;
    let avail = 0;
    while (pos < data.length) {
      const len = nextCut(data, pos, avail, avail === data.length);
      if (len < 0) avail = Math.min(data.length, avail + 4093); // odd-sized pieces
      else cuts.push((pos += len));
    }
    expect(cuts).toEqual(VECTOR_CUTS);
  });

  test('findCuts without isFinal leaves the unfinished tail out', () => {
    const end = 500000;
    expect(findCuts(data, 0, end, false)).toEqual(VECTOR_CUTS.filter((c) => c <= end));
    expect(findCuts(data, 0, end, true)).toEqual([...VECTOR_CUTS.filter((c) => c < end), end]);
  });

  test('rejects ranges outside the buffer', () => {
    expect(() => nextCut(data, 0, data.length + 1, true)).toThrow(RangeError);
    expect(() => nextCut(data, 10, 9, true)).toThrow(RangeError);
    expect(() => nextCut(data, -1, 9, true)).toThrow(RangeError);
    expect(() => nextCut(data, 0.5, 9, true)).toThrow(RangeError);
  });

  test('rejects invalid parameters', () => {
    expect(() => nextCut(data, 0, 10, true, { ...LBFS_PARAMS, minSize: 10 })).toThrow(ChunkerParamsError);
  });
});

describe('locality: a chunk end depends only on the bytes from its own start', () => {
  const data = xorshift32Bytes(2 << 20, 31337);
  const cuts = cutPoints(data);

  test('any prefix before a chunk start leaves the chunk unchanged', () => {
    const s = cuts[40];
    const prefix = xorshift32Bytes(777, 2);
    const moved = Buffer.concat([prefix, data.subarray(s)]);
    expect(cutPoints(data.subarray(s))).toEqual(cuts.slice(41).map((c) => c - s));
    expect(findCuts(moved, prefix.length, moved.length, true)).toEqual(cuts.slice(41).map((c) => c - s + prefix.length));
  });

  /**
   * What the store does after an edit of data[at, at + removed) replaced by `inserted`: keep the
   * cuts before the chunk holding the edit, re-chunk from that chunk's start, stop as soon as a
   * new cut past the edit coincides with a (shifted) old cut, and reuse the old cuts after it.
   * The end of the old data is not a boundary the content chose, so it is no restart point.
   */
  function rechunkEdited(old: number[], edited: Buffer, at: number, removed: number, inserted: number) {
    const delta = inserted - removed;
    const oldSet = new Set(old);
    const oldLength = old[old.length - 1];
    let pos = 0;
    for (const c of old) if (c <= at && c < oldLength) pos = c;
    const kept = old.filter((c) => c <= pos);
    const fresh: number[] = [];
    for (;;) {
      if (pos >= edited.length) break;
      pos += nextCut(edited, pos, edited.length, true);
      fresh.push(pos);
      if (pos >= at + inserted && oldSet.has(pos - delta)) break;
    }
    const tail = old.filter((c) => c >= at + removed && c + delta > pos).map((c) => c + delta);
    return { cuts: [...kept, ...fresh, ...tail], rechunked: fresh.length };
  }

  test.each([
    ['overwrite 10 bytes', 1_000_000, 10, 10],
    ['insert 100 bytes', 1_000_000, 0, 100],
    ['delete 5000 bytes', 700_001, 5000, 0],
    ['insert at a cut', -1, 0, 64],
    ['insert at the start', 0, 0, 3],
    ['overwrite the last bytes', 2 * 1024 * 1024 - 20, 20, 20],
    ['append 5000 bytes', 2 * 1024 * 1024, 0, 5000],
  ])('%s: re-chunking only the edited region gives the full re-chunk', (_name, atArg, removed, inserted) => {
    const at = atArg < 0 ? cuts[100] : atArg;
    const edited = insertAt(data, at, removed, xorshift32Bytes(inserted, 4242));
    const { cuts: incremental, rechunked } = rechunkEdited(cuts, edited, at, removed, inserted);
    expect(incremental).toEqual(cutPoints(edited));
    expect(rechunked).toBeLessThan(8);
  });
});

describe('dedup', () => {
  test('inserting 100 bytes at the start of a 10 MiB file keeps more than 95% of chunks', () => {
    const data = xorshift32Bytes(10 << 20, 0xabcdef);
    const before = new Set(chunkBuffer(data).map((c) => digestToString(c.digest)));
    const after = chunkBuffer(Buffer.concat([xorshift32Bytes(100, 9), data])).map((c) => digestToString(c.digest));
    const shared = after.filter((d) => before.has(d)).length;
    expect(shared / after.length).toBeGreaterThan(0.95);
  });
});

describe('chunkBuffer', () => {
  test('returns offsets, lengths and SHA-256 digests of each chunk', () => {
    const data = xorshift32Bytes(VECTOR_LENGTH, VECTOR_SEED);
    const refs = chunkBuffer(data);
    expect(refs.map((r) => r.offset + r.length)).toEqual(VECTOR_CUTS);
    expect(refs[0].offset).toBe(0);
    for (const r of refs) expect(r.digest.equals(digestOf(data.subarray(r.offset, r.offset + r.length)))).toBe(true);
    expect(refs[0].digest[0]).toBe(1); // sha256 algorithm id
  });
});
