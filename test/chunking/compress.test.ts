// Per-chunk zstd compression and the raw/zstd codec byte (src/chunking/compress.ts).
import { readFileSync } from 'node:fs';
import {
  CODEC_RAW,
  CODEC_ZSTD,
  CorruptChunkError,
  NativeAddonMissingError,
  compress,
  compressAsync,
  decodeChunk,
  decodeChunkAsync,
  decompress,
  decompressAsync,
  encodeChunk,
  encodeChunkAsync,
} from '../../src/chunking/compress';
import { usrBinFiles, xorshift32Bytes } from './prng';

// 64 KiB from the middle of a real executable: compressible, like most chunks in the store.
const exe = readFileSync(usrBinFiles(1)[0]);
const code = Buffer.from(exe.subarray(exe.length >> 1, (exe.length >> 1) + 65536));
const random = xorshift32Bytes(65536, 17);

describe('compress / decompress', () => {
  test('round trip of executable bytes shrinks them and restores them exactly', () => {
    const z = compress(code);
    expect(z.length).toBeLessThan(code.length);
    expect(decompress(z, code.length).equals(code)).toBe(true);
  });

  test('round trip of an empty chunk', () => {
    expect(decompress(compress(Buffer.alloc(0)), 0).length).toBe(0);
  });

  test('a subarray is compressed from its own bytes only', () => {
    const view = exe.subarray(1000, 1000 + 9000);
    expect(decompress(compress(view), 9000).equals(Buffer.from(view))).toBe(true);
  });

  test('higher levels are accepted and invalid levels rejected', () => {
    expect(decompress(compress(code, 19), code.length).equals(code)).toBe(true);
    expect(() => compress(code, 1000)).toThrow(RangeError);
    expect(() => compress(code, 2.5)).toThrow(RangeError);
  });

  test('random bytes are not a zstd frame: CorruptChunkError', () => {
    expect(() => decompress(random.subarray(0, 100), 100)).toThrow(CorruptChunkError);
  });

  test('a truncated frame gives CorruptChunkError', () => {
    const z = compress(code);
    expect(() => decompress(z.subarray(0, z.length - 7), code.length)).toThrow(CorruptChunkError);
  });

  test('a frame with trailing garbage gives CorruptChunkError', () => {
    const z = compress(code);
    expect(() => decompress(Buffer.concat([z, Buffer.from([1, 2, 3])]), code.length)).toThrow(CorruptChunkError);
  });

  test('a frame that decodes to fewer bytes than expected gives CorruptChunkError', () => {
    expect(() => decompress(compress(code), code.length + 1)).toThrow(CorruptChunkError);
  });

  test('a frame that decodes to more bytes than expected gives CorruptChunkError, not a larger buffer', () => {
    // 64 MiB of zeros compress to a few KiB: the frame header claims 64 MiB, the caller 4 KiB.
    const bomb = compress(Buffer.alloc(64 << 20));
    expect(bomb.length).toBeLessThan(16 << 10);
    expect(() => decompress(bomb, 4096)).toThrow(CorruptChunkError);
  });

  test('a damaged frame header gives CorruptChunkError', () => {
    const z = Buffer.from(compress(code));
    z[0] ^= 0xff; // magic number
    expect(() => decompress(z, code.length)).toThrow(CorruptChunkError);
  });

  test('a skippable frame in front of the data frame is not accepted', () => {
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
    expect(() => decompress(Buffer.concat([skippable, compress(code)]), code.length)).toThrow(CorruptChunkError);
  });

  test('an invalid expected length is a RangeError', () => {
    expect(() => decompress(compress(code), -1)).toThrow(RangeError);
    expect(() => decompress(compress(code), 2 ** 40)).toThrow(RangeError);
  });
});

