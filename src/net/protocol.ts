// The wire protocol shared by server and client (docs/FORMAT.md, "Wire protocol"): endpoint
// paths, limits, the canonical file recipe whose hash names a file, tree entries and the names
// they may carry, and the block framing of chunk replies. Pure functions, no I/O: both sides
// validate with the same code, and everything a peer sends is checked here before use.
import { asDigest, digestLengthForId, digestOf, type Digest } from '../chunking/digest';
import { LBFS_PARAMS } from '../chunking/chunker';
import { decodeName, encodeName, nameByteLength } from '../store/names';

export const API = '/slinkyfs/1';
export const PROTOCOL_VERSION = 1;

/** The largest chunk the store's chunker makes: no reply may claim a longer one. */
export const MAX_CHUNK_BYTES = LBFS_PARAMS.maxSize;

/** Bounds both sides hold to; the server announces its own in /info, the client enforces its own. */
export const LIMITS = {
  /** Digests in one chunk request. */
  batchChunks: 4096,
  /** Plaintext bytes one chunk request may ask for. */
  batchBytes: 32 << 20,
  /** Plaintext bytes in one compressed block of a chunk reply. */
  blockBytes: 32 << 20,
  /** File digests in one recipes request. */
  recipesPerRequest: 1024,
  /** Chunks in one recipe (1 Mi chunks is a file of about 8 GiB). */
  recipeChunks: 1 << 20,
  /** Entries in one page of a tree listing. */
  treePage: 2000,
  /** Recipe chunks the server hashes to produce one page of a tree listing. */
  treePageChunks: 1 << 20,
  /** Highest zstd level a client may ask the server to spend on a chunk reply (xz: preset 9). */
  maxLevel: 19,
  maxXzLevel: 9,
  /** A JSON reply (info, stat, one tree page). */
  jsonBytes: 16 << 20,
  /** Bytes of one path a client may name. */
  pathBytes: 4096,
  /** Bytes of one path component. */
  nameBytes: 255,
} as const;

/** A reply that breaks the protocol: wrong bytes, bad framing, too large, names outside the tree. */
export class PeerProtocolError extends Error {
  override name = 'PeerProtocolError';
  readonly exitCode = 2;
}

// ---- paths -----------------------------------------------------------------------------------

/**
 * A name (or path) as a query parameter value: its bytes (src/store/names.ts), percent-encoded.
 * For a UTF-8 name this is what encodeURIComponent gives; encodeURIComponent would throw on the
 * lone surrogates that stand for the bytes of a name that is not UTF-8.
 */
