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
import { DEFAULT_ZSTD_LEVEL, encodeChunkAsync } from '../chunking/compress';
import { readParts, type ChunkSource } from './chunkSource';
import { runEnd, type Extent, type Ino, type Run } from './records';
import { uncoveredBy, type Overlay } from './overlay';
import type { Store, StoredChunk } from './store';
import { ChunkMissingError, CorruptStoreError } from './errors';
import { digestToString } from '../chunking/digest';
import { isHoleChunk, shareZeros, zeroBytes, zeroDigest } from '../chunking/zeros';

/** Window of file bytes materialised at a time while re-chunking. */
const WINDOW = 4 << 20;

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
  const parts = [];
  for (const e of store.extents(ino, offset, end)) {
    const from = Math.max(offset, e.offset);
    const to = Math.min(end, e.offset + e.length);
    // A hole's chunk is zeros by its digest: nothing to fetch, decode or verify.
    if (isHoleChunk(e.length, e.digest)) target.fill(0, from - offset, to - offset);
    else parts.push({ digest: e.digest, skip: from - e.offset, take: to - from, at: from - offset, length: e.length });
  }
  const ok = await readParts(source, parts, target);
  const bad = ok.indexOf(false);
  if (bad >= 0) throw new ChunkMissingError(`chunk ${digestToString(parts[bad].digest)} of inode ${ino} is missing or damaged`);
}

/** A new record: one chunk, or a run of `count` identical ones (`plain` is one chunk's bytes). */
export interface NewExtent extends Extent {
  plain: Buffer;
  count?: number;
}

