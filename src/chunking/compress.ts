// Per-chunk compression: zstd through the native addon (Debian's libzstd), plus the one-byte
// codec that lets incompressible chunks be stored as they are. There is deliberately no JS
// fallback: without the addon, compressing throws NativeAddonMissingError rather than quietly
// storing data in some other form. Raw (codec 0) chunks decode without the addon.
import { NATIVE_CORRUPT_CODE, NATIVE_DIGEST_CODE, localArgumentError, nativeAddon, nativeErrorCode, requireNative } from './native';
import { verifyDigest, type Digest } from './digest';

export { NativeAddonMissingError } from './native';

/** Stored bytes are the chunk itself. */
export const CODEC_RAW = 0;
/** Stored bytes are one zstd frame (no dictionary) that decodes to exactly the chunk. */
export const CODEC_ZSTD = 1;
export type ChunkCodec = typeof CODEC_RAW | typeof CODEC_ZSTD;

export const DEFAULT_ZSTD_LEVEL = 3;

/** Stored chunk bytes that do not decode to the expected plaintext length. */
export class CorruptChunkError extends Error {
  override name = 'CorruptChunkError';
}

export interface EncodedChunk {
  codec: ChunkCodec;
  data: Buffer;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function mapError(e: unknown): unknown {
  if (nativeErrorCode(e) === NATIVE_CORRUPT_CODE) return new CorruptChunkError(`corrupt compressed chunk: ${(e as Error).message}`);
  if (nativeErrorCode(e) === NATIVE_DIGEST_CODE) return new CorruptChunkError((e as Error).message);
  return localArgumentError(e);
}

export function compress(buf: Uint8Array, level = DEFAULT_ZSTD_LEVEL): Buffer {
  const addon = requireNative('zstd compression');
  try {
    return addon.zstdCompress(buf, level);
  } catch (e) {
    throw mapError(e);
  }
}

/**
 * Decodes one zstd frame into exactly `expectedLength` bytes. The frame header's own size claim
 * is not trusted: output is capped at expectedLength and any other outcome is CorruptChunkError.
 */
export function decompress(buf: Uint8Array, expectedLength: number): Buffer {
  const addon = requireNative('zstd decompression');
  try {
    return addon.zstdDecompress(buf, expectedLength);
  } catch (e) {
    throw mapError(e);
  }
}

/** compress() on the libuv threadpool. `buf` must not be modified until the promise settles. */
export function compressAsync(buf: Uint8Array, level = DEFAULT_ZSTD_LEVEL): Promise<Buffer> {
  try {
    return requireNative('zstd compression').zstdCompressAsync(buf, level);
  } catch (e) {
    return Promise.reject(mapError(e));
  }
}

/** decompress() on the libuv threadpool. `buf` must not be modified until the promise settles. */
export function decompressAsync(buf: Uint8Array, expectedLength: number): Promise<Buffer> {
  try {
    return requireNative('zstd decompression').zstdDecompressAsync(buf, expectedLength).catch((e: unknown) => {
      throw mapError(e);
    });
  } catch (e) {
    return Promise.reject(mapError(e));
  }
}

function choose(plain: Uint8Array, compressed: Buffer): EncodedChunk {
  // Equal length is stored raw too: decoding raw costs nothing.
  if (compressed.length < plain.length) return { codec: CODEC_ZSTD, data: compressed };
  return { codec: CODEC_RAW, data: asBuffer(plain) };
}

/**
 * The stored form of a chunk: zstd when that is smaller, else the plaintext itself (codec 0; then
 * `data` is a view of `plain`, not a copy).
 */
export function encodeChunk(plain: Uint8Array, level = DEFAULT_ZSTD_LEVEL): EncodedChunk {
  return choose(plain, compress(plain, level));
}

export async function encodeChunkAsync(plain: Uint8Array, level = DEFAULT_ZSTD_LEVEL): Promise<EncodedChunk> {
  return choose(plain, await compressAsync(plain, level));
}

function decodeRaw(data: Uint8Array, length: number): Buffer {
  if (data.length !== length) throw new CorruptChunkError(`raw chunk is ${data.length} bytes, expected ${length}`);
  return asBuffer(data);
}

function unknownCodec(codec: number): CorruptChunkError {
  return new CorruptChunkError(`unknown chunk codec ${codec}`);
}

/**
 * The plaintext of a stored chunk of `length` bytes. For codec 0 the result is a view of `data`
 * (copy it if `data` is a buffer its owner reuses).
 */
export function decodeChunk(codec: number, data: Uint8Array, length: number): Buffer {
  if (codec === CODEC_RAW) return decodeRaw(data, length);
  if (codec === CODEC_ZSTD) return decompress(data, length);
  throw unknownCodec(codec);
}

export async function decodeChunkAsync(codec: number, data: Uint8Array, length: number): Promise<Buffer> {
  if (codec === CODEC_RAW) return decodeRaw(data, length);
  if (codec === CODEC_ZSTD) return decompressAsync(data, length);
  throw unknownCodec(codec);
}

/**
 * Decode a stored chunk and check it against its digest, both on the libuv threadpool: the read
 * path's CPU work (zstd and SHA-256) then runs beside the event loop, on every core. Rejects with
 * CorruptChunkError when the bytes are damaged or do not match.
 */
export async function decodeVerifiedAsync(codec: number, data: Uint8Array, length: number, digest: Digest): Promise<Buffer> {
  const addon = nativeAddon();
  if (addon && digest[0] === 1 && (codec === CODEC_RAW || codec === CODEC_ZSTD)) {
    try {
      return await addon.chunkDecodeVerifyAsync(codec, data, length, digest.subarray(1));
    } catch (e) {
      throw mapError(e);
    }
  }
  const plain = await decodeChunkAsync(codec, data, length);
  if (!verifyDigest(digest, plain)) throw new CorruptChunkError('chunk bytes do not match their digest');
  return plain;
}
