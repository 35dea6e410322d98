// Bytes written to an open file but not yet chunked and committed. A sorted list of
// non-overlapping segments; later writes win. Sequential appends (the common case: cp, tar, the
// linker) take the fast path of a push. Pure data structure: no I/O.
export interface Segment {
  offset: number;
  data: Buffer;
}

export class Overlay {
  private segs: Segment[] = [];
  private total = 0;

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
    const copy = Buffer.from(data);
    const end = offset + copy.length;
    const last = this.segs[this.segs.length - 1];
    if (!last || last.offset + last.data.length <= offset) {
      this.segs.push({ offset, data: copy });
      this.total += copy.length;
      return;
    }
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
    const out = new Overlay();
    for (const seg of lower.segs) out.write(seg.offset, seg.data);
    for (const seg of upper.segs) out.write(seg.offset, seg.data);
    return out;
  }

  clear(): void {
    this.segs = [];
    this.total = 0;
  }
}
