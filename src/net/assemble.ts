// Building missing chunks of slinked files from objects this machine already has. A slinked
// file embeds each library byte for byte and names it by its digest in the manifest, and its
// page digest table holds the SHA-256 of every code page of each object. When a seeded file has
// an object's digest, the bytes of that object, and its digest runs, can be produced here: only
// the rest of a chunk (stub, padding, the program, manifest records) is asked of the peer as
// byte ranges. Every chunk built this way is verified against its digest before it is used;
// one that does not verify is fetched whole instead.
import { createHash } from 'node:crypto';
import { verifyDigest } from '../chunking/digest';
import { type LocalObjects, localObject, readAt } from './localObjects';
import type { ChunkWanted, PeerClient } from './client';
import { type ChunkRange, type FileLayout, PAGE_BYTES, PAGE_HASH_BYTES, RANGES_PER_REQUEST, type Recipe } from './protocol';
import { type FetchOptions, fetchChunks, runPool } from './transfer';

export type { LocalObjects } from './localObjects';

/** Bytes of a slinked file this machine can produce: an object's bytes, or hashes of its pages. */
interface Segment {
  start: number;
  end: number;
  kind: 'object' | 'hashes';
  path: string;
  objectSize: number;
  /** hashes: the page whose hash sits at `start`. */
  firstPage: number;
}

interface Piece {
  /** Offset in the chunk. */
  at: number;
  length: number;
  local?: Segment;
  /** Where the piece starts in the segment's own coordinates (object offset, or hash offset). */
  from: number;
}

interface ChunkPlan {
  wanted: ChunkWanted & { length: number };
  pieces: Piece[];
  remote: Map<number, Buffer>;
  remoteBytes: number;
}

export interface AssemblyStats {
  /** Chunks built entirely here, and bytes of chunks (wholly or partly) built from local objects. */
  objectChunks: number;
  objectBytes: number;
  /** Chunks that needed some bytes from the peer, and those bytes. */
  fetchedChunks: number;
  fetchedBytes: number;
}

export class Assembler {
  private readonly plans = new Map<string, ChunkPlan>();

  constructor(private readonly locals: LocalObjects) {}

  get planned(): number {
    return this.plans.size;
  }

  /** Learn a file's layout: chunks it covers with local objects get a plan (first placement wins). */
  addFile(recipe: Recipe, layout: FileLayout): void {
    const segs: Segment[] = [];
    for (let i = 0; i < layout.objects.length; i++) {
      const o = layout.objects[i];
      const local = localObject(this.locals, layout, i);
      if (!local) continue;
      segs.push({ start: o.offset, end: o.offset + o.size, kind: 'object', path: local.path, objectSize: o.size, firstPage: 0 });
      for (const r of o.runs) {
        if (r.count > 0) segs.push({ start: r.at, end: r.at + r.count * PAGE_HASH_BYTES, kind: 'hashes', path: local.path, objectSize: o.size, firstPage: r.firstPage });
      }
    }
    if (segs.length === 0) return;
    segs.sort((a, b) => a.start - b.start);
    let offset = 0;
    for (const c of recipe.chunks) {
      const k = c.digest.toString('latin1');
      if (!this.plans.has(k)) {
        const pieces = cover(offset, c.length, segs);
        if (pieces.some((p) => p.local)) {
          const remoteBytes = pieces.filter((p) => !p.local).reduce((n, p) => n + p.length, 0);
          this.plans.set(k, { wanted: { digest: c.digest, length: c.length }, pieces, remote: new Map(), remoteBytes });
        }
      }
      offset += c.length;
    }
  }

