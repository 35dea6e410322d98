// The page table of a published object: the digest of every 4096-byte page of the object (code
// pages and all others), and which pages are code. It is computed when the object is published,
// from bytes that matched the object's whole-object digest (its name), and the code-page digests
// must equal the slinked file's own digest table; from then on every page the daemon serves is
// checked against it. The table ends with an HMAC under a key that never leaves the store
// directory: a table this store's daemon did not write (a tree fetched from a peer, a copied
// store) is not believed, whatever it says. Layout: docs/FORMAT.md, "Page cache".
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { algorithmOf, digestLengthForId, type Digest, type HashAlgorithm } from '../chunking/digest';
import { PAGE_SIZE } from '../elf/manifest';

export const TABLE_MAGIC = Buffer.from('SLINKYPT', 'latin1');
export const TABLE_VERSION = 1;
const HEADER_SIZE = 112;
const MAC_SIZE = 32;
const OBJECT_DIGEST_SLOT = 64;
/** Objects larger than this are not published (the stub copies them instead). */
export const MAX_OBJECT_SIZE = 4 * 1024 ** 3;

export const PAGE_CODE = 1;

export class PageTableFormatError extends Error {
  override name = 'PageTableFormatError';
}

export interface PageTable {
  /** Tagged whole-object digest (the object's name). */
  readonly object: Digest;
  readonly objectSize: number;
  /** Algorithm id of the page digests (1 = SHA-256) and the untagged hash length. */
  readonly algorithmId: number;
  readonly hashLength: number;
  readonly pageCount: number;
  /** One byte per page: PAGE_CODE when the page belongs to an executable, read-only segment. */
  readonly flags: Buffer;
  /** pageCount hashes of hashLength bytes, untagged, in page order. */
  readonly hashes: Buffer;
}

export const pageCountOf = (size: number) => Math.ceil(size / PAGE_SIZE);

/** Untagged hash of page `page` (a view into the table: copy it to keep it). */
export function pageHash(t: PageTable, page: number): Buffer {
  return t.hashes.subarray(page * t.hashLength, (page + 1) * t.hashLength);
}

/** The pool's key for a page: algorithm id and hash as a latin1 string (cheap Map key). */
export function pageKey(t: PageTable, page: number): string {
  return String.fromCharCode(t.algorithmId) + pageHash(t, page).toString('latin1');
}

/** Hash of one page as the manifest defines it: a short last page is hashed zero-padded. */
export function hashPage(page: Uint8Array, algorithm: HashAlgorithm): Buffer {
  const h = createHash(algorithm);
  h.update(page);
  if (page.length < PAGE_SIZE) h.update(Buffer.alloc(PAGE_SIZE - page.length));
  return h.digest();
}

const align8 = (n: number) => (n + 7) & ~7;

const mac = (key: Buffer, bytes: Buffer) => createHmac('sha256', key).update(bytes).digest();

/** The table's bytes, authenticated with the store's `key`. */
export function encodePageTable(t: PageTable, key: Buffer): Buffer {
  const flagsAt = HEADER_SIZE;
  const hashesAt = align8(flagsAt + t.pageCount);
  const macAt = hashesAt + t.pageCount * t.hashLength;
  const out = Buffer.alloc(macAt + MAC_SIZE);
  TABLE_MAGIC.copy(out, 0);
  out.writeUInt32LE(TABLE_VERSION, 8);
  out.writeUInt32LE(HEADER_SIZE, 12);
  out.writeBigUInt64LE(BigInt(t.objectSize), 16);
  out.writeUInt32LE(t.pageCount, 24);
  out.writeUInt8(t.algorithmId, 28);
  out.writeUInt8(t.hashLength, 29);
  out.writeUInt16LE(12, 30);
  out.writeUInt32LE(flagsAt, 32);
  out.writeUInt32LE(hashesAt, 36);
  out.writeUInt8(t.object.length, 40);
  t.object.copy(out, 48);
  t.flags.copy(out, flagsAt);
  t.hashes.copy(out, hashesAt);
  mac(key, out.subarray(0, macAt)).copy(out, macAt);
  return out;
}

function fail(what: string): never {
  throw new PageTableFormatError(`corrupt page table: ${what}`);
}

/** Parses a table, checks it was written with `key` and describes `expected` (the file's name). */
export function decodePageTable(b: Buffer, expected: Digest, key: Buffer): PageTable {
  if (b.length < HEADER_SIZE || !b.subarray(0, 8).equals(TABLE_MAGIC)) fail('bad magic');
  if (b.readUInt32LE(8) !== TABLE_VERSION || b.readUInt32LE(12) !== HEADER_SIZE) fail('unsupported version');
  const objectSize = Number(b.readBigUInt64LE(16));
  const pageCount = b.readUInt32LE(24);
  const algorithmId = b.readUInt8(28);
  const hashLength = b.readUInt8(29);
  if (b.readUInt16LE(30) !== 12) fail('page size is not 4096');
  if (objectSize > MAX_OBJECT_SIZE || pageCount !== pageCountOf(objectSize)) fail('page count does not match the object size');
  if (hashLength === 0 || digestLengthForId(algorithmId) !== hashLength + 1) fail(`unknown page digest algorithm ${algorithmId}`);
  const flagsAt = b.readUInt32LE(32);
  const hashesAt = b.readUInt32LE(36);
  if (flagsAt !== HEADER_SIZE || hashesAt !== align8(flagsAt + pageCount)) fail('sections out of place');
  const macAt = hashesAt + pageCount * hashLength;
  if (b.length !== macAt + MAC_SIZE) fail('wrong length');
  if (!timingSafeEqual(mac(key, b.subarray(0, macAt)), b.subarray(macAt))) fail('not written by this store (authentication failed)');
  const objectLen = b.readUInt8(40);
  if (objectLen > OBJECT_DIGEST_SLOT || !b.subarray(48, 48 + objectLen).equals(expected)) fail('written for another object');
  algorithmOf(expected);
  return {
    object: expected,
    objectSize,
    algorithmId,
    hashLength,
    pageCount,
    flags: Buffer.from(b.subarray(flagsAt, flagsAt + pageCount)),
    hashes: Buffer.from(b.subarray(hashesAt, hashesAt + pageCount * hashLength)),
  };
}

/**
 * The store's page table key: 32 random bytes in `<store>/pagecache.key` (mode 0600), made on
 * first use. It is outside the mount, so no peer, tree or copy of the mount's files carries it.
 */
export function storeTableKey(storeDir: string): Buffer {
  const file = `${storeDir}/pagecache.key`;
  try {
    const key = readFileSync(file);
    if (key.length === 32) return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, key, { mode: 0o600 });
  renameSync(tmp, file);
  return key;
}
