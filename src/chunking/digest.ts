// Digests that carry their algorithm. Compare-by-hash is only safe while the hash is: every
// stored digest starts with a one-byte algorithm id so a store can hold digests of several
// algorithms at once and move to a new one without reinterpreting old keys.
import { createHash } from 'node:crypto';

export type HashAlgorithm = 'sha256';

/** Binary digest: byte 0 is the algorithm id, the rest is the hash. Used as an LMDB key as is. */
export type Digest = Buffer & { readonly __digest: unique symbol };

interface AlgorithmInfo {
  readonly id: number;
  readonly name: HashAlgorithm;
  readonly hashLength: number;
  readonly nodeName: string;
}

const ALGORITHMS: readonly AlgorithmInfo[] = [
  { id: 1, name: 'sha256', hashLength: 32, nodeName: 'sha256' },
];
const BY_ID = new Map(ALGORITHMS.map((a) => [a.id, a]));
const BY_NAME = new Map(ALGORITHMS.map((a) => [a.name, a]));

export const DEFAULT_ALGORITHM: HashAlgorithm = 'sha256';

export class DigestFormatError extends Error {
  override name = 'DigestFormatError';
}

function info(algorithm: HashAlgorithm): AlgorithmInfo {
  const a = BY_NAME.get(algorithm);
  if (!a) throw new DigestFormatError(`unknown digest algorithm ${algorithm}`);
  return a;
}

/** Hash `data` (or the concatenation of `parts`) and return a tagged digest. */
export function digestOf(data: Uint8Array | readonly Uint8Array[], algorithm: HashAlgorithm = DEFAULT_ALGORITHM): Digest {
  const a = info(algorithm);
  const h = createHash(a.nodeName);
  if (Array.isArray(data)) for (const p of data) h.update(p);
  else h.update(data as Uint8Array);
  const out = Buffer.allocUnsafe(1 + a.hashLength);
  out[0] = a.id;
  h.digest().copy(out, 1);
  return out as Digest;
}

/** True when `data` hashes to `digest` under the digest's own algorithm. */
export function verifyDigest(digest: Digest, data: Uint8Array): boolean {
  const a = BY_ID.get(digest[0]);
  if (!a) return false;
  return digestOf(data, a.name).equals(digest);
}

export function algorithmOf(digest: Digest): HashAlgorithm {
  const a = BY_ID.get(digest[0]);
  if (!a) throw new DigestFormatError(`unknown digest algorithm id ${digest[0]}`);
  return a.name;
}

/** Validates raw bytes (e.g. an LMDB key or a wire field) as a digest. */
export function asDigest(raw: Uint8Array): Digest {
  const a = BY_ID.get(raw[0]);
  if (!a || raw.length !== 1 + a.hashLength) throw new DigestFormatError('malformed digest');
  return Buffer.from(raw.buffer, raw.byteOffset, raw.length) as Digest;
}

/** Length in bytes of a binary digest that starts with algorithm id `id`, or 0 if unknown. */
export function digestLengthForId(id: number): number {
  const a = BY_ID.get(id);
  return a ? 1 + a.hashLength : 0;
}

/** Text form `sha256-<hex>`: used in the CLI, file names and the wire protocol. */
export function digestToString(digest: Digest): string {
  return `${algorithmOf(digest)}-${digest.subarray(1).toString('hex')}`;
}

export function digestFromString(text: string): Digest {
  const m = /^([a-z0-9]+)-([0-9a-f]+)$/.exec(text);
  if (!m) throw new DigestFormatError(`not a digest: ${text}`);
  const a = BY_NAME.get(m[1] as HashAlgorithm);
  if (!a || m[2].length !== a.hashLength * 2) throw new DigestFormatError(`not a digest: ${text}`);
  const out = Buffer.allocUnsafe(1 + a.hashLength);
  out[0] = a.id;
  out.write(m[2], 1, 'hex');
  return out as Digest;
}