  /**
   * Get `wanted`: chunks with a plan are built here (asking the peer only for their uncovered
   * ranges), the others are fetched whole. `onChunk` gets every chunk verified.
   */
  async fetch(
    client: PeerClient,
    wanted: ReadonlyArray<ChunkWanted & { length: number }>,
    opts: FetchOptions,
    onChunk: (w: ChunkWanted, plain: Buffer, zstd?: Buffer) => void | Promise<void>,
    stats: AssemblyStats,
  ): Promise<void> {
    const whole: Array<ChunkWanted & { length: number }> = [];
    const partial: ChunkPlan[] = [];
    for (const w of wanted) {
      const p = this.plans.get(w.digest.toString('latin1'));
      if (!p) whole.push(w);
      else if (p.remoteBytes === 0) {
        const b = await this.build(p);
        if (b) {
          stats.objectChunks++;
          stats.objectBytes += b.length;
          await onChunk(w, b);
        } else whole.push(w);
      } else partial.push(p);
    }
    // The uncovered ranges, in batches; a chunk is built as soon as its last range arrives.
    const batches: Array<Array<{ plan: ChunkPlan; piece: number; range: ChunkRange }>> = [];
    let cur: (typeof batches)[number] = [];
    let bytes = 0;
    for (const p of partial) {
      p.pieces.forEach((piece, i) => {
        if (piece.local) return;
        if (cur.length && (bytes + piece.length > opts.batchBytes || cur.length >= RANGES_PER_REQUEST)) {
          batches.push(cur);
          cur = [];
          bytes = 0;
        }
        cur.push({ plan: p, piece: i, range: { digest: p.wanted.digest, start: piece.at, length: piece.length } });
        bytes += piece.length;
      });
    }
    if (cur.length) batches.push(cur);
    await runPool(batches, opts.parallel, async (batch) => {
      const lost = await client.ranges(
        batch.map((b) => b.range),
        { codec: opts.codec, level: opts.level, blockBytes: opts.batchBytes },
        async (i, piece) => {
          const { plan } = batch[i];
          plan.remote.set(batch[i].piece, piece);
          if (plan.remote.size < plan.pieces.filter((x) => !x.local).length) return;
          const b = await this.build(plan);
          if (!b) return void whole.push(plan.wanted);
          stats.fetchedChunks++;
          stats.fetchedBytes += plan.remoteBytes;
          stats.objectBytes += b.length - plan.remoteBytes;
          plan.remote.clear();
          await onChunk(plan.wanted, b);
        },
      );
      for (const i of lost) {
        const { plan } = batch[i];
        if (!whole.includes(plan.wanted)) whole.push(plan.wanted);
      }
    });
    if (whole.length === 0) return;
    await fetchChunks(client, whole, opts, async (w, c) => {
      stats.fetchedChunks++;
      stats.fetchedBytes += c.plain.length;
      await onChunk(w, c.plain, c.zstd);
    });
  }

  /** The chunk from its local and fetched pieces, if it verifies. */
  private async build(p: ChunkPlan): Promise<Buffer | undefined> {
    const out = Buffer.alloc(p.wanted.length);
    try {
      for (let i = 0; i < p.pieces.length; i++) {
        const piece = p.pieces[i];
        const bytes = piece.local ? await readLocal(piece) : p.remote.get(i);
        if (!bytes || bytes.length !== piece.length) return undefined;
        bytes.copy(out, piece.at);
      }
    } catch {
      return undefined; // a local file went away or shrank: fetch the chunk instead
    }
    return verifyDigest(p.wanted.digest, out) ? out : undefined;
  }
}

/** Split the chunk at [offset, offset + length) of a file into local and remote pieces. */
function cover(offset: number, length: number, segs: readonly Segment[]): Piece[] {
  const end = offset + length;
  const pieces: Piece[] = [];
  let pos = offset;
  for (const s of segs) {
    if (s.end <= pos) continue;
    if (s.start >= end) break;
    if (s.start > pos) pieces.push({ at: pos - offset, length: s.start - pos, from: 0 });
    const a = Math.max(pos, s.start);
    const b = Math.min(end, s.end);
    pieces.push({ at: a - offset, length: b - a, local: s, from: a - s.start });
    pos = b;
  }
  if (pos < end) pieces.push({ at: pos - offset, length: end - pos, from: 0 });
  return pieces;
}

async function readLocal(p: Piece): Promise<Buffer> {
  const s = p.local!;
  if (s.kind === 'object') {
    const b = await readAt(s.path, p.from, p.length);
    return b;
  }
  // Hashes of pages: the piece spans hash bytes [from, from + length) of the run.
  const firstHash = Math.floor(p.from / PAGE_HASH_BYTES);
  const lastHash = Math.floor((p.from + p.length - 1) / PAGE_HASH_BYTES);
  const pages = await readAt(s.path, (s.firstPage + firstHash) * PAGE_BYTES, (lastHash - firstHash + 1) * PAGE_BYTES);
  // Bytes of a page past the object's end are zero (as the digest table defines them).
  const objectEnd = s.objectSize - (s.firstPage + firstHash) * PAGE_BYTES;
  if (objectEnd < pages.length) pages.fill(0, Math.max(0, objectEnd));
  const hashes = Buffer.alloc((lastHash - firstHash + 1) * PAGE_HASH_BYTES);
  for (let h = 0; h <= lastHash - firstHash; h++) {
    createHash('sha256')
      .update(pages.subarray(h * PAGE_BYTES, (h + 1) * PAGE_BYTES))
      .digest()
      .copy(hashes, h * PAGE_HASH_BYTES);
  }
  const skip = p.from - firstHash * PAGE_HASH_BYTES;
  return hashes.subarray(skip, skip + p.length);
}
