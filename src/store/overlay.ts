// Bytes written to an open file but not yet chunked and committed. A sorted list of
// non-overlapping segments; later writes win. Sequential appends (the common case: cp, tar, the
// linker) take the fast path: they are copied into the free end of a slab, so a long run of
// writes is one segment in a few large Buffers instead of one Buffer per write (fewer allocations
// for the garbage collector to track), and committing can chunk it in place (contiguousView).
// Bytes already in a segment are never changed in place: views handed out stay valid. Pure data
// structure: no I/O.
export interface Segment {
  offset: number;
  data: Buffer;
}

export interface OverlayOptions {
  /** Size of the first slab (a writer known to write much passes the batch size). */
  firstSlab?: number;
}

/** Slab sizes: the first is small (most files are), each next one doubles up to MAX_SLAB. */
const MIN_SLAB = 64 << 10;
const MAX_SLAB = 16 << 20;
/**
 * Room kept free in front of a slab that starts a run: a commit re-chunks from the start of the
 * last committed chunk (at most a maximal chunk before the run), and can place those bytes
 * there to chunk the whole window without copying it (contiguousView).
 */
export const OVERLAY_HEADROOM = (64 << 10) + 64;

export class Overlay {
  private segs: Segment[] = [];
  private total = 0;
  /** The slab appends go into, and how much of it is used (headroom included). */
  private slab: Buffer | undefined;
  private slabUsed = 0;
  private nextSlab: number;

  constructor(options: OverlayOptions = {}) {
    this.nextSlab = Math.max(MIN_SLAB, Math.min(MAX_SLAB, options.firstSlab ?? MIN_SLAB));
  }

  get bytes(): number {
    return this.total;
  }
  get isEmpty(): boolean {
    return this.segs.length === 0;
  }
  segments(): readonly Segment[] {
    return this.segs;
  }

  /** Record a write. `data` is copied: FUSE reuses its buffers. */
  write(offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    const last = this.segs[this.segs.length - 1];
    if (!last || last.offset + last.data.length <= offset) {
      this.append(last, offset, data);
      return;
    }
    const copy = Buffer.from(data);
    const end = offset + copy.length;
    const out: Segment[] = [];
    let inserted = false;
    for (const s of this.segs) {
      const sEnd = s.offset + s.data.length;
      if (sEnd <= offset || s.offset >= end) {
        if (!inserted && s.offset >= end) {
          out.push({ offset, data: copy });
          inserted = true;
        }
        out.push(s);
        continue;
      }
      // s overlaps the new write: keep its parts outside [offset, end).
      if (s.offset < offset) out.push({ offset: s.offset, data: s.data.subarray(0, offset - s.offset) });
      if (!inserted) {
        out.push({ offset, data: copy });
        inserted = true;
      }
      if (sEnd > end) out.push({ offset: end, data: s.data.subarray(end - s.offset) });
    }
    if (!inserted) out.push({ offset, data: copy });
    this.segs = out;
    this.total = out.reduce((n, s) => n + s.data.length, 0);
  }

  /** A write past every segment: extend the last segment in its slab, or start a new one. */
  private append(last: Segment | undefined, offset: number, data: Uint8Array): void {
    const n = data.length;
    const slab = this.slab;
    const extends_ =
      last !== undefined &&
      slab !== undefined &&
      last.offset + last.data.length === offset &&
      last.data.buffer === slab.buffer &&
      last.data.byteOffset + last.data.length === slab.byteOffset + this.slabUsed &&
      slab.length - this.slabUsed >= n;
    if (extends_) {
      slab.set(data, this.slabUsed);
      const start = last.data.byteOffset - slab.byteOffset;
      this.slabUsed += n;
      last.data = slab.subarray(start, this.slabUsed);
      this.total += n;
      return;
    }
    let dest: Buffer;
    if (slab && slab.length - this.slabUsed >= n && !(offset > 0 && this.slabUsed === 0)) {
      dest = slab.subarray(this.slabUsed, this.slabUsed + n);
      this.slabUsed += n;
    } else {
      // A new slab; one that starts a run past offset 0 keeps headroom in front (see above).
      const headroom = offset > 0 ? OVERLAY_HEADROOM : 0;
      const size = Math.max(this.nextSlab, headroom + n);
      this.nextSlab = Math.min(MAX_SLAB, this.nextSlab * 2);
      this.slab = Buffer.allocUnsafeSlow(size);
      this.slabUsed = headroom + n;
      dest = this.slab.subarray(headroom, headroom + n);
    }
    dest.set(data);
    this.segs.push({ offset, data: dest });
    this.total += n;
  }

