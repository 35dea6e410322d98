// Reading and rewriting a file's content. A file is an extent map (its recipe): chunk digests at
// file offsets. Writes collect in an Overlay; committing re-chunks only the affected region.
// That is possible because the chunker restarts its rolling hash at every chunk start, so a
// chunk's end depends only on bytes from its own start: re-chunking begins at the start of the
// old chunk holding the first changed byte and stops as soon as a new cut lands on an old cut
// past the change (the two chunkings agree from there on). The result is byte-for-byte the
// chunking a fresh copy of the file would get, whatever the write pattern: that is what makes
// identical files share every chunk.
import type { Digest } from '../chunking/digest';
import { LBFS_PARAMS, OBJECT_MAGIC_BYTES, type ChunkerParams } from '../chunking/chunker';
import { chunkAndHash } from '../chunking/chunkHash';
import { encodeChunkAsync } from '../chunking/compress';
import { readParts, type ChunkSource } from './chunkSource';
import type { Extent, Ino } from './records';
import { uncoveredBy, type Overlay } from './overlay';
import type { Store, StoredChunk } from './store';
import { ChunkMissingError, CorruptStoreError } from './errors';
import { digestToString } from '../chunking/digest';

/** Window of file bytes materialised at a time while re-chunking. */
const WINDOW = 4 << 20;

let zeros = Buffer.alloc(0);
/**
 * `chunk` itself, or, when it is all zeros, the same bytes from one shared buffer. A plan keeps
 * every new chunk's bytes until its transaction: without this, a file extended by a large hole
 * (truncate -s 4G, a write far past the end) held a copy of the whole hole, 4 GiB of memory.
 */
function shareZeros(chunk: Buffer): Buffer {
  if (zeros.length < chunk.length) zeros = Buffer.alloc(Math.max(chunk.length, 1 << 16));
  const z = zeros.subarray(0, chunk.length);
  return chunk.equals(z) ? z : chunk;
}

/**
 * Fill `target` with the committed bytes of `ino` starting at `offset` (bytes past `size` are
 * left as they are; holes read as zero only if `target` was zeroed).
 */
export async function readCommitted(
  store: Store,
  source: ChunkSource,
  ino: Ino,
  offset: number,
  target: Buffer,
): Promise<void> {
  const end = offset + target.length;
  const extents = store.extents(ino, offset, end);
  const parts = extents.map((e) => {
    const from = Math.max(offset, e.offset);
    const to = Math.min(end, e.offset + e.length);
    return { digest: e.digest, skip: from - e.offset, take: to - from, at: from - offset, length: e.length };
  });
  const ok = await readParts(source, parts, target);
  const bad = ok.indexOf(false);
  if (bad >= 0) throw new ChunkMissingError(`chunk ${digestToString(parts[bad].digest)} of inode ${ino} is missing or damaged`);
}

export interface NewExtent extends Extent {
  plain: Buffer;
}

export interface RewritePlan {
  removed: Extent[];
  added: NewExtent[];
  /** Where the committed content ends after the plan (short of the file's size with keepTail). */
  newSize: number;
  /** The content then ends at a definite cut (see RewriteOptions.endIsCut). */
  endIsCut: boolean;
}

export interface RewriteOptions {
  /**
   * The committed content ends at a definite cut (it was committed with keepTail), not at a cut
   * forced by its end: chunking may restart right there instead of at the last chunk's start.
   */
  endIsCut?: boolean;
  /**
   * Leave out the file's last bytes while their cut could still move with bytes appended later
   * (less than a maximal chunk plus an ELF header's bytes): the plan then ends at a definite cut,
   * `newSize` in the result says where, and the bytes after it stay uncommitted. Used for the
   * batches committed while a file is still being written. Ignored when the plan could not end
   * at or past the old end.
   */
  keepTail?: boolean;
}

/**
 * Work out the new recipe of `ino` after applying `overlay` and resizing to `newSize`. Reads old
 * bytes through `source` only where the overlay does not cover the re-chunked region.
 */
