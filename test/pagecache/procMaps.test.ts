// Recognising mappings of published objects in /proc/PID/maps and the mount's device in
// /proc/self/mountinfo (the per-process digest tables are built from these).
import fs from 'node:fs';
import { mappingsOnDevice, mapsDeviceOf, parseLine, scanProcesses } from '../../src/pagecache/procMaps';

const MAPS = [
  '55d0c0a00000-55d0c0a04000 r--p 00000000 00:2d 17                         /slinky/.slinky/objects/sha256-aa',
  '55d0c0a04000-55d0c0a19000 r-xp 00004000 00:2d 17                         /slinky/.slinky/objects/sha256-aa',
  '7f00000000-7f00002000 r--p 00001000 00:2d 99                             /slinky/other',
  '7f10000000-7f10001000 r--p 00000000 08:01 17                             /usr/lib/libx.so',
  '7f20000000-7f20001000 rw-p 00000000 00:00 0                              [heap]',
  '7f30000000-7f30003000 r--p 00002000 100:2d 17                            /elsewhere',
].join('\n');

test('mappings of wanted inodes on the device, as page ranges of the object', () => {
  expect(mappingsOnDevice(MAPS, '00:2d', (ino) => ino === 17)).toEqual([
    { ino: 17, firstPage: 0, pages: 4 },
    { ino: 17, firstPage: 4, pages: 21 },
  ]);
  expect(mappingsOnDevice(MAPS, '00:2d', () => true).map((m) => m.ino)).toEqual([17, 17, 99]);
  expect(mappingsOnDevice(MAPS, '08:01', () => true)).toEqual([{ ino: 17, firstPage: 0, pages: 1 }]);
  expect(mappingsOnDevice(MAPS, '00:2e', () => true)).toEqual([]);
});

test('a maps line parses into addresses, offset, device and inode', () => {
  expect(parseLine('7f30000000-7f30003000 r--p 00002000 100:2d 17   /elsewhere')).toEqual({ start: 0x7f30000000, end: 0x7f30003000, offset: 0x2000, dev: '100:2d', ino: 17 });
  expect(parseLine('garbage')).toBeUndefined();
});

test('the device of a mountpoint in maps notation (hex), the last of stacked mounts winning', () => {
  const info = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '40 22 0:45 / /tmp/a\\040b rw,nosuid - fuse.slinkyfs /st rw,user_id=0',
    '41 40 0:300 / /tmp/a\\040b rw,nosuid - fuse.slinkyfs /st2 rw,user_id=0',
  ].join('\n');
  expect(mapsDeviceOf(info, '/tmp/a b')).toBe('00:12c');
  expect(mapsDeviceOf(info, '/')).toBe('08:01');
  expect(mapsDeviceOf(info, '/nowhere')).toBeUndefined();
});

test('a scan finds this very machine\'s mappings of a real file by device and inode', async () => {
  // Any process mapping node's own binary (the jest workers do): find its device and inode.
  const self = fs.readFileSync('/proc/self/maps', 'latin1').split('\n').map(parseLine).find((l) => l && l.ino > 0)!;
  const found = await scanProcesses(self.dev, (ino) => ino === self.ino);
  expect(found.has(process.pid)).toBe(false); // the scanner leaves itself out
  expect([...found.keys()].length).toBeGreaterThan(0);
});
