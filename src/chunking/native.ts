// Loads the project's N-API addon, build/slinky_native.node (native/addon*.c, built by `make`).
// The chunker falls back to the JS reference when the addon is absent; compression and the
// extended attributes `digest` copies cannot, so they ask for the addon with requireNative(). SLINKYFS_NATIVE=0 in the environment forces the
// fallback (to compare implementations or rule the addon out).
import { existsSync } from 'node:fs';
import * as path from 'node:path';

/** The addon's raw exports. Arguments are validated in C as well; callers still pass valid ones. */
export interface NativeAddon {
  rabinCreate(polynomial: bigint, windowSize: number, minSize: number, maxSize: number, maskBits: number, magic: number): NativeChunkerHandle;
  rabinNextCut(handle: NativeChunkerHandle, data: Uint8Array, start: number, end: number, isFinal: boolean): number;
  rabinCuts(handle: NativeChunkerHandle, data: Uint8Array, start: number, end: number, isFinal: boolean): number[];
  chunkHashAsync(handle: NativeChunkerHandle, data: Uint8Array, start: number, fileBase: number, isFinal: boolean, stopFrom: number, stops: Float64Array): Promise<Buffer>;
  zstdCompress(data: Uint8Array, level: number): Buffer;
  zstdDecompress(data: Uint8Array, expectedLength: number): Buffer;
  zstdCompressAsync(data: Uint8Array, level: number): Promise<Buffer>;
  zstdDecompressAsync(data: Uint8Array, expectedLength: number): Promise<Buffer>;
  chunkDecodeVerifyBatchAsync(input: Uint8Array, table: Uint8Array, out: Uint8Array): Promise<Buffer>;
  zstdVersion(): string;
  /** flistxattr(2): every name followed by a NUL. The xattr calls throw errors with code/errno/syscall. */
  xattrList(fd: number): Buffer;
  xattrGet(fd: number, name: Uint8Array): Buffer;
  /** flags: 0, XATTR_CREATE (1) or XATTR_REPLACE (2). */
  xattrSet(fd: number, name: Uint8Array, value: Uint8Array, flags: number): void;
  xattrRemove(fd: number, name: Uint8Array): void;
}

/** Opaque per-parameter-set tables living in C. */
export type NativeChunkerHandle = { readonly __nativeChunker: unique symbol };

/** `code` of errors thrown by the addon for undecodable input. */
export const NATIVE_CORRUPT_CODE = 'SLINKY_CORRUPT_CHUNK';
/** `code` of the TypeError/RangeError the addon throws for invalid arguments. */
export const NATIVE_ARGUMENT_CODE = 'SLINKY_BAD_ARGUMENT';

/** The `code` property of something thrown by the addon (errors may come from another realm). */
export function nativeErrorCode(e: unknown): string | undefined {
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The addon's argument errors as this realm's TypeError/RangeError, so `instanceof` works for
 * callers (under jest, native errors are created in the outer realm); other errors unchanged.
 */
export function localArgumentError(e: unknown): unknown {
  if (nativeErrorCode(e) !== NATIVE_ARGUMENT_CODE) return e;
  const { name, message } = e as Error;
  return name === 'TypeError' ? new TypeError(message) : new RangeError(message);
}

export const ADDON_FILE = 'slinky_native.node';

export class NativeAddonMissingError extends Error {
  override name = 'NativeAddonMissingError';
}

// src/chunking -> repo root is two levels up; dist/src/chunking is three.
const CANDIDATES = [path.resolve(__dirname, '../../build', ADDON_FILE), path.resolve(__dirname, '../../../build', ADDON_FILE)];

interface LoadResult {
  addon?: NativeAddon;
  path?: string;
  reason?: string;
}

let loaded: LoadResult | undefined;

function load(): LoadResult {
  if (process.env.SLINKYFS_NATIVE === '0') return { reason: 'disabled by SLINKYFS_NATIVE=0' };
  const file = CANDIDATES.find((p) => existsSync(p));
  if (!file) return { reason: `${ADDON_FILE} not found (looked in ${CANDIDATES.join(', ')}); run \`make build\`` };
  try {
    return { addon: require(file) as NativeAddon, path: file };
  } catch (e) {
    // Present but unloadable (e.g. libzstd.so.1 missing): say why instead of pretending it is absent.
    return { reason: `${file} failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
}

function state(): LoadResult {
  return (loaded ??= load());
}

/** The addon, or undefined when it is not built, cannot load, or is disabled. */
export function nativeAddon(): NativeAddon | undefined {
  return state().addon;
}

/** The addon, or a NativeAddonMissingError naming the reason. */
export function requireNative(what: string): NativeAddon {
  const s = state();
  if (s.addon) return s.addon;
  throw new NativeAddonMissingError(`${what} needs the native addon: ${s.reason}`);
}

/** Where the addon was loaded from, or why it was not: for `slinkyfs stats`, logs and benches. */
export function nativeStatus(): { loaded: true; path: string } | { loaded: false; reason: string } {
  const s = state();
  return s.addon ? { loaded: true, path: s.path! } : { loaded: false, reason: s.reason! };
}