export async function planRewrite(
  store: Store,
  source: ChunkSource,
  ino: Ino,
  oldSize: number,
  newSize: number,
  overlay: Overlay,
  params: ChunkerParams = LBFS_PARAMS,
  options: RewriteOptions = {},
): Promise<RewritePlan> {
  const dirty: Array<[number, number]> = [];
  for (const [a, b] of overlay.ranges()) if (a < newSize) dirty.push([a, Math.min(b, newSize)]);
  if (newSize !== oldSize) dirty.push([Math.min(oldSize, newSize), Math.max(oldSize, newSize)]);
  dirty.sort((x, y) => x[0] - y[0]);

  // An old cut point that was content-defined is the start of an old extent (the cut at the old
  // end of file was forced by the end and is not one). Looked up per candidate, not loaded: a
  // commit of a growing file must not cost more with every megabyte already stored.
  const isOldCut = (pos: number) => pos < oldSize && store.hasExtentAt(ino, pos);

  // File bytes [from, to) after the change: the overlay's, else the committed ones, else zeros
  // (a file extended past its old end). Bytes the overlay holds in one run are used in place.
  const fill = async (target: Buffer, from: number): Promise<void> => {
    const to = from + target.length;
    const committedEnd = Math.min(to, oldSize);
    if (committedEnd > from) await readCommitted(store, source, ino, from, target.subarray(0, committedEnd - from));
    if (to > Math.max(from, oldSize)) target.fill(0, Math.max(from, oldSize) - from);
  };
  const materialize = async (from: number, to: number): Promise<Buffer> => {
    const direct = overlay.contiguousView(from, to);
    if (direct) {
      const head = direct.view.subarray(0, direct.fillTo - from);
      if (head.length > 0) {
        await fill(head, from);
        overlay.copyInto(from, head);
      }
      return direct.view;
    }
    const buf = Buffer.allocUnsafe(to - from);
    for (const [ga, gb] of uncoveredBy(overlay, from, to)) await fill(buf.subarray(ga - from, gb - from), ga);
    overlay.copyInto(from, buf);
    return buf;
  };

  const added: NewExtent[] = [];
  const rewritten: Array<[number, number]> = [];
  let tailFrom: number | undefined; // keepTail: where the undecided bytes at the end begin
  let reachedEnd = false; // re-chunking ran to the end of the file (whose cut the end forced)
  let p = 0; // everything before p has been decided
  for (const [a, b] of dirty) {
    if (a < p && b <= p) continue;
    let s = options.endIsCut && a >= oldSize ? oldSize : restartPoint(store, ino, a, oldSize);
    if (s < p) s = p;
    if (s >= newSize) continue;
    let pos = s;
    let winStart = -1;
    let win: Buffer = Buffer.alloc(0);
    for (let done = false; !done; ) {
      const need = Math.min(pos + params.maxSize + OBJECT_MAGIC_BYTES, newSize);
      if (winStart < 0 || pos < winStart || need > winStart + win.length) {
        winStart = pos;
        win = await materialize(pos, Math.min(newSize, pos + Math.max(WINDOW, params.maxSize)));
      }
      const winEnd = winStart + win.length;
      // Past the dirty range, the old cut points in this window are where re-chunking may stop.
      const stopFrom = Math.max(b, pos + 1);
      const stops = oldCutsIn(store, ino, stopFrom, Math.min(winEnd, oldSize) + 1, winStart);
      const isFinal = winEnd === newSize && !options.keepTail;
      const chunks = await chunkAndHash(
        { data: win, fileBase: winStart, start: pos - winStart, isFinal, stopFrom: stopFrom - winStart, stops },
        params,
      );
      if (chunks.length === 0) {
        if (winEnd === newSize && options.keepTail) {
          tailFrom = pos; // the rest waits for more bytes
          break;
        }
        throw new Error(`internal: no chunk decided at ${pos} in window [${winStart}, ${winEnd})`);
      }
      for (const c of chunks) {
        const plain = shareZeros(win.subarray(pos - winStart, pos - winStart + c.length));
        added.push({ offset: pos, length: c.length, digest: c.digest, plain });
        pos += c.length;
        if (pos >= newSize || (pos >= b && isOldCut(pos))) {
          done = true; // at the end, or resynchronised with the old chunking
          if (pos >= newSize) reachedEnd = true;
          break;
        }
      }
    }
    rewritten.push([s, pos]);
    p = pos;
    // Everything from the undecided tail on waits for more bytes, later dirty ranges too: one
    // that starts past here must not be chunked from the old end as if that were still a cut
    // (the bytes between would be in no extent).
    if (tailFrom !== undefined) break;
  }

  if (tailFrom !== undefined && tailFrom < oldSize) {
    // Old extents would remain past the decided end: plan the whole file instead.
    return planRewrite(store, source, ino, oldSize, newSize, overlay, params, { ...options, keepTail: false });
  }
  const planEnd = tailFrom ?? newSize;

  // Old extents that start inside a rewritten range, or past the new end, are replaced.
  const removed: Extent[] = [];
  let removedTo = 0;
  for (const [s, c] of rewritten) {
    for (const e of store.extents(ino, s, c)) if (e.offset >= s && e.offset >= removedTo) removed.push(e);
    removedTo = c;
  }
  if (planEnd < oldSize) {
    for (const e of store.extents(ino, planEnd)) if (e.offset >= planEnd && e.offset >= removedTo) removed.push(e);
  }
  const endIsCut = tailFrom !== undefined || (!reachedEnd && newSize === oldSize && !!options.endIsCut);
  return { removed, added, newSize: planEnd, endIsCut };
}

