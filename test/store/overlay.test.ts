// The Overlay holds an open file's uncommitted writes: later writes win, the caller's buffer is
// copied, bytes already recorded never change in place (views of them stay valid), sequential
// appends form one run, and contiguousView hands out a run without copying.
import { Overlay, OVERLAY_HEADROOM } from '../../src/store/overlay';
import { randomBytes } from '../helpers/prng';

function contents(o: Overlay, from: number, to: number): Buffer {
  const out = Buffer.alloc(to - from);
  o.copyInto(from, out);
  return out;
}

test('sequential appends are one segment (per slab) holding a copy of the written bytes', () => {
  const o = new Overlay({ firstSlab: 1 << 20 });
  const data = randomBytes(1, 1 << 20);
  const piece = Buffer.alloc(4096);
  for (let off = 0; off < data.length; off += 4096) {
    data.copy(piece, 0, off, off + 4096);
    o.write(off, piece);
    piece.fill(0xee); // FUSE reuses its buffers
  }
  expect(o.segments().length).toBe(1);
  expect(o.bytes).toBe(data.length);
  expect(contents(o, 0, data.length).equals(data)).toBe(true);
  // by default slabs start at 64 KiB and double: 256 appends of 4 KiB are 5 segments, not 256
  const small = new Overlay();
  for (let off = 0; off < data.length; off += 4096) small.write(off, data.subarray(off, off + 4096));
  expect(small.segments().length).toBe(5);
  expect(contents(small, 0, data.length).equals(data)).toBe(true);
});

test('an overwrite wins and leaves views taken before it unchanged', () => {
  const o = new Overlay();
  const data = randomBytes(2, 200_000);
  o.write(0, data);
  const before = o.contiguousView(0, 200_000)!.view;
  const snapshot = Buffer.from(before);
  o.write(1000, Buffer.alloc(5000, 7));
  expect(before.equals(snapshot)).toBe(true);
  const expected = Buffer.from(data);
  expected.fill(7, 1000, 6000);
  expect(contents(o, 0, 200_000).equals(expected)).toBe(true);
  expect(o.bytes).toBe(200_000);
});

test('contiguousView of a range inside one run is that run, not a copy', () => {
  const o = new Overlay({ firstSlab: 4 << 20 });
  const data = randomBytes(3, 3 << 20);
  for (let off = 0; off < data.length; off += 131072) o.write(off, data.subarray(off, off + 131072));
  const v = o.contiguousView(1000, 2_000_000)!;
  expect(v.fillTo).toBe(1000);
  expect(v.view.equals(data.subarray(1000, 2_000_000))).toBe(true);
  expect(v.view.buffer).toBe(o.segments()[0].data.buffer);
});

test('a run that starts past offset 0 has headroom for the bytes in front of it', () => {
  const o = new Overlay({ firstSlab: 1 << 20 });
  const start = 500_000;
  const data = randomBytes(4, 300_000);
  o.write(start, data);
  const v = o.contiguousView(start - 40_000, start + data.length)!;
  expect(v.fillTo).toBe(start);
  expect(v.view.length).toBe(40_000 + data.length);
  expect(v.view.subarray(40_000).equals(data)).toBe(true);
  // the headroom is not overlay content
  v.view.fill(9, 0, 40_000);
  expect(contents(o, start - 40_000, start).equals(Buffer.alloc(40_000))).toBe(true);
});

test('no view when the range starts further in front than the headroom, or in another run', () => {
  const o = new Overlay({ firstSlab: 1 << 20 });
  o.write(500_000, randomBytes(5, 100_000));
  expect(o.contiguousView(500_000 - OVERLAY_HEADROOM - 1, 550_000)).toBeUndefined();
  o.write(700_000, randomBytes(6, 10_000)); // a second run in the same slab: its front is taken
  expect(o.contiguousView(690_000, 705_000)).toBeUndefined();
  expect(o.contiguousView(600_000, 650_000)).toBeUndefined(); // a gap: nothing there
});

test('truncate drops bytes at and past the new size', () => {
  const o = new Overlay();
  o.write(0, randomBytes(7, 100_000));
  o.truncate(60_000);
  expect(o.bytes).toBe(60_000);
  expect(o.ranges()).toEqual([[0, 60_000]]);
});
