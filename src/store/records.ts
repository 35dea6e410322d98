// Binary codecs for the store's LMDB values. Fixed little-endian layouts (documented in
// docs/FORMAT.md) rather than msgpack: every byte is specified, so the store can be read by
// another implementation and a record's size is known without parsing.
import { asDigest, digestLengthForId, type Digest } from '../chunking/digest';
import { decodeName, encodeName } from './names';

export type Ino = number;
export const ROOT_INO: Ino = 1;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFSOCK = 0o140000;

export interface InodeRecord {
  ino: Ino;
  mode: number; // file type and permission bits, as st_mode
  uid: number;
  gid: number;
  nlink: number;
  size: number; // logical bytes; for symlinks the target's length
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** Symlink target; empty for other kinds. */
  target: string;
  /** Device number of a character or block device (the kernel's 32-bit encoding); else 0. */
  rdev?: number;
}

export function isDir(rec: InodeRecord): boolean {
  return (rec.mode & S_IFMT) === S_IFDIR;
}
export function isReg(rec: InodeRecord): boolean {
  return (rec.mode & S_IFMT) === S_IFREG;
}
export function isSymlink(rec: InodeRecord): boolean {
  return (rec.mode & S_IFMT) === S_IFLNK;
}

// Version 2 is version 1 with a u32 device number after the times. It is written only for
// records with a device number, so every other record (and every store without device nodes)
// keeps the version 1 bytes an older slinkyfs reads.
const INODE_VERSION = 1;
const INODE_VERSION_RDEV = 2;
const INODE_FIXED = 1 + 4 * 4 + 8 + 8 * 3; // version, mode, uid, gid, nlink, size, times

export function encodeInode(rec: InodeRecord): Buffer {
  const target = encodeName(rec.target);
  const rdev = rec.rdev ?? 0;
  const fixed = rdev === 0 ? INODE_FIXED : INODE_FIXED + 4;
  const b = Buffer.allocUnsafe(fixed + target.length);
  let o = b.writeUInt8(rdev === 0 ? INODE_VERSION : INODE_VERSION_RDEV, 0);
  o = b.writeUInt32LE(rec.mode >>> 0, o);
  o = b.writeUInt32LE(rec.uid >>> 0, o);
  o = b.writeUInt32LE(rec.gid >>> 0, o);
  o = b.writeUInt32LE(rec.nlink >>> 0, o);
  o = b.writeBigUInt64LE(BigInt(rec.size), o);
  o = b.writeDoubleLE(rec.atimeMs, o);
  o = b.writeDoubleLE(rec.mtimeMs, o);
  o = b.writeDoubleLE(rec.ctimeMs, o);
  if (rdev !== 0) o = b.writeUInt32LE(rdev >>> 0, o);
  target.copy(b, o);
  return b;
}

export function decodeInode(ino: Ino, b: Uint8Array): InodeRecord {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const version = buf[0];
  const fixed = version === INODE_VERSION_RDEV ? INODE_FIXED + 4 : INODE_FIXED;
  if (buf.length < fixed || (version !== INODE_VERSION && version !== INODE_VERSION_RDEV)) throw new RecordFormatError(`inode ${ino}: bad record`);
  const rec: InodeRecord = {
    ino,
    mode: buf.readUInt32LE(1),
    uid: buf.readUInt32LE(5),
    gid: buf.readUInt32LE(9),
    nlink: buf.readUInt32LE(13),
    size: Number(buf.readBigUInt64LE(17)),
    atimeMs: buf.readDoubleLE(25),
    mtimeMs: buf.readDoubleLE(33),
    ctimeMs: buf.readDoubleLE(41),
    target: decodeName(buf, fixed),
  };
  if (version === INODE_VERSION_RDEV) rec.rdev = buf.readUInt32LE(INODE_FIXED);
  return rec;
}

export class RecordFormatError extends Error {
  override name = 'RecordFormatError';
}

/** 8-byte big-endian inode key: big-endian so LMDB's byte order is numeric order. */
export function inoKey(ino: Ino): Buffer {
  const k = Buffer.allocUnsafe(8);
  k.writeBigUInt64BE(BigInt(ino));
  return k;
}
export function readIno(b: Uint8Array, offset = 0): Ino {
  return Number(Buffer.from(b.buffer, b.byteOffset, b.length).readBigUInt64BE(offset));
}

