// xz (LZMA2) for chunk batches on the wire, through build/slinky_xz.node (native/netxz.c). It is
// optional: a server or client without it offers and asks for zstd only.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { CorruptChunkError } from '../chunking/compress';

interface XzAddon {
  xzCompressAsync(data: Uint8Array, preset: number, dictBytes: number): Promise<Buffer>;
  xzDecompressAsync(data: Uint8Array, expectedLength: number): Promise<Buffer>;
}

// src/net -> repo root is two levels up; dist/src/net is three.
const CANDIDATES = [path.resolve(__dirname, '../../build/slinky_xz.node'), path.resolve(__dirname, '../../../build/slinky_xz.node')];

let loaded: XzAddon | null | undefined;

function addon(): XzAddon | null {
  if (loaded !== undefined) return loaded;
  const file = CANDIDATES.find((p) => existsSync(p));
  try {
    loaded = file ? (require(file) as XzAddon) : null;
  } catch {
    loaded = null;
  }
  return loaded;
}

export function xzAvailable(): boolean {
  return addon() !== null;
}

/** One xz stream of `data` at `preset` (1..9), its dictionary no larger than the data. */
export function xzCompress(data: Uint8Array, preset: number): Promise<Buffer> {
  const a = addon();
  if (!a) return Promise.reject(new Error('xz is not available (build/slinky_xz.node missing: run `make build`)'));
  return a.xzCompressAsync(data, preset, Math.max(4096, Math.min(data.length, 64 << 20)));
}

/** Exactly `expectedLength` bytes out of one xz stream, or CorruptChunkError. */
export async function xzDecompress(data: Uint8Array, expectedLength: number): Promise<Buffer> {
  const a = addon();
  if (!a) throw new CorruptChunkError('xz block received but xz is not available here');
  try {
    return await a.xzDecompressAsync(data, expectedLength);
  } catch (e) {
    if ((e as { code?: string }).code === 'SLINKY_CORRUPT_CHUNK') throw new CorruptChunkError((e as Error).message);
    throw e;
  }
}
