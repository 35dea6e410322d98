// The manifest and trailer of a slinked file: which objects it carries, where, and the digests of
// their code pages. The loader stub (native/stub.c) parses the same bytes, so the layout is fixed
// little-endian binary with fixed-size records; docs/FORMAT.md ("Slinked file") is the reference.
import { asDigest, digestLengthForId, type Digest, type HashAlgorithm, algorithmOf, digestOf } from '../chunking/digest';

export const FORMAT_VERSION = 1;
export const TRAILER_SIZE = 32;
export const TRAILER_MAGIC = Buffer.from('SLINKYTR', 'latin1');
export const MANIFEST_MAGIC = Buffer.from('SLINKYMF', 'latin1');
export const PAGE_SIZE = 4096;
const PAGE_SIZE_LOG2 = 12;
const HEADER_SIZE = 64;
const OBJECT_RECORD_SIZE = 128;
const RUN_RECORD_SIZE = 16;
const OBJECT_DIGEST_SLOT = 64;
/** The stub's limit (MAX_OBJECTS in native/stub.c). */
export const MAX_OBJECTS = 1024;

export type ObjectRole = 'program' | 'library' | 'interpreter';
const ROLE_CODES: Record<ObjectRole, number> = { program: 1, library: 2, interpreter: 3 };
const ROLE_NAMES = new Map(Object.entries(ROLE_CODES).map(([k, v]) => [v, k as ObjectRole]));

/** Consecutive code pages of one executable, read-only PT_LOAD segment of an object. */
export interface PageRun {
  /** Index of the segment's program header in the object. */
  readonly segment: number;
  /** First page, counted in 4096-byte pages from the object's first byte. */
  readonly firstPage: number;
  /** One tagged digest per page, in page order. */
  readonly digests: readonly Digest[];
}

export interface ManifestObject {
  readonly role: ObjectRole;
  /** DT_SONAME if it has one, else the file name. */
  readonly name: string;
  /** Where it came from: the program as given, a library where the loader's search found it, the
   *  interpreter as PT_INTERP names it (the stub passes this to the loader as its argv[0]). */
  readonly path: string;
  /** Offset in the slinked file: a multiple of 4096. */
  readonly offset: number;
  readonly size: number;
  /** Tagged digest of the whole object's bytes. */
  readonly digest: Digest;
  readonly runs: readonly PageRun[];
}

export interface Manifest {
  /** Program first, then libraries in the loader's load order, then the interpreter. */
  readonly objects: readonly ManifestObject[];
  /** Algorithm of the page digests, or null when the file carries no digest table. */
  readonly pageDigestAlgorithm: HashAlgorithm | null;
}

export interface Trailer {
  readonly manifestOffset: number;
  readonly manifestLength: number;
}

/** The bytes are not a well-formed slinked file. */
export class SlinkedFormatError extends Error {
  override name = 'SlinkedFormatError';
}

const ALGORITHM_IDS: Record<HashAlgorithm, number> = { sha256: digestOf(Buffer.alloc(0), 'sha256')[0] };

export function encodeTrailer(t: Trailer): Buffer {
  const b = Buffer.alloc(TRAILER_SIZE);
  TRAILER_MAGIC.copy(b, 0);
  b.writeUInt32LE(FORMAT_VERSION, 8);
  b.writeUInt32LE(0, 12);
  b.writeBigUInt64LE(BigInt(t.manifestOffset), 16);
  b.writeBigUInt64LE(BigInt(t.manifestLength), 24);
  return b;
}

/** The trailer if `tail` (the last TRAILER_SIZE bytes of a file) is one, else null. */
export function decodeTrailer(tail: Buffer, fileSize: number): Trailer | null {
  if (tail.length !== TRAILER_SIZE || !tail.subarray(0, 8).equals(TRAILER_MAGIC)) return null;
  const version = tail.readUInt32LE(8);
  if (version !== FORMAT_VERSION) throw new SlinkedFormatError(`slinked file format version ${version} is not supported`);
  const manifestOffset = Number(tail.readBigUInt64LE(16));
  const manifestLength = Number(tail.readBigUInt64LE(24));
  if (manifestOffset + manifestLength + TRAILER_SIZE !== fileSize || manifestOffset % 8 !== 0) {
    throw new SlinkedFormatError('corrupt slinked file: the trailer does not point at a manifest before it');
  }
  return { manifestOffset, manifestLength };
}

