// Chunking and hashing of a window of file bytes in one step: the cuts (the Rabin rule plus object
// boundaries, nextFileCut) and the SHA-256 digest of every chunk. With the addon this is one
// threadpool job per window (native/addon_chunkhash.c), so a commit's CPU work runs beside the
// event loop instead of on it; without it, the same loop in JS gives identical results.
import { nextFileCut, nativeHandle, OBJECT_MAGIC_BYTES, type ChunkerParams } from './chunker';
import { digestOf, type Digest } from './digest';
import { nativeAddon } from './native';

export interface HashedChunk {
  length: number;
  digest: Digest;
}

export interface WindowSpec {
  /** The window: file bytes [fileBase, fileBase + data.length). */
  data: Uint8Array;
  fileBase: number;
  /** Chunk from data[start]. */
  start: number;
  /** The window ends at the end of the file (its last chunk ends there). */
  isFinal: boolean;
  /**
   * Stop after a cut at a window offset ≥ stopFrom that is in `stops` (sorted window offsets):
   * where a rewrite meets the old chunking again. Chunks past it are not computed.
   */
  stopFrom: number;
  stops: Float64Array;
}

const RECORD = 36; // u32 LE length, 32-byte SHA-256
/** Windows up to this many bytes are chunked and hashed on the caller's thread. */
const SYNC_WINDOW = 64 << 10;
const SHA256_ID = 1;

/**
 * The chunks from `start` whose cuts the window decides: all of them up to the end when isFinal,
 * else while a whole maximal chunk plus an ELF header's bytes remain in the window (the caller
 * goes on with a window from where this stopped).
 */
export async function chunkAndHash(w: WindowSpec, params: ChunkerParams): Promise<HashedChunk[]> {
  const h = nativeHandle(params);
  // A small window (most files) is cheaper done here than handed to a pool thread and back:
  // cuts (native, synchronous) and SHA-256 of 64 KiB take ~0.1 ms, a hand-off each way costs
  // up to 0.2 ms where waking an idle thread is slow (a KVM guest without halt polling).
  if (!h || w.data.length - w.start <= SYNC_WINDOW) return chunkAndHashJs(w, params);
  const records = await nativeAddon()!.chunkHashAsync(h, w.data, w.start, w.fileBase, w.isFinal, Math.min(w.stopFrom, w.data.length + 1), w.stops);
  const n = records.length / RECORD;
  // One allocation for all digests of the window (each a 33-byte view): fewer small Buffers.
  const digests = Buffer.allocUnsafe(n * 33);
  const out: HashedChunk[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const d = digests.subarray(i * 33, i * 33 + 33);
    d[0] = SHA256_ID;
    records.copy(d, 1, i * RECORD + 4, i * RECORD + RECORD);
    out[i] = { length: records.readUInt32LE(i * RECORD), digest: d as Digest };
  }
  return out;
}

function chunkAndHashJs(w: WindowSpec, params: ChunkerParams): HashedChunk[] {
  const out: HashedChunk[] = [];
  const end = w.data.length;
  let pos = w.start;
  let s = 0;
  while (pos < end) {
    if (!w.isFinal && pos + params.maxSize + OBJECT_MAGIC_BYTES > end) break;
    const len = nextFileCut(w.data, pos, end, w.isFinal, w.fileBase, params);
    if (len <= 0) break;
    out.push({ length: len, digest: digestOf(w.data.subarray(pos, pos + len)) });
    pos += len;
    if (pos >= w.stopFrom) {
      while (s < w.stops.length && w.stops[s] < pos) s++;
      if (s < w.stops.length && w.stops[s] === pos) break;
    }
  }
  return out;
}