/** Directory entry key: parent inode (8 bytes BE) followed by the entry name's bytes (names.ts). */
export function direntKey(parent: Ino, name: string): Buffer {
  const n = encodeName(name);
  const k = Buffer.allocUnsafe(8 + n.length);
  k.writeBigUInt64BE(BigInt(parent));
  n.copy(k, 8);
  return k;
}

/** Extent key: inode (8 bytes BE) and the extent's file offset (8 bytes BE). */
export function extentKey(ino: Ino, offset: number): Buffer {
  const k = Buffer.allocUnsafe(16);
  k.writeBigUInt64BE(BigInt(ino));
  k.writeBigUInt64BE(BigInt(offset), 8);
  return k;
}

/** One entry of a file's recipe: the chunk that holds bytes [offset, offset + length). */
export interface Extent {
  offset: number;
  length: number;
  digest: Digest;
}

/**
 * One `extents` record: `count` consecutive chunks of the same length and digest from `offset`
 * on (chunk i holds bytes [offset + i * length, offset + (i + 1) * length)); count 1 is a plain
 * extent. A run is only a compact encoding of the recipe (docs/FORMAT.md, "Recipes").
 */
export interface Run extends Extent {
  count: number;
}

/** Where a record's chunks end. */
export function runEnd(r: Extent & { count?: number }): number {
  return r.offset + r.length * (r.count ?? 1);
}

/** Extent value: chunk length (u32 LE), the tagged digest, and for a run of 2 or more a u64 LE count. */
export function encodeExtentValue(length: number, digest: Digest, count = 1): Buffer {
  const v = Buffer.allocUnsafe(4 + digest.length + (count > 1 ? 8 : 0));
  v.writeUInt32LE(length, 0);
  digest.copy(v, 4);
  if (count > 1) v.writeBigUInt64LE(BigInt(count), 4 + digest.length);
  return v;
}

export function decodeExtent(key: Uint8Array, value: Uint8Array): Run {
  const k = Buffer.from(key.buffer, key.byteOffset, key.length);
  const v = Buffer.from(value.buffer, value.byteOffset, value.length);
  const dlen = v.length >= 5 ? digestLengthForId(v[4]) : 0;
  const plain = 4 + dlen;
  if (k.length !== 16 || dlen === 0 || (v.length !== plain && v.length !== plain + 8)) {
    throw new RecordFormatError('bad extent record');
  }
  const length = v.readUInt32LE(0);
  const count = v.length === plain ? 1 : Number(v.readBigUInt64LE(plain));
  if (v.length !== plain && (count < 2 || length === 0 || !Number.isSafeInteger(count * length))) throw new RecordFormatError('bad extent record');
  return {
    offset: Number(k.readBigUInt64BE(8)),
    length,
    // copy: LMDB values may live in reused buffers
    digest: asDigest(Buffer.from(v.subarray(4, plain))),
    count,
  };
}

/**
 * Codec value of an "absent" chunk: a file's recipe references it but its bytes are not here yet
 * (a file fetched lazily from a peer, or a transfer still under way). storedLength is 0 and the
 * chunks database has no entry; Store.fillChunk supplies the bytes once they arrive verified.
 */
export const CODEC_ABSENT = 255;

/** Chunk reference record: refcount, plaintext length, stored (encoded) length, codec. */
export interface ChunkRef {
  refs: number;
  length: number;
  storedLength: number;
  codec: number;
}

export function encodeChunkRef(r: ChunkRef): Buffer {
  const b = Buffer.allocUnsafe(13);
  b.writeUInt32LE(r.refs, 0);
  b.writeUInt32LE(r.length, 4);
  b.writeUInt32LE(r.storedLength, 8);
  b.writeUInt8(r.codec, 12);
  return b;
}

export function decodeChunkRef(b: Uint8Array): ChunkRef {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  if (buf.length !== 13) throw new RecordFormatError('bad chunk reference record');
  return { refs: buf.readUInt32LE(0), length: buf.readUInt32LE(4), storedLength: buf.readUInt32LE(8), codec: buf[12] };
}