export interface RewritePlan {
  /** Old records replaced (a run partly outside the rewritten ranges among them). */
  removed: Run[];
  added: NewExtent[];
  /** The parts of removed runs that lie outside the rewritten ranges, written again as runs. */
  kept?: Run[];
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
   * Ranges the change sets to zeros, under the overlay's bytes (fallocate's punched holes and
   * zeroed ranges): re-chunked, but neither read nor, where whole maximal chunks fit, hashed.
   */
  zeros?: ReadonlyArray<readonly [number, number]>;
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
  const zeroed = (options.zeros ?? []).filter(([a, b]) => a < b && a < newSize).map(([a, b]): [number, number] => [a, Math.min(b, newSize)]);
  dirty.push(...zeroed);
  if (newSize !== oldSize) dirty.push([Math.min(oldSize, newSize), Math.max(oldSize, newSize)]);
  dirty.sort((x, y) => x[0] - y[0]);

  // An old cut point that was content-defined is the start of an old extent (the cut at the old
  // end of file was forced by the end and is not one). Looked up per candidate, not loaded: a
  // commit of a growing file must not cost more with every megabyte already stored.
  const isOldCut = (pos: number) => pos < oldSize && store.hasExtentAt(ino, pos);

  // Bytes known to be zeros without reading them: past the old end and not in the overlay (a
  // hole), in ranges the change zeroes, or in old records of the all-zero chunk. From a chunk start inside such a stretch,
  // every chunk that ends inside it is maxSize long: windows lie inside their chunk (the hash
  // restarts at each chunk start) and a zero window never matches a non-zero magic, and no
  // object boundary starts with a zero byte. So those chunks are computed, not scanned.
  const zeroSkip = (0 & ((1 << params.maskBits) - 1)) !== params.magic;
  const overlayRanges = overlay.ranges();
  const zeroEnd = (from: number): number => {
    let limit = newSize;
    for (const [oa, ob] of overlayRanges) {
      if (ob <= from) continue;
      if (oa <= from) return from;
      limit = Math.min(limit, oa);
      break;
    }
    for (let x = from; x < limit; ) {
      const z = zeroed.find(([za, zb]) => za <= x && x < zb);
      if (z) {
        x = z[1];
        continue;
      }
      if (x >= oldSize) break;
      const r = store.runs(ino, x, x + 1, 1)[0];
      if (!r || r.offset > x || r.length > params.maxSize || !r.digest.equals(zeroDigest(r.length))) return x;
      x = runEnd(r);
    }
    return limit;
  };
  // The first old cut c in (pos, pos + k * maxSize], c ≥ from, with c - pos a multiple of
  // maxSize: where k maximal chunks from pos would meet the old chunking again.
  const firstGridCut = (pos: number, k: number, from: number): number | undefined => {
    const step = params.maxSize;
    const lo = Math.max(from, pos + 1);
    const hi = Math.min(pos + k * step, oldSize - 1);
    if (lo > hi) return undefined;
    for (const r of store.runs(ino, lo, hi + 1)) {
      const first = r.offset >= lo ? 0 : Math.ceil((lo - r.offset) / r.length);
      if (r.length === step) {
        const c = r.offset + first * step;
        if ((r.offset - pos) % step === 0 && first < r.count && c <= hi) return c;
        continue;
      }
      for (let i = first; i < r.count && i < first + step; i++) {
        const c = r.offset + i * r.length;
        if (c > hi) break;
        if ((c - pos) % step === 0) return c;
      }
    }
    return undefined;
  };

  // File bytes [from, to) after the change: the overlay's, else the committed ones, else zeros
  // (a file extended past its old end). Bytes the overlay holds in one run are used in place.
  const fill = async (target: Buffer, from: number): Promise<void> => {
    const to = from + target.length;
    const committedEnd = Math.min(to, oldSize);
    let at = from; // committed bytes, but not those of a zeroed range
    for (const [za, zb] of [...zeroed.filter(([za, zb]) => za < committedEnd && zb > from).sort((p, q) => p[0] - q[0]), [committedEnd, committedEnd] as const]) {
      if (za > at) await readCommitted(store, source, ino, at, target.subarray(at - from, Math.min(za, committedEnd) - from));
      if (zb > at) target.fill(0, Math.max(at, za) - from, Math.min(zb, to) - from);
      at = Math.max(at, zb);
    }
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
      const k = zeroSkip ? Math.floor((zeroEnd(pos) - pos) / params.maxSize) : 0;
      if (k >= 1) {
        const stop = firstGridCut(pos, k, b);
        const count = stop === undefined ? k : (stop - pos) / params.maxSize;
        const length = params.maxSize;
        added.push({ offset: pos, length, digest: zeroDigest(length), plain: zeroBytes(length), count });
        pos += count * length;
        if (pos >= newSize || stop !== undefined) {
          done = true;
          if (pos >= newSize) reachedEnd = true;
        }
        continue;
      }
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

  // Old records that start inside a rewritten range, or past the new end, are replaced. A run
  // reaching out of those ranges is replaced too, and its chunks outside them are kept: as runs
  // again (the ranges begin and end at old cuts, so they split a run between its chunks).
  const cutAway: Array<[number, number]> = rewritten.slice();
  if (planEnd < oldSize) cutAway.push([planEnd, Number.MAX_SAFE_INTEGER]);
  const removed: Run[] = [];
  const kept: Run[] = [];
  const gone = new Set<number>();
  for (const [x, y] of cutAway) {
    for (const r of store.runs(ino, x, y)) {
      if (gone.has(r.offset) || (r.count === 1 && r.offset < x)) continue;
      removed.push(r);
      gone.add(r.offset);
      if (r.count === 1) continue;
      let at = r.offset;
      const end = runEnd(r);
      for (const [u, v] of cutAway) {
        if (v <= at) continue;
        if (u >= end) break;
        if (u > at) kept.push(runPart(r, at, u));
        at = Math.max(at, v);
      }
      if (at < end) kept.push(runPart(r, at, end));
    }
  }

  // Consecutive identical chunks become one run: the new ones among themselves and with the kept
  // parts (applyPlan joins them with the records on either side, as the store then has them).
  const recs: Array<Run & { plain?: Buffer }> = [];
  const all: Array<Run & { plain?: Buffer }> = [...kept, ...added.map((e) => ({ ...e, count: e.count ?? 1 }))].sort((p, q) => p.offset - q.offset);
  for (const r of all) {
    const last = recs[recs.length - 1];
    if (last && sameChunks(last, r) && runEnd(last) === r.offset) {
      last.count += r.count;
      last.plain ??= r.plain;
    } else recs.push({ ...r });
  }
  const newAdded: NewExtent[] = [];
  const newKept: Run[] = [];
  for (const r of recs) {
    if (r.plain) newAdded.push({ offset: r.offset, length: r.length, digest: r.digest, plain: r.plain, ...(r.count > 1 ? { count: r.count } : {}) });
    else newKept.push({ offset: r.offset, length: r.length, digest: r.digest, count: r.count });
  }
  const endIsCut = tailFrom !== undefined || (!reachedEnd && newSize === oldSize && !!options.endIsCut);
  return { removed, added: newAdded, kept: newKept, newSize: planEnd, endIsCut };
}

function sameChunks(a: Extent, b: Extent): boolean {
  return a.length === b.length && a.digest.equals(b.digest);
}

