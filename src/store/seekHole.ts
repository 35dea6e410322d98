// SEEK_DATA and SEEK_HOLE over a recipe. A hole is a record of the maximal zero chunk (see
// src/chunking/zeros.ts): that is how every hole is stored (truncate, a write past the end, a
// punched range, zeros written as data), so holes are found 64 KiB at a time and never by
// reading bytes. A shorter stretch of zeros is reported as data, which lseek(2) allows.
import { isHoleChunk } from '../chunking/zeros';
import { runEnd, type Ino } from './records';
import type { Store } from './store';

/** Records fetched per step while walking a long recipe. */
const STEP = 1024;

/**
 * The first offset at or after `offset` (which must be below `size`) in a hole (`wantHole`) or
 * in data. Every file ends in a hole at `size`, so a hole is always found; data may not be:
 * then undefined (lseek's ENXIO).
 */
export function seekDataOrHole(store: Store, ino: Ino, size: number, offset: number, wantHole: boolean): number | undefined {
  let pos = offset;
  while (pos < size) {
    const records = store.runs(ino, pos, size, STEP);
    if (records.length === 0) break;
    for (const r of records) {
      if (isHoleChunk(r.length, r.digest) === wantHole) return Math.min(size, Math.max(pos, r.offset));
      pos = runEnd(r);
    }
  }
  return wantHole ? Math.min(pos, size) : undefined;
}
