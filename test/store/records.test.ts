// The inode record's two layouts (docs/FORMAT.md, "Inode record").
import { decodeInode, encodeInode, RecordFormatError, S_IFCHR, S_IFLNK, type InodeRecord } from '../../src/store/records';

const base: InodeRecord = { ino: 7, mode: 0o100644, uid: 1000, gid: 100, nlink: 1, size: 12345, atimeMs: 1.5e12, mtimeMs: 1.6e12, ctimeMs: 1.7e12, target: '' };

test('a record without a device number is version 1: 49 bytes plus the target', () => {
  const b = encodeInode({ ...base, mode: S_IFLNK | 0o777, size: 4, target: '/bin' });
  expect(b[0]).toBe(1);
  expect(b.length).toBe(49 + 4);
  expect(b.subarray(49).toString()).toBe('/bin');
  expect(decodeInode(7, b)).toEqual({ ...base, mode: S_IFLNK | 0o777, size: 4, target: '/bin' });
});

test('a device node is version 2: its number follows the times', () => {
  const rdev = (65537 & 0xff) | (259 << 8) | ((65537 & ~0xff) << 12);
  const b = encodeInode({ ...base, mode: S_IFCHR | 0o600, size: 0, rdev });
  expect(b[0]).toBe(2);
  expect(b.length).toBe(53);
  expect(b.readUInt32LE(49)).toBe(rdev);
  expect(decodeInode(7, b)).toEqual({ ...base, mode: S_IFCHR | 0o600, size: 0, rdev });
});

test('a device number of 0 is stored as version 1', () => {
  expect(encodeInode({ ...base, mode: S_IFCHR | 0o600, rdev: 0 })[0]).toBe(1);
});

test('an unknown version or a short record is refused', () => {
  const b = encodeInode(base);
  b[0] = 3;
  expect(() => decodeInode(7, b)).toThrow(RecordFormatError);
  const v2 = encodeInode({ ...base, mode: S_IFCHR | 0o600, rdev: 0x103 });
  expect(() => decodeInode(7, v2.subarray(0, 51))).toThrow(RecordFormatError);
});
