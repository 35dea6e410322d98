// Loading build/slinky_native.node from both src/ and dist/, the JS fallback, and the addon's own
// argument checks (a bad offset must be an exception, never a read outside the buffer).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { LBFS_PARAMS } from '../../src/chunking/rabin';
import { nativeAddon, nativeErrorCode, nativeStatus, NATIVE_ARGUMENT_CODE } from '../../src/chunking/native';
import { xorshift32Bytes } from './prng';
import { VECTOR_CUTS, VECTOR_LENGTH, VECTOR_SEED } from './vectors';

const ROOT = path.resolve(__dirname, '../..');
const ADDON = path.join(ROOT, 'build', 'slinky_native.node');

describe('loading', () => {
  test('from the TypeScript sources the addon is found in <repo>/build', () => {
    expect(nativeStatus()).toEqual({ loaded: true, path: ADDON });
  });

  test('from the compiled dist/ tree the same file is found', () => {
    const script = `const n = require(${JSON.stringify(path.join(ROOT, 'dist/src/chunking/native.js'))});
      process.stdout.write(JSON.stringify(n.nativeStatus()))`;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, SLINKYFS_NATIVE: '' } });
    expect(JSON.parse(out)).toEqual({ loaded: true, path: ADDON });
  });

  test('SLINKYFS_NATIVE=0 selects the JS chunker, which finds the same cuts', () => {
    const saved = process.env.SLINKYFS_NATIVE;
    process.env.SLINKYFS_NATIVE = '0';
    try {
      jest.isolateModules(() => {
        const chunker = require('../../src/chunking/chunker') as typeof import('../../src/chunking/chunker');
        const native = require('../../src/chunking/native') as typeof import('../../src/chunking/native');
        expect(chunker.chunkerImplementation()).toBe('js');
        expect(native.nativeStatus()).toEqual({ loaded: false, reason: 'disabled by SLINKYFS_NATIVE=0' });
        expect(chunker.cutPoints(xorshift32Bytes(VECTOR_LENGTH, VECTOR_SEED))).toEqual(VECTOR_CUTS);
      });
    } finally {
      if (saved === undefined) delete process.env.SLINKYFS_NATIVE;
      else process.env.SLINKYFS_NATIVE = saved;
    }
  });
});

describe('the addon validates its own arguments', () => {
  const addon = nativeAddon()!;
  const P = LBFS_PARAMS;
  const handle = addon.rabinCreate(P.polynomial, P.windowSize, P.minSize, P.maxSize, P.maskBits, P.magic);
  const data = xorshift32Bytes(100000, 3);

  function codeOf(fn: () => unknown): string | undefined {
    try {
      fn();
    } catch (e) {
      return nativeErrorCode(e);
    }
    return 'no error';
  }

  test('ranges past the end of the buffer', () => {
    expect(codeOf(() => addon.rabinCuts(handle, data, 0, data.length + 1, true))).toBe(NATIVE_ARGUMENT_CODE);
    expect(codeOf(() => addon.rabinNextCut(handle, data, 50, 40, true))).toBe(NATIVE_ARGUMENT_CODE);
  });

  test('something that is not a chunker handle', () => {
    const fake = {} as typeof handle;
    expect(codeOf(() => addon.rabinCuts(fake, data, 0, 10, true))).toBe(NATIVE_ARGUMENT_CODE);
  });

  test('data that is not a Uint8Array', () => {
    const floats = new Float64Array(10) as unknown as Uint8Array;
    expect(codeOf(() => addon.rabinCuts(handle, floats, 0, 10, true))).toBe(NATIVE_ARGUMENT_CODE);
    expect(codeOf(() => addon.zstdCompress(floats, 3))).toBe(NATIVE_ARGUMENT_CODE);
  });

  test('parameters the cut finder cannot use', () => {
    expect(codeOf(() => addon.rabinCreate(P.polynomial, 48, 47, 100, 13, 0))).toBe(NATIVE_ARGUMENT_CODE);
    expect(codeOf(() => addon.rabinCreate(1n << 70n, 48, 2048, 65536, 13, 0))).toBe(NATIVE_ARGUMENT_CODE);
    expect(codeOf(() => addon.rabinCreate(P.polynomial, 48, 2048, 65536, 13, 0x2000))).toBe(NATIVE_ARGUMENT_CODE);
  });
});
