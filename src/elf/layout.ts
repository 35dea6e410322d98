// Where everything goes in a slinked file. Pure arithmetic, kept apart from the I/O so the rule
// that makes sharing work is in one place: every object starts on a 4096-byte boundary, so the
// same library has the same page contents (and page digests) in every slinked file.
import { PAGE_SIZE, TRAILER_SIZE } from './manifest';

export interface Layout {
  /** File offset of each object, in the order given. */
  readonly objectOffsets: readonly number[];
  /** The manifest follows the last object, 8-byte aligned; the trailer follows the manifest. */
  readonly manifestOffset: number;
}

export const alignUp = (n: number, to: number): number => Math.ceil(n / to) * to;

export function layoutSlinkedFile(stubSize: number, objectSizes: readonly number[]): Layout {
  let end = stubSize;
  const objectOffsets = objectSizes.map((size) => {
    const at = alignUp(end, PAGE_SIZE);
    end = at + size;
    return at;
  });
  return { objectOffsets, manifestOffset: alignUp(end, 8) };
}

export function fileSize(layout: Layout, manifestLength: number): number {
  return layout.manifestOffset + manifestLength + TRAILER_SIZE;
}
