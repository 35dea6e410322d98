// Content-defined chunking: where chunks end and what their digests are. Uses the native cut
// finder when build/slinky_native.node loads and the JS reference (rabin.ts) otherwise; both
// give identical cuts, so stores written by either agree. The cut rule and its "a chunk's end
// depends only on bytes from its own start" property are documented in docs/FORMAT.md.
import { digestOf, type Digest } from './digest';
import { nativeAddon, type NativeChunkerHandle } from './native';
import { LBFS_PARAMS, cutsJs, nextCutJs, rabinTables, validateParams, type ChunkerParams } from './rabin';

export type { ChunkerParams } from './rabin';
export { LBFS_PARAMS, ChunkerParamsError } from './rabin';

export interface ChunkRef {
  offset: number;
  length: number;
  digest: Digest;
}

export type ChunkerImplementation = 'native' | 'js';

const nativeHandles = new WeakMap<ChunkerParams, NativeChunkerHandle>();
const validated = new WeakSet<ChunkerParams>();

function nativeHandle(params: ChunkerParams): NativeChunkerHandle | undefined {
  const addon = nativeAddon();
  if (!addon) return undefined;
  let h = nativeHandles.get(params);
  if (!h) {
    checkParams(params);
    h = addon.rabinCreate(params.polynomial, params.windowSize, params.minSize, params.maxSize, params.maskBits, params.magic);
    nativeHandles.set(params, h);
  }
  return h;
}

function checkParams(params: ChunkerParams): void {
  if (validated.has(params)) return;
  validateParams(params);
  validated.add(params);
}

function checkRange(data: Uint8Array, start: number, end: number): void {
  // By tag rather than instanceof: Buffers and arrays from another realm (vm, jest) qualify too.
  if (!ArrayBuffer.isView(data) || (data as Uint8Array)[Symbol.toStringTag] !== 'Uint8Array') throw new TypeError('data must be a Uint8Array');
  if (!Number.isSafeInteger(end) || end < 0 || end > data.length) throw new RangeError(`end ${end} outside 0..${data.length}`);
  if (!Number.isSafeInteger(start) || start < 0 || start > end) throw new RangeError(`start ${start} outside 0..${end}`);
}

/** Which cut finder this process uses. */
export function chunkerImplementation(): ChunkerImplementation {
  return nativeAddon() ? 'native' : 'js';
}

/**
 * Length of the chunk starting at data[start], looking only at data[start..end). Returns -1 when
 * no cut is found before `end`, !isFinal and end - start < maxSize (the caller must supply more
 * bytes); with isFinal the chunk ends at `end` at the latest (0 when start == end).
 */
export function nextCut(data: Uint8Array, start: number, end: number, isFinal: boolean, params: ChunkerParams = LBFS_PARAMS): number {
  checkRange(data, start, end);
  const h = nativeHandle(params);
  if (h) return nativeAddon()!.rabinNextCut(h, data, start, end, isFinal);
  checkParams(params);
  return nextCutJs(data, start, end, isFinal, rabinTables(params));
}

/**
 * Exclusive end offsets of the chunks of data[start..end), chunking from `start`, in one call.
 * With isFinal the last offset is `end`; without, bytes after the last offset are an unfinished
 * chunk to be re-offered (from that offset) together with the bytes that follow.
 */
export function findCuts(data: Uint8Array, start: number, end: number, isFinal: boolean, params: ChunkerParams = LBFS_PARAMS): number[] {
  checkRange(data, start, end);
  const h = nativeHandle(params);
  if (h) return nativeAddon()!.rabinCuts(h, data, start, end, isFinal);
  checkParams(params);
  return cutsJs(data, start, end, isFinal, rabinTables(params));
}

/** Exclusive end offsets of every chunk of a complete buffer: last = data.length; [] if empty. */
export function cutPoints(data: Uint8Array, params: ChunkerParams = LBFS_PARAMS): number[] {
  return findCuts(data, 0, data.length, true, params);
}

/** Chunks of a complete buffer with their SHA-256 digests. Digests hash subarrays: no copies. */
export function chunkBuffer(data: Uint8Array, params: ChunkerParams = LBFS_PARAMS): ChunkRef[] {
  const cuts = cutPoints(data, params);
  const refs: ChunkRef[] = new Array(cuts.length);
  let offset = 0;
  for (let i = 0; i < cuts.length; i++) {
    const end = cuts[i];
    refs[i] = { offset, length: end - offset, digest: digestOf(data.subarray(offset, end)) };
    offset = end;
  }
  return refs;
}