/** Window offsets (file offset - base) of the old extents starting in [from, to), sorted. */
function oldCutsIn(store: Store, ino: Ino, from: number, to: number, base: number): Float64Array {
  if (to <= from) return new Float64Array(0);
  const offsets: number[] = [];
  for (const e of store.extents(ino, from, to)) if (e.offset >= from) offsets.push(e.offset - base);
  return Float64Array.from(offsets);
}

/** Start of the old chunk that must be re-cut when byte `a` changes (see the module comment). */
function restartPoint(store: Store, ino: Ino, a: number, oldSize: number): number {
  if (a === 0 || oldSize === 0) return 0;
  const probe = Math.min(a - 1, oldSize - 1);
  const holder = store.extents(ino, probe, probe + 1)[0];
  return holder ? holder.offset : 0;
}


/**
 * Encode the plan's chunks that the store does not hold yet: compressed now, or (compressLater)
 * stored raw and queued for the compactor, which keeps compression off the write path.
 */
export async function encodeMissing(store: Store, chunks: readonly NewExtent[], compressLater = false): Promise<Map<string, StoredChunk>> {
  const out = new Map<string, StoredChunk>();
  const jobs: Promise<void>[] = [];
  for (const c of chunks) {
    const k = c.digest.toString('latin1');
    if (out.has(k) || store.hasChunk(c.digest)) continue;
    if (compressLater) {
      out.set(k, { codec: 0, data: c.plain, compressLater: true });
      continue;
    }
    out.set(k, { codec: 0, data: c.plain }); // placeholder, replaced below
    jobs.push(encodeChunkAsync(c.plain).then((enc) => void out.set(k, enc)));
  }
  await Promise.all(jobs);
  return out;
}

export class NeedEncodingError extends Error {
  constructor(readonly digest: Digest) {
    super('chunk needs encoding');
  }
}

/** Apply a plan inside a store transaction: take new references, drop old ones, swap extents. */
export function applyPlan(store: Store, ino: Ino, plan: RewritePlan, encoded: Map<string, StoredChunk>): void {
  for (const e of plan.added) {
    if (!store.refChunk(e.digest, e.length, encoded.get(e.digest.toString('latin1')))) throw new NeedEncodingError(e.digest);
  }
  for (const e of plan.removed) {
    store.removeExtent(ino, e.offset);
    store.unrefChunk(e.digest);
  }
  for (const e of plan.added) store.putExtent(ino, e);
}

/** Drop a file's whole recipe (inside txn): used when its inode goes away. */
export function dropContent(store: Store, ino: Ino): void {
  for (const e of store.extents(ino)) {
    store.removeExtent(ino, e.offset);
    store.unrefChunk(e.digest);
  }
}

/**
 * Copy without copying (inside txn): `to`, whose recipe ends at `start`, gets `from`'s extents
 * from `start` on that lie wholly before `end` (at most `maxExtents` of them), each chunk one
 * reference more. Returns where the copied extents end: `start` when none can be copied.
 *
 * `to`'s recipe must stay the chunking of its bytes (docs/FORMAT.md, "Recipes"). Cuts are found
 * from the previous cut onward (the window and the minimum chunk lie after it; the forced cut
 * before an object looks at the bytes after the position, at the same file offset in both
 * files), so from a cut at the same offset, the same bytes give the same chunks. Hence the
 * conditions: `start` is 0 and `to` is empty, or `to`'s last extent is the very extent of
 * `from` that ends at `start` (same offset, length and digest), `start` being a cut of `from`
 * before its end and so not a cut forced by the end of `to`.
 */
export function cloneExtents(store: Store, from: Ino, to: Ino, start: number, end: number, maxExtents: number): number {
  if (start > 0) {
    const mine = store.extents(to, start - 1);
    const theirs = store.extents(from, start - 1, start);
    const a = mine[0];
    const b = theirs[0];
    if (mine.length !== 1 || theirs.length !== 1 || a.offset + a.length !== start || b.offset !== a.offset || b.length !== a.length || !a.digest.equals(b.digest)) {
      return start;
    }
  } else if (store.extents(to, 0, Number.MAX_SAFE_INTEGER, 1).length > 0) return start;
  let pos = start;
  for (const e of store.extents(from, start, end, maxExtents)) {
    if (e.offset !== pos || e.offset + e.length > end) break;
    if (!store.refChunk(e.digest, e.length)) throw new CorruptStoreError(`inode ${from}: extent at ${e.offset} names a chunk the store does not know`);
    store.putExtent(to, e);
    pos += e.length;
  }
  return pos;
}

/** Bytes a plan adds to the database, for the size-limit check. */
export function planBytes(plan: RewritePlan, encoded: Map<string, StoredChunk>): number {
  let n = plan.added.length * 64;
  for (const c of encoded.values()) n += c.data.length + 64;
  return n;
}