class StringTable {
  private readonly parts: Buffer[] = [Buffer.alloc(1)];
  private size = 1;
  private readonly seen = new Map<string, number>();
  add(s: string): number {
    if (s === '') return 0;
    const known = this.seen.get(s);
    if (known !== undefined) return known;
    const bytes = Buffer.from(`${s}\0`, 'utf8');
    const at = this.size;
    this.parts.push(bytes);
    this.size += bytes.length;
    this.seen.set(s, at);
    return at;
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const align8 = (n: number) => (n + 7) & ~7;

export function encodeManifest(m: Manifest): Buffer {
  if (m.objects.length === 0 || m.objects.length > MAX_OBJECTS) {
    throw new SlinkedFormatError(`a slinked file holds 1 to ${MAX_OBJECTS} objects, not ${m.objects.length}`);
  }
  const algId = m.pageDigestAlgorithm ? ALGORITHM_IDS[m.pageDigestAlgorithm] : 0;
  const hashLen = m.pageDigestAlgorithm ? digestLengthForId(algId) - 1 : 0;
  const strings = new StringTable();
  const objectRecords = Buffer.alloc(m.objects.length * OBJECT_RECORD_SIZE);
  const runRecords: Buffer[] = [];
  const hashes: Buffer[] = [];
  m.objects.forEach((o, i) => {
    const r = objectRecords.subarray(i * OBJECT_RECORD_SIZE, (i + 1) * OBJECT_RECORD_SIZE);
    if (o.offset % PAGE_SIZE !== 0) throw new SlinkedFormatError(`object ${o.name} is not page-aligned`);
    if (o.digest.length > OBJECT_DIGEST_SLOT) throw new SlinkedFormatError('object digest too long');
    r.writeBigUInt64LE(BigInt(o.offset), 0);
    r.writeBigUInt64LE(BigInt(o.size), 8);
    r.writeUInt32LE(ROLE_CODES[o.role], 16);
    r.writeUInt32LE(0, 20);
    r.writeUInt32LE(strings.add(o.name), 24);
    r.writeUInt32LE(strings.add(o.path), 28);
    const runs = m.pageDigestAlgorithm ? o.runs : [];
    r.writeUInt32LE(runRecords.length, 32);
    r.writeUInt32LE(runs.length, 36);
    r.writeUInt8(o.digest.length, 40);
    o.digest.copy(r, 48);
    for (const run of runs) {
      const rr = Buffer.alloc(RUN_RECORD_SIZE);
      rr.writeUInt32LE(run.segment, 0);
      rr.writeUInt32LE(run.firstPage, 4);
      rr.writeUInt32LE(run.digests.length, 8);
      rr.writeUInt32LE(hashes.length, 12);
      runRecords.push(rr);
      for (const d of run.digests) {
        if (d[0] !== algId || d.length !== hashLen + 1) {
          throw new SlinkedFormatError('page digests of mixed algorithms in one manifest');
        }
        hashes.push(d.subarray(1));
      }
    }
  });
  const stringBytes = strings.bytes();
  const objectsOffset = HEADER_SIZE;
  const runsOffset = objectsOffset + objectRecords.length;
  const digestsOffset = runsOffset + runRecords.length * RUN_RECORD_SIZE;
  const stringsOffset = align8(digestsOffset + hashes.length * hashLen);
  const total = align8(stringsOffset + stringBytes.length);

  const out = Buffer.alloc(total);
  MANIFEST_MAGIC.copy(out, 0);
  out.writeUInt32LE(FORMAT_VERSION, 8);
  out.writeUInt32LE(HEADER_SIZE, 12);
  out.writeUInt32LE(m.objects.length, 16);
  out.writeUInt32LE(OBJECT_RECORD_SIZE, 20);
  out.writeUInt32LE(objectsOffset, 24);
  out.writeUInt32LE(stringsOffset, 28);
  out.writeUInt32LE(stringBytes.length, 32);
  out.writeUInt32LE(runsOffset, 36);
  out.writeUInt32LE(runRecords.length, 40);
  out.writeUInt32LE(RUN_RECORD_SIZE, 44);
  out.writeUInt32LE(digestsOffset, 48);
  out.writeUInt32LE(hashes.length, 52);
  out.writeUInt8(algId, 56);
  out.writeUInt8(hashLen, 57);
  out.writeUInt16LE(PAGE_SIZE_LOG2, 58);
  objectRecords.copy(out, objectsOffset);
  runRecords.forEach((rr, i) => rr.copy(out, runsOffset + i * RUN_RECORD_SIZE));
  hashes.forEach((h, i) => h.copy(out, digestsOffset + i * hashLen));
  stringBytes.copy(out, stringsOffset);
  return out;
}

export const MAILBOX_MAGIC = Buffer.from('SLINKYMB', 'latin1');
export const MAILBOX_SIZE = 4096;
const MAILBOX_HEADER_SIZE = 64;

/**
 * The stub's mailbox (docs/FORMAT.md "Mailbox"): the manifest without its page digests, so that a
 * stub whose objects are all on a slinkyfs mount never opens its own file; undefined when that
 * does not fit in the page (the stub then reads the file's manifest).
 */
export function encodeMailbox(m: Manifest, manifestOffset: number): Buffer | undefined {
  const core = encodeManifest({ objects: m.objects.map((o) => ({ ...o, runs: [] })), pageDigestAlgorithm: null });
  if (MAILBOX_HEADER_SIZE + core.length > MAILBOX_SIZE) return undefined;
  const b = Buffer.alloc(MAILBOX_SIZE);
  MAILBOX_MAGIC.copy(b, 0);
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(core.length, 12);
  b.writeBigUInt64LE(BigInt(manifestOffset), 16);
  core.copy(b, MAILBOX_HEADER_SIZE);
  return b;
}

/** The manifest a filled mailbox holds (without page digests), or undefined for an empty one. */
export function decodeMailbox(b: Buffer): Manifest | undefined {
  if (b.length < MAILBOX_SIZE || !b.subarray(0, 8).equals(MAILBOX_MAGIC)) throw new SlinkedFormatError('no mailbox');
  if (b.readUInt32LE(8) !== 1) return undefined;
  const length = b.readUInt32LE(12);
  if (length > MAILBOX_SIZE - MAILBOX_HEADER_SIZE) fail('mailbox length out of bounds');
  return decodeManifest(b.subarray(MAILBOX_HEADER_SIZE, MAILBOX_HEADER_SIZE + length), Number(b.readBigUInt64LE(16)));
}

/**
 * Where the mailbox page sits in a stub: the page-aligned copy of its magic (the stub's code
 * holds the same eight bytes as a string to compare with, never page-aligned).
 */
export function mailboxOffset(stub: Buffer): number {
  for (let at = 0; at + MAILBOX_SIZE <= stub.length; at += PAGE_SIZE) {
    if (stub.subarray(at, at + 8).equals(MAILBOX_MAGIC)) return at;
  }
  throw new SlinkedFormatError('the stub has no mailbox page (rebuild it: make build)');
}

function fail(what: string): never {
  throw new SlinkedFormatError(`corrupt manifest: ${what}`);
}

function within(len: number, offset: number, size: number): boolean {
  return offset >= 0 && size >= 0 && offset <= len && size <= len - offset;
}

/** Parses a manifest; `manifestOffset` bounds the objects (they all lie before it). */
export function decodeManifest(b: Buffer, manifestOffset: number): Manifest {
  if (b.length < HEADER_SIZE || !b.subarray(0, 8).equals(MANIFEST_MAGIC)) fail('bad magic');
  if (b.readUInt32LE(8) !== FORMAT_VERSION) fail(`unsupported version ${b.readUInt32LE(8)}`);
  const count = b.readUInt32LE(16);
  if (b.readUInt32LE(12) !== HEADER_SIZE || b.readUInt32LE(20) !== OBJECT_RECORD_SIZE || b.readUInt32LE(44) !== RUN_RECORD_SIZE) {
    fail('unexpected record sizes');
  }
  const objectsOffset = b.readUInt32LE(24);
  const stringsOffset = b.readUInt32LE(28);
  const stringsSize = b.readUInt32LE(32);
  const runsOffset = b.readUInt32LE(36);
  const runCount = b.readUInt32LE(40);
  const digestsOffset = b.readUInt32LE(48);
  const digestCount = b.readUInt32LE(52);
  const algId = b.readUInt8(56);
  const hashLen = b.readUInt8(57);
  if (b.readUInt16LE(58) !== PAGE_SIZE_LOG2) fail('page size is not 4096');
  if (count === 0 || count > MAX_OBJECTS || !within(b.length, objectsOffset, count * OBJECT_RECORD_SIZE)) fail('object table out of bounds');
  if (!within(b.length, runsOffset, runCount * RUN_RECORD_SIZE)) fail('run table out of bounds');
  if (stringsSize === 0 || !within(b.length, stringsOffset, stringsSize) || b[stringsOffset + stringsSize - 1] !== 0) {
    fail('string table out of bounds');
  }
  let pageDigestAlgorithm: HashAlgorithm | null = null;
  if (algId !== 0) {
    if (digestLengthForId(algId) !== hashLen + 1) fail(`unknown page digest algorithm id ${algId}`);
    pageDigestAlgorithm = algorithmOf(Buffer.from([algId]) as Digest);
    if (!within(b.length, digestsOffset, digestCount * hashLen)) fail('digest table out of bounds');
  } else if (runCount !== 0 || digestCount !== 0) {
    fail('page digests without an algorithm');
  }
  const str = (off: number): string => {
    if (off >= stringsSize) fail('bad string reference');
    const start = stringsOffset + off;
    return b.toString('utf8', start, b.indexOf(0, start));
  };
  const objects: ManifestObject[] = [];
  for (let i = 0; i < count; i++) {
    const at = objectsOffset + i * OBJECT_RECORD_SIZE;
    const offset = Number(b.readBigUInt64LE(at));
    const size = Number(b.readBigUInt64LE(at + 8));
    const role = ROLE_NAMES.get(b.readUInt32LE(at + 16)) ?? fail(`object ${i} has an unknown role`);
    if (offset % PAGE_SIZE !== 0 || !within(manifestOffset, offset, size)) fail(`object ${i} out of bounds`);
    const firstRun = b.readUInt32LE(at + 32);
    const nRuns = b.readUInt32LE(at + 36);
    const digestLen = b.readUInt8(at + 40);
    if (digestLen > OBJECT_DIGEST_SLOT) fail(`object ${i} digest too long`);
    let digest: Digest;
    try {
      digest = asDigest(Buffer.from(b.subarray(at + 48, at + 48 + digestLen)));
    } catch {
      fail(`object ${i} has a malformed digest`);
    }
    if (firstRun > runCount || nRuns > runCount - firstRun) fail(`object ${i} runs out of bounds`);
    const runs: PageRun[] = [];
    for (let r = firstRun; r < firstRun + nRuns; r++) {
      const rat = runsOffset + r * RUN_RECORD_SIZE;
      const pages = b.readUInt32LE(rat + 8);
      const first = b.readUInt32LE(rat + 12);
      if (first > digestCount || pages > digestCount - first) fail(`run ${r} digests out of bounds`);
      const digests: Digest[] = [];
      for (let p = 0; p < pages; p++) {
        const h = b.subarray(digestsOffset + (first + p) * hashLen, digestsOffset + (first + p + 1) * hashLen);
        digests.push(Buffer.concat([Buffer.from([algId]), h]) as Digest);
      }
      runs.push({ segment: b.readUInt32LE(rat), firstPage: b.readUInt32LE(rat + 4), digests });
    }
    objects.push({ role, name: str(b.readUInt32LE(at + 24)), path: str(b.readUInt32LE(at + 28)), offset, size, digest, runs });
  }
  const roles = objects.map((o) => o.role);
  if (roles.filter((r) => r === 'program').length !== 1 || roles.filter((r) => r === 'interpreter').length !== 1) {
    fail('needs exactly one program and one interpreter');
  }
  return { objects, pageDigestAlgorithm };
}
