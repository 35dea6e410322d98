// Compact recipes: a slinked file's recipe is mostly the chunks of the libraries it embeds, and
// a receiver that has those libraries can compute those chunk digests itself (a chunk's end
// depends only on bytes from its own start, so chunking the local copy from the same offset
// gives the same chunks). A compact recipe sends such runs as (object, chunk count, byte count)
// and every other chunk as usual; the receiver expands it and checks the full canonical recipe
// against the file digest, so nothing here needs trusting. docs/FORMAT.md, "Wire protocol".
import { asDigest, digestLengthForId } from '../chunking/digest';
import { MAX_CHUNK_BYTES, PeerProtocolError, type FileLayout, type Recipe, type RecipeChunk } from './protocol';

const MAGIC = Buffer.from('SLC1', 'latin1');
const HEADER = 20;
const ONE = 0;
const RUN = 1;

export type CompactEntry = { kind: 'chunk'; chunk: RecipeChunk } | { kind: 'run'; object: number; chunks: number; bytes: number };

export interface CompactRecipe {
  mode: number;
  size: number;
  entries: CompactEntry[];
}

/** Which objects of a layout the receiver has: a bitmap, bit i = object i. */
export function hasObject(bitmap: Buffer, i: number): boolean {
  return (bitmap[i >> 3] ?? 0) & (1 << (i & 7)) ? true : false;
}

/** Runs of at least two chunks lying wholly inside an object the receiver has become run entries. */
export function compactRecipe(r: Recipe, layout: FileLayout, bitmap: Buffer): Buffer {
  const objects = layout.objects.map((o, i) => ({ ...o, i })).filter((o) => hasObject(bitmap, o.i)).sort((a, b) => a.offset - b.offset);
  const entries: CompactEntry[] = [];
  let offset = 0;
  let k = 0;
  let run: { object: number; chunks: RecipeChunk[] } | undefined;
  const flush = () => {
    if (!run) return;
    if (run.chunks.length >= 2) entries.push({ kind: 'run', object: run.object, chunks: run.chunks.length, bytes: run.chunks.reduce((n, c) => n + c.length, 0) });
    else for (const c of run.chunks) entries.push({ kind: 'chunk', chunk: c });
    run = undefined;
  };
  for (const c of r.chunks) {
    while (k < objects.length && objects[k].offset + objects[k].size <= offset) k++;
    const o = objects[k];
    const inside = o !== undefined && offset >= o.offset && offset + c.length <= o.offset + o.size;
    if (inside && run && run.object === o.i) run.chunks.push(c);
    else {
      flush();
      if (inside) run = { object: o.i, chunks: [c] };
      else entries.push({ kind: 'chunk', chunk: c });
    }
    offset += c.length;
  }
  flush();
  return encodeCompact({ mode: r.mode, size: r.size, entries });
}

export function encodeCompact(c: CompactRecipe): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(c.mode >>> 0, 4);
  head.writeBigUInt64LE(BigInt(c.size), 8);
  head.writeUInt32LE(c.entries.length, 16);
  parts.push(head);
  for (const e of c.entries) {
    if (e.kind === 'chunk') {
      const b = Buffer.allocUnsafe(5 + e.chunk.digest.length);
      b.writeUInt8(ONE, 0);
      b.writeUInt32LE(e.chunk.length, 1);
      e.chunk.digest.copy(b, 5);
      parts.push(b);
    } else {
      const b = Buffer.allocUnsafe(15);
      b.writeUInt8(RUN, 0);
      b.writeUInt16LE(e.object, 1);
      b.writeUInt32LE(e.chunks, 3);
      b.writeBigUInt64LE(BigInt(e.bytes), 7);
      parts.push(b);
    }
  }
  return Buffer.concat(parts);
}

export function isCompact(b: Buffer): boolean {
  return b.length >= 4 && b.subarray(0, 4).equals(MAGIC);
}

/** Parse a compact recipe from a peer; totals are bounded by `maxChunks` before any expansion. */
export function decodeCompact(b: Buffer, maxChunks: number, objects: number): CompactRecipe {
  const bad = (why: string) => new PeerProtocolError(`malformed compact recipe: ${why}`);
  if (b.length < HEADER || !isCompact(b)) throw bad('bad header');
  const mode = b.readUInt32LE(4);
  const size = Number(b.readBigUInt64LE(8));
  const count = b.readUInt32LE(16);
  if (count > maxChunks) throw new PeerProtocolError(`recipe has ${count} entries, more than the limit of ${maxChunks}`);
  const entries: CompactEntry[] = [];
  let o = HEADER;
  let chunks = 0;
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (o >= b.length) throw bad('truncated');
    if (b[o] === ONE) {
      if (o + 6 > b.length) throw bad('truncated');
      const length = b.readUInt32LE(o + 1);
      const dlen = digestLengthForId(b[o + 5]);
      if (dlen === 0 || o + 5 + dlen > b.length) throw bad('bad digest');
      if (length === 0 || length > MAX_CHUNK_BYTES) throw bad(`chunk of ${length} bytes`);
      entries.push({ kind: 'chunk', chunk: { length, digest: asDigest(Buffer.from(b.subarray(o + 5, o + 5 + dlen))) } });
      o += 5 + dlen;
      chunks++;
      total += length;
    } else if (b[o] === RUN) {
      if (o + 15 > b.length) throw bad('truncated');
      const object = b.readUInt16LE(o + 1);
      const n = b.readUInt32LE(o + 3);
      const bytes = Number(b.readBigUInt64LE(o + 7));
      if (object >= objects || n < 1 || bytes < n || bytes > n * MAX_CHUNK_BYTES) throw bad('bad run');
      entries.push({ kind: 'run', object, chunks: n, bytes });
      o += 15;
      chunks += n;
      total += bytes;
    } else throw bad(`entry kind ${b[o]}`);
    if (chunks > maxChunks) throw new PeerProtocolError(`recipe has more than ${maxChunks} chunks`);
  }
  if (o !== b.length) throw bad('trailing bytes');
  if (total !== size) throw bad(`entries add up to ${total} bytes, size says ${size}`);
  return { mode, size, entries };
}

/** A compact recipes request: each file digest followed by u16 bitmap length and the bitmap. */
export function encodeCompactRequest(items: ReadonlyArray<{ digest: Buffer; bitmap: Buffer }>): Buffer {
  return Buffer.concat(
    items.flatMap((it) => {
      const n = Buffer.allocUnsafe(2);
      n.writeUInt16LE(it.bitmap.length);
      return [it.digest, n, it.bitmap];
    }),
  );
}

export function decodeCompactRequest(body: Buffer, max: number): Array<{ digest: import('../chunking/digest').Digest; bitmap: Buffer }> {
  const out: Array<{ digest: import('../chunking/digest').Digest; bitmap: Buffer }> = [];
  let o = 0;
  while (o < body.length) {
    const len = digestLengthForId(body[o]);
    if (len === 0 || o + len + 2 > body.length) throw new PeerProtocolError('malformed recipes request');
    const n = body.readUInt16LE(o + len);
    if (n > 128 || o + len + 2 + n > body.length) throw new PeerProtocolError('malformed recipes request');
    if (out.length >= max) throw new PeerProtocolError(`more than ${max} digests in one request`);
    out.push({ digest: asDigest(Buffer.from(body.subarray(o, o + len))), bitmap: Buffer.from(body.subarray(o + len + 2, o + len + 2 + n)) });
    o += len + 2 + n;
  }
  return out;
}
