// Reading the manifest of a file that may be a slinked file, through any byte reader: the
// publisher (a file just committed) and the object sweep of `slinkyfs gc` (every file) use it.
import { TRAILER_SIZE, decodeManifest, decodeTrailer, type Manifest } from '../elf/manifest';
import { manifestTooCostly } from './manifestBounds';

/** Manifests larger than this are refused unread (1024 objects with huge digest tables fit). */
export const MAX_MANIFEST = 64 << 20;

export type ReadAt = (offset: number, length: number) => Promise<Buffer>;

/** True when the last bytes of a file of `size` bytes start a slinky trailer. */
export function hasTrailer(tail: Buffer): boolean {
  return tail.length === TRAILER_SIZE && tail.subarray(0, 8).toString('latin1') === 'SLINKYTR';
}

/**
 * The manifest of a slinked file given its trailer bytes (see hasTrailer); undefined when the
 * trailer does not describe one. Throws (with the reason) when trailer or manifest are malformed.
 */
export async function readManifest(read: ReadAt, size: number, tail: Buffer): Promise<Manifest | undefined> {
  const trailer = decodeTrailer(tail, size);
  if (!trailer) return undefined;
  if (trailer.manifestLength > MAX_MANIFEST) throw new Error(`manifest of ${trailer.manifestLength} bytes`);
  const bytes = await read(trailer.manifestOffset, trailer.manifestLength);
  const costly = manifestTooCostly(bytes);
  if (costly) throw new Error(costly);
  return decodeManifest(bytes, trailer.manifestOffset);
}