  /**
   * The overlay's bytes [from, to) as one Buffer, without copying, when a single segment can
   * provide them: `view` holds [from, to) and the caller must fill view[0 .. fillTo - from)
   * itself (bytes in front of the segment, which are not in the overlay; fillTo = from when
   * there are none). That needs the segment to cover [s, to) with s ≤ from, or to be the first
   * of a slab with headroom (see OVERLAY_HEADROOM) that can take [from, s). Otherwise
   * undefined: copy instead.
   */
  contiguousView(from: number, to: number): { view: Buffer; fillTo: number } | undefined {
    if (to <= from) return undefined;
    const seg = this.segmentAt(to - 1);
    if (!seg) return undefined;
    if (seg.offset <= from) return { view: seg.data.subarray(from - seg.offset, to - seg.offset), fillTo: from };
    const before = seg.offset - from;
    // Free bytes in front of a segment exist only in a slab made with headroom, before its first
    // segment (appends never write there): anywhere else they may belong to a view handed out.
    if (before > OVERLAY_HEADROOM || !this.opensHeadroomSlab(seg)) return undefined;
    return { view: Buffer.from(seg.data.buffer, seg.data.byteOffset - before, to - from), fillTo: seg.offset };
  }

  /**
   * Put `src`'s bytes [from, to) under this overlay's: only where this one has none. When they
   * end where this overlay's first run begins, and fit in the headroom in front of it, they
   * extend that run without a copy of the run.
   */
  underlay(from: number, to: number, src: Overlay): void {
    const first = this.segs[0];
    const n = to - from;
    if (first !== undefined && first.offset === to && n <= OVERLAY_HEADROOM && this.opensHeadroomSlab(first)) {
      const data = Buffer.from(first.data.buffer, first.data.byteOffset - n, first.data.length + n);
      src.copyInto(from, data.subarray(0, n));
      this.segs[0] = { offset: from, data };
      this.total += n;
      return;
    }
    for (const [a, b] of uncoveredBy(this, from, to)) {
      const bytes = Buffer.alloc(b - a);
      src.copyInto(a, bytes);
      this.write(a, bytes);
    }
  }

  /** `seg` is the first segment of the current slab, made with headroom free in front of it. */
  private opensHeadroomSlab(seg: Segment): boolean {
    const slab = this.slab;
    return slab !== undefined && seg.data.buffer === slab.buffer && seg.data.byteOffset - slab.byteOffset === OVERLAY_HEADROOM;
  }

  /** The segment holding byte `pos`, if any. */
  private segmentAt(pos: number): Segment | undefined {
    let lo = 0;
    let hi = this.segs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.segs[mid];
      if (pos < s.offset) hi = mid - 1;
      else if (pos >= s.offset + s.data.length) lo = mid + 1;
      else return s;
    }
    return undefined;
  }

  /** Forget everything at or beyond `size` (truncate). */
  truncate(size: number): void {
    const out: Segment[] = [];
    for (const s of this.segs) {
      if (s.offset >= size) continue;
      out.push(s.offset + s.data.length > size ? { offset: s.offset, data: s.data.subarray(0, size - s.offset) } : s);
    }
    this.segs = out;
    this.total = out.reduce((n, s) => n + s.data.length, 0);
  }

  /** Copy overlay bytes that fall in [offset, offset + target.length) into `target`. */
  copyInto(offset: number, target: Buffer): void {
    const end = offset + target.length;
    for (const s of this.segs) {
      const sEnd = s.offset + s.data.length;
      if (sEnd <= offset) continue;
      if (s.offset >= end) break;
      const from = Math.max(offset, s.offset);
      const to = Math.min(end, sEnd);
      s.data.copy(target, from - offset, from - s.offset, to - s.offset);
    }
  }

  /** Merged [start, end) ranges covered by the overlay. */
  ranges(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (const s of this.segs) {
      const last = out[out.length - 1];
      const e = s.offset + s.data.length;
      if (last && last[1] >= s.offset) last[1] = Math.max(last[1], e);
      else out.push([s.offset, e]);
    }
    return out;
  }

  /** A new overlay with `lower`'s bytes under `upper`'s (upper wins where both have bytes). */
  static layered(lower: Overlay, upper: Overlay): Overlay {
    const out = new Overlay({ firstSlab: lower.bytes + upper.bytes });
    for (const seg of lower.segs) out.write(seg.offset, seg.data);
    for (const seg of upper.segs) out.write(seg.offset, seg.data);
    return out;
  }

  clear(): void {
    this.segs = [];
    this.total = 0;
    this.slab = undefined;
    this.slabUsed = 0;
  }
}

/** Sub-ranges of [from, to) where `overlay` has no bytes. */
export function uncoveredBy(overlay: Overlay, from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let pos = from;
  for (const [a, b] of overlay.ranges()) {
    if (b <= pos) continue;
    if (a >= to) break;
    if (a > pos) out.push([pos, Math.min(a, to)]);
    pos = Math.max(pos, b);
    if (pos >= to) break;
  }
  if (pos < to) out.push([pos, to]);
  return out;
}
