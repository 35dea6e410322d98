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

/** The native cut finder's tables for `params`, or undefined without the addon. */
export function nativeHandle(params: ChunkerParams): NativeChunkerHandle | undefined {
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

/**
 * Object boundaries: a chunk never runs across a file offset that is a multiple of 4096 where an
 * ELF64 little-endian header begins. Slinked files place every embedded object (program,
 * libraries, loader) at such an offset, so with this rule an object's chunks are the chunks of
 * the object on its own: libc inside a hundred slinked files and libc.so.6 itself share every
 * chunk instead of re-synchronising ~17 KB into each copy. A page-aligned ELF header inside other
 * data only adds a cut; the rule is a pure function of the bytes, like the Rabin rule.
 */
export const OBJECT_ALIGN = 4096;
const ELF64_LE = [0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01];

/** Bytes needed past a candidate boundary to recognise it. */
export const OBJECT_MAGIC_BYTES = ELF64_LE.length;

function isObjectStart(data: Uint8Array, i: number): boolean {
  if (i + ELF64_LE.length > data.length) return false;
  for (let k = 0; k < ELF64_LE.length; k++) if (data[i + k] !== ELF64_LE[k]) return false;
  return true;
}

/**
 * First object boundary strictly inside (start, end) of `data`, whose byte 0 sits at file offset
 * `base`; `end` if there is none. Looks at most OBJECT_MAGIC_BYTES past `end`'s candidates only
 * when the data has them.
 */
export function nextObjectBoundary(data: Uint8Array, start: number, end: number, base = 0): number {
  const first = Math.floor((base + start) / OBJECT_ALIGN + 1) * OBJECT_ALIGN - base;
  for (let i = first; i < end; i += OBJECT_ALIGN) if (isObjectStart(data, i)) return i;
  return end;
}

/**
 * nextCut with the object-boundary rule: the length of the chunk starting at data[start], where
 * data[0] is at file offset `base`. Without isFinal the caller must offer maxSize +
 * OBJECT_MAGIC_BYTES bytes (or up to the end of the file) for a definite answer.
 */
export function nextFileCut(data: Uint8Array, start: number, end: number, isFinal: boolean, base = 0, params: ChunkerParams = LBFS_PARAMS): number {
  const b = nextObjectBoundary(data, start, end, base);
  if (b < end) return nextCut(data, start, b, true, params);
  return nextCut(data, start, end, isFinal, params);
}

/**
 * Exclusive end offsets of every chunk of a complete file: Rabin cuts plus object boundaries.
 * Last = data.length; [] if empty. This is the chunking the store gives every file.
 */
export function cutPoints(data: Uint8Array, params: ChunkerParams = LBFS_PARAMS): number[] {
  const out: number[] = [];
  let start = 0;
  while (start < data.length) {
    const b = nextObjectBoundary(data, start, data.length);
    for (const c of findCuts(data, start, b, true, params)) out.push(c);
    start = b;
  }
  return out;
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