describe('async variants', () => {
  test('round trip on the threadpool', async () => {
    const z = await compressAsync(code);
    expect(z.equals(compress(code))).toBe(true);
    expect((await decompressAsync(z, code.length)).equals(code)).toBe(true);
  });

  test('corrupt input rejects with CorruptChunkError', async () => {
    await expect(decompressAsync(random.subarray(0, 100), 100)).rejects.toBeInstanceOf(CorruptChunkError);
    await expect(decompressAsync(compress(Buffer.alloc(1 << 20)), 10)).rejects.toBeInstanceOf(CorruptChunkError);
  });

  test('many jobs in flight each get their own result', async () => {
    const inputs = Array.from({ length: 32 }, (_, i) => xorshift32Bytes(20000, i + 1).fill(i, 0, 10000 + i * 100));
    const zs = await Promise.all(inputs.map((b) => compressAsync(b)));
    const outs = await Promise.all(zs.map((z, i) => decompressAsync(z, inputs[i].length)));
    outs.forEach((o, i) => expect(o.equals(inputs[i])).toBe(true));
  });

  test('the event loop keeps running while a job is on the threadpool', async () => {
    const big = Buffer.concat(Array.from({ length: 256 }, () => code)); // 16 MiB, tens of ms at level 3
    const order: string[] = [];
    const job = compressAsync(big).then(() => order.push('compressed'));
    setImmediate(() => order.push('immediate'));
    await job;
    expect(order).toEqual(['immediate', 'compressed']);
  });

  test('an invalid level rejects instead of throwing synchronously', async () => {
    await expect(compressAsync(code, 1000)).rejects.toThrow(RangeError);
  });
});

describe('chunk codec', () => {
  test('compressible chunks are stored as zstd (codec 1)', () => {
    const e = encodeChunk(code);
    expect(e.codec).toBe(CODEC_ZSTD);
    expect(e.data.length).toBeLessThan(code.length);
    expect(decodeChunk(e.codec, e.data, code.length).equals(code)).toBe(true);
  });

  test('incompressible chunks are stored raw (codec 0), as the plaintext itself', () => {
    const e = encodeChunk(random);
    expect(e.codec).toBe(CODEC_RAW);
    expect(e.data.equals(random)).toBe(true);
    expect(decodeChunk(e.codec, e.data, random.length).equals(random)).toBe(true);
  });

  test('async encode/decode agree with the synchronous ones', async () => {
    for (const plain of [code, random]) {
      const e = await encodeChunkAsync(plain);
      expect(e.codec).toBe(encodeChunk(plain).codec);
      expect((await decodeChunkAsync(e.codec, e.data, plain.length)).equals(plain)).toBe(true);
    }
  });

  test('a raw chunk of the wrong length is corrupt', () => {
    expect(() => decodeChunk(CODEC_RAW, random.subarray(1), random.length)).toThrow(CorruptChunkError);
  });

  test('an unknown codec is corrupt', async () => {
    expect(() => decodeChunk(7, random, random.length)).toThrow(CorruptChunkError);
    await expect(decodeChunkAsync(7, random, random.length)).rejects.toBeInstanceOf(CorruptChunkError);
  });
});

describe('without the native addon', () => {
  function withoutAddon<T>(fn: (m: typeof import('../../src/chunking/compress')) => T): T {
    const saved = process.env.SLINKYFS_NATIVE;
    process.env.SLINKYFS_NATIVE = '0';
    try {
      let out: T | undefined;
      jest.isolateModules(() => {
        out = fn(require('../../src/chunking/compress'));
      });
      return out as T;
    } finally {
      if (saved === undefined) delete process.env.SLINKYFS_NATIVE;
      else process.env.SLINKYFS_NATIVE = saved;
    }
  }

  test('compression fails loudly with NativeAddonMissingError', () => {
    const err = withoutAddon((m) => {
      try {
        m.encodeChunk(code);
        return undefined;
      } catch (e) {
        return e as Error;
      }
    });
    expect(err?.name).toBe(NativeAddonMissingError.name);
    expect(err?.message).toMatch(/zstd compression needs the native addon: disabled by SLINKYFS_NATIVE=0/);
  });

  test('raw chunks still decode', () => {
    expect(withoutAddon((m) => m.decodeChunk(CODEC_RAW, random, random.length).equals(random))).toBe(true);
  });
});