export function queryName(name: string): string {
  let out = '';
  for (const b of encodeName(name)) {
    out += /[A-Za-z0-9\-_.!~*'()]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The name in query parameter `key` of `url` (null if absent): percent-decoded to bytes, then
 * to a name. URLSearchParams would decode the bytes as UTF-8 and replace those that are not.
 */
export function nameParam(url: URL, key: string): string | null {
  for (const pair of url.search.replace(/^\?/, '').split('&')) {
    const eq = pair.indexOf('=');
    if ((eq < 0 ? pair : pair.slice(0, eq)) !== key) continue;
    const raw = eq < 0 ? '' : pair.slice(eq + 1);
    const bytes: number[] = [];
    for (let i = 0; i < raw.length; i++) {
      const hex = raw[i] === '%' ? raw.slice(i + 1, i + 3) : '';
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else {
        bytes.push(...Buffer.from(raw[i] === '+' ? ' ' : raw[i], 'utf8'));
      }
    }
    return decodeName(Buffer.from(bytes));
  }
  return null;
}

/**
 * Components of a relative name from the wire ("bin/ls"), or an error message. Rejected: empty
 * names or components, ".", "..", absolute names, NUL, over-long names. Nothing a peer names can
 * leave the directory it is placed in.
 */
export function nameComponents(name: string): string[] | string {
  if (typeof name !== 'string' || name.length === 0) return 'empty name';
  if (nameByteLength(name) > LIMITS.pathBytes) return 'name too long';
  if (name.startsWith('/')) return `absolute name ${JSON.stringify(name)}`;
  if (name.includes('\0')) return 'name contains NUL';
  const parts = name.split('/');
  for (const p of parts) {
    if (p === '') return `empty component in ${JSON.stringify(name)}`;
    if (p === '.' || p === '..') return `"${p}" in ${JSON.stringify(name)}`;
    if (nameByteLength(p) > LIMITS.nameBytes) return `component too long in ${JSON.stringify(name)}`;
  }
  return parts;
}

/** Components of an absolute request path ("/a/b" -> ["a", "b"], "/" -> []), or an error message. */
export function requestPathComponents(p: string): string[] | string {
  if (typeof p !== 'string' || !p.startsWith('/')) return 'path must be absolute';
  const trimmed = p.replace(/\/+$/, '').replace(/^\/+/, '');
  if (trimmed === '') return [];
  return nameComponents(trimmed.replace(/\/{2,}/g, '/'));
}

// ---- recipes ---------------------------------------------------------------------------------

/** One chunk of a recipe; offsets are implicit (chunks follow each other from offset 0). */
export interface RecipeChunk {
  length: number;
  digest: Digest;
}

/** What names a file: its mode, its size and its chunks. */
export interface Recipe {
  mode: number;
  size: number;
  chunks: RecipeChunk[];
}

const RECIPE_MAGIC = Buffer.from('SLR1', 'latin1');
const RECIPE_HEADER = 20;

/** Canonical bytes of a recipe: what the file digest hashes (docs/FORMAT.md, "Wire protocol"). */
export function encodeRecipe(r: Recipe): Buffer {
  let n = RECIPE_HEADER;
  for (const c of r.chunks) n += 4 + c.digest.length;
  const b = Buffer.allocUnsafe(n);
  RECIPE_MAGIC.copy(b, 0);
  b.writeUInt32LE(r.mode >>> 0, 4);
  b.writeBigUInt64LE(BigInt(r.size), 8);
  b.writeUInt32LE(r.chunks.length, 16);
  let o = RECIPE_HEADER;
  for (const c of r.chunks) {
    o = b.writeUInt32LE(c.length, o);
    o += c.digest.copy(b, o);
  }
  return b;
}

/** The self-certifying name of a file: the digest of its canonical recipe. */
export function fileDigest(r: Recipe | Buffer): Digest {
  return digestOf(Buffer.isBuffer(r) ? r : encodeRecipe(r));
}

/**
 * Parse and check recipe bytes from a peer: framing, chunk lengths within the chunker's bounds,
 * lengths adding up to the size, the chunk count within `maxChunks` (checked before anything
 * else is read, so a huge claimed count costs nothing).
 */
export function decodeRecipe(b: Buffer, maxChunks: number = LIMITS.recipeChunks): Recipe {
  const bad = (why: string) => new PeerProtocolError(`malformed recipe: ${why}`);
  if (b.length < RECIPE_HEADER || !b.subarray(0, 4).equals(RECIPE_MAGIC)) throw bad('bad header');
  const mode = b.readUInt32LE(4);
  const size = Number(b.readBigUInt64LE(8));
  const count = b.readUInt32LE(16);
  if (count > maxChunks) throw new PeerProtocolError(`recipe has ${count} chunks, more than the limit of ${maxChunks}`);
  if (!Number.isSafeInteger(size)) throw bad('size out of range');
  if ((mode & 0o170000) !== 0o100000) throw bad('not a regular file');
  const chunks: RecipeChunk[] = new Array(count);
  let o = RECIPE_HEADER;
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (o + 5 > b.length) throw bad('truncated');
    const length = b.readUInt32LE(o);
    const dlen = digestLengthForId(b[o + 4]);
    if (dlen === 0) throw bad('unknown digest algorithm');
    if (o + 4 + dlen > b.length) throw bad('truncated');
    if (length === 0 || length > MAX_CHUNK_BYTES) throw bad(`chunk of ${length} bytes`);
    chunks[i] = { length, digest: asDigest(Buffer.from(b.subarray(o + 4, o + 4 + dlen))) };
    o += 4 + dlen;
    total += length;
  }
  if (o !== b.length) throw bad('trailing bytes');
  if (total !== size) throw bad(`chunks add up to ${total} bytes, size says ${size}`);
  return { mode, size, chunks };
}

// ---- tree entries ----------------------------------------------------------------------------

export type EntryType = 'file' | 'dir' | 'symlink';

/** One entry of a tree listing or a stat reply, as JSON on the wire. */
export interface TreeEntry {
  /** Relative to the listed directory ("bin/ls"); for stat, the base name. */
  name: string;
  type: EntryType;
  /** Permission bits (0..0o7777). */
  mode: number;
  mtime: number;
  size: number;
  /** Files: the file digest (sha256-<hex>). */
  digest?: string;
  /** Symlinks: the target. */
  target?: string;
}

export interface TreePage {
  entries: TreeEntry[];
  /** Name of the last entry: pass as `after` for the next page. Absent on the last page. */
  next?: string;
}

const DIGEST_TEXT = /^[a-z0-9]+-[0-9a-f]{16,128}$/;

/** Check one entry from a peer: its name, type, mode, times and what its type requires. */
export function checkEntry(e: unknown): TreeEntry {
  const bad = (why: string) => new PeerProtocolError(`bad tree entry: ${why}`);
  if (!e || typeof e !== 'object') throw bad('not an object');
  const x = e as Record<string, unknown>;
  if (typeof x.name !== 'string') throw bad('no name');
  const parts = nameComponents(x.name);
  if (typeof parts === 'string') throw bad(parts);
  if (x.type !== 'file' && x.type !== 'dir' && x.type !== 'symlink') throw bad(`type ${String(x.type)}`);
  if (!Number.isInteger(x.mode) || (x.mode as number) < 0 || (x.mode as number) > 0o7777) throw bad(`mode of ${x.name}`);
  if (typeof x.mtime !== 'number' || !Number.isFinite(x.mtime)) throw bad(`mtime of ${x.name}`);
  if (!Number.isSafeInteger(x.size) || (x.size as number) < 0) throw bad(`size of ${x.name}`);
  const out: TreeEntry = { name: x.name, type: x.type, mode: x.mode as number, mtime: x.mtime, size: x.size as number };
  if (x.type === 'file') {
    if (typeof x.digest !== 'string' || !DIGEST_TEXT.test(x.digest)) throw bad(`digest of ${x.name}`);
    out.digest = x.digest;
  }
  if (x.type === 'symlink') {
    if (typeof x.target !== 'string' || x.target.length === 0 || x.target.includes('\0') || nameByteLength(x.target) > LIMITS.pathBytes) {
      throw bad(`target of ${x.name}`);
    }
    out.target = x.target;
  }
  return out;
}

/**
 * Checks a listing as a whole while it arrives: every entry's parent is the listed root or a
 * directory listed before it (never a symlink or a file), and no name comes twice. This is what
 * stops a peer from steering a write through a symlink it planted.
 */
export class TreeChecker {
  private readonly dirs = new Set<string>(['']);
  private readonly seen = new Set<string>();
  count = 0;

  constructor(private readonly maxEntries: number) {}

  add(e: TreeEntry): void {
    if (++this.count > this.maxEntries) throw new PeerProtocolError(`tree has more than ${this.maxEntries} entries`);
    if (this.seen.has(e.name)) throw new PeerProtocolError(`tree lists ${e.name} twice`);
    const slash = e.name.lastIndexOf('/');
    const parent = slash < 0 ? '' : e.name.slice(0, slash);
    if (!this.dirs.has(parent)) throw new PeerProtocolError(`tree lists ${e.name} before (or without) its directory`);
    this.seen.add(e.name);
    if (e.type === 'dir') this.dirs.add(e.name);
  }
}

// ---- chunk reply blocks ----------------------------------------------------------------------

/** Block payload codecs. */
export const BLOCK_RAW = 0;
export const BLOCK_ZSTD = 1;
export const BLOCK_XZ = 2;

/** Compressors a client may ask the server to pack blocks with. */
export type WireCodec = 'zstd' | 'xz';
/** A chunk length meaning "the server does not have this chunk". */
export const NOT_HERE = 0xffffffff;
/** codec u8, count u32, encoded length u32. */
export const BLOCK_HEADER = 9;

export function encodeBlockHeader(codec: number, lengths: readonly number[], encodedLength: number): Buffer {
  const b = Buffer.allocUnsafe(BLOCK_HEADER + 4 * lengths.length);
  b.writeUInt8(codec, 0);
  b.writeUInt32LE(lengths.length, 1);
  b.writeUInt32LE(encodedLength, 5);
  for (let i = 0; i < lengths.length; i++) b.writeUInt32LE(lengths[i], BLOCK_HEADER + 4 * i);
  return b;
}

/** Most encoded bytes a block may have for `plain` bytes of chunks (zstd's and xz's worst case, rounded up). */
export function maxEncoded(plain: number): number {
  return plain + (plain >> 7) + 1024;
}

/** Recipes replies are one zstd frame of the plain reply, after its length (u32): digests repeat across files. */
export const RECIPES_LEVEL = 19;

/** Parse the concatenated digests of a request body. */
export function decodeDigestList(body: Buffer, max: number): Digest[] {
  const out: Digest[] = [];
  let o = 0;
  while (o < body.length) {
    const len = digestLengthForId(body[o]);
    if (len === 0 || o + len > body.length) throw new PeerProtocolError('malformed digest list');
    if (out.length >= max) throw new PeerProtocolError(`more than ${max} digests in one request`);
    out.push(asDigest(Buffer.from(body.subarray(o, o + len))));
    o += len;
  }
  return out;
}

// ---- layouts of slinked files ----------------------------------------------------------------

/** Bytes of one page digest in a slinked file's digest table (sha256 without its tag byte). */
export const PAGE_HASH_BYTES = 32;
export const PAGE_BYTES = 4096;
/** File digests in one layouts request. */
export const LAYOUTS_PER_REQUEST = 256;
/** Byte ranges in one ranges request. */
export const RANGES_PER_REQUEST = 4096;

/**
 * Where the objects of a slinked file sit in it, and where its page digest table keeps the
 * digests of each object's code pages: a receiver that has an object locally (found by its
 * digest) can rebuild those bytes itself and ask the peer only for the rest.
 */
export interface ObjectLayout {
  offset: number;
  size: number;
  /** Digest of the object's bytes (sha256-<hex>). */
  digest: string;
  /** Runs of consecutive page hashes: `count` hashes of pages firstPage.. at file offset `at`. */
  runs: Array<{ firstPage: number; count: number; at: number }>;
}

export interface FileLayout {
  objects: ObjectLayout[];
}

/** Check a layout from a peer against the size of the file it describes. */
export function checkLayout(v: unknown, fileSize: number): FileLayout {
  const bad = (why: string) => new PeerProtocolError(`bad layout: ${why}`);
  if (!v || typeof v !== 'object' || !Array.isArray((v as FileLayout).objects)) throw bad('not an object list');
  const objects = (v as FileLayout).objects;
  if (objects.length > 1024) throw bad('too many objects');
  const int = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  for (const o of objects) {
    if (!o || !int(o.offset) || !int(o.size) || o.offset + o.size > fileSize) throw bad('object outside the file');
    if (typeof o.digest !== 'string' || !DIGEST_TEXT.test(o.digest)) throw bad('object digest');
    if (!Array.isArray(o.runs) || o.runs.length > 4096) throw bad('runs');
    for (const r of o.runs) {
      if (!r || !int(r.firstPage) || !int(r.count) || !int(r.at)) throw bad('run');
      if (r.at + r.count * PAGE_HASH_BYTES > fileSize) throw bad('digest run outside the file');
      if ((r.firstPage + r.count - 1) * PAGE_BYTES >= o.size && r.count > 0) throw bad('digest run past its object');
    }
  }
  return { objects: objects.map((o) => ({ offset: o.offset, size: o.size, digest: o.digest, runs: o.runs.map((r) => ({ firstPage: r.firstPage, count: r.count, at: r.at })) })) };
}

/** One byte range of a chunk, asked for by a ranges request. */
export interface ChunkRange {
  digest: Digest;
  start: number;
  length: number;
}

export function encodeRanges(ranges: readonly ChunkRange[]): Buffer {
  return Buffer.concat(
    ranges.map((r) => {
      const b = Buffer.allocUnsafe(r.digest.length + 8);
      r.digest.copy(b, 0);
      b.writeUInt32LE(r.start, r.digest.length);
      b.writeUInt32LE(r.length, r.digest.length + 4);
      return b;
    }),
  );
}

export function decodeRanges(body: Buffer, max: number): ChunkRange[] {
  const out: ChunkRange[] = [];
  let o = 0;
  while (o < body.length) {
    const len = digestLengthForId(body[o]);
    if (len === 0 || o + len + 8 > body.length) throw new PeerProtocolError('malformed range list');
    if (out.length >= max) throw new PeerProtocolError(`more than ${max} ranges in one request`);
    const digest = asDigest(Buffer.from(body.subarray(o, o + len)));
    out.push({ digest, start: body.readUInt32LE(o + len), length: body.readUInt32LE(o + len + 4) });
    o += len + 8;
  }
  return out;
}