/** The chunks of run `r` in [from, to), both on its chunk grid. */
function runPart(r: Run, from: number, to: number): Run {
  if ((from - r.offset) % r.length !== 0 || (to - from) % r.length !== 0) {
    throw new Error(`internal: run at ${r.offset} split at ${from}..${to}, between its chunks`);
  }
  return { offset: from, length: r.length, digest: r.digest, count: (to - from) / r.length };
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
 * Encode the plan's chunks that the store does not hold yet: compressed now at zstd level `how`,
 * or ('later') stored raw and queued for the compactor, which keeps compression off the write
 * path.
 */
export async function encodeMissing(store: Store, chunks: readonly NewExtent[], how: 'later' | number = DEFAULT_ZSTD_LEVEL): Promise<Map<string, StoredChunk>> {
  const out = new Map<string, StoredChunk>();
  const jobs: Promise<void>[] = [];
  for (const c of chunks) {
    const k = c.digest.toString('latin1');
    if (out.has(k) || store.hasChunk(c.digest)) continue;
    if (how === 'later') {
      out.set(k, { codec: 0, data: c.plain, compressLater: true });
      continue;
    }
    out.set(k, { codec: 0, data: c.plain }); // placeholder, replaced below
    jobs.push(encodeChunkAsync(c.plain, how).then((enc) => void out.set(k, enc)));
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
  // A kept part of a run names the chunk its removed run names: referenced, present or absent.
  for (const e of plan.kept ?? []) {
    if (!store.refChunk(e.digest, e.length)) throw new CorruptStoreError(`inode ${ino}: run at ${e.offset} names a chunk the store does not know`);
  }
  for (const e of plan.removed) {
    store.removeExtent(ino, e);
    store.unrefChunk(e.digest);
  }
  for (const e of plan.kept ?? []) store.putExtent(ino, e);
  for (const e of plan.added) store.putExtent(ino, e);
  // Join the new records with their neighbours where those are runs of the same chunk. Here, not
  // when planning: a batch may be planned before the one before it is applied.
  let first = Infinity;
  let end = -1;
  for (const list of [plan.kept ?? [], plan.added]) {
    if (list.length === 0) continue; // each is in offset order
    first = Math.min(first, list[0].offset);
    end = Math.max(end, runEnd(list[list.length - 1]));
  }
  if (end < 0) return;
  joinAt(store, ino, first);
  joinAt(store, ino, end);
}

/** Make the records ending and starting at `pos` one run when they name the same chunk (inside txn). */
function joinAt(store: Store, ino: Ino, pos: number): void {
  if (pos <= 0) return;
  const a = store.runs(ino, pos - 1, pos, 1)[0];
  const b = store.runs(ino, pos, pos + 1, 1)[0];
  if (!a || !b || runEnd(a) !== pos || b.offset !== pos || !sameChunks(a, b)) return;
  store.removeExtent(ino, b);
  store.putExtent(ino, { ...a, count: a.count + b.count });
  store.unrefChunk(b.digest); // two records became one
}

/** Drop a file's whole recipe (inside txn): used when its inode goes away. One reference per record. */
export function dropContent(store: Store, ino: Ino): void {
  for (const e of store.runs(ino)) {
    store.removeExtent(ino, e);
    store.unrefChunk(e.digest);
  }
}

/**
 * Copy without copying (inside txn): `to`, whose recipe ends at `start`, gets `from`'s chunks
 * from `start` on that lie wholly before `end` (from at most `maxExtents` of its records), each
 * record written one reference more. Returns where the copied extents end: `start` when none can be copied.
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
  // Records are copied whole or in part (a run from `start` or up to `end`, between its chunks);
  // the first joins `to`'s last record when that is a run of the same chunk.
  let pos = start;
  let last = start > 0 ? store.runs(to, start - 1, start, 1)[0] : undefined;
  for (const r of store.runs(from, start, end, maxExtents)) {
    if (r.offset > pos || (pos - r.offset) % r.length !== 0) break;
    const count = Math.min(r.count - (pos - r.offset) / r.length, Math.floor((end - pos) / r.length));
    if (count <= 0) break;
    if (last && runEnd(last) === pos && sameChunks(last, r)) {
      store.putExtent(to, { ...last, count: last.count + count });
    } else {
      if (!store.refChunk(r.digest, r.length)) throw new CorruptStoreError(`inode ${from}: extent at ${r.offset} names a chunk the store does not know`);
      store.putExtent(to, { offset: pos, length: r.length, digest: r.digest, count });
    }
    last = undefined;
    pos += count * r.length;
  }
  return pos;
}

/** Bytes a plan adds to the database, for the size-limit check. */
export function planBytes(plan: RewritePlan, encoded: Map<string, StoredChunk>): number {
  let n = plan.added.length * 64;
  for (const c of encoded.values()) n += c.data.length + 64;
  return n;
}
