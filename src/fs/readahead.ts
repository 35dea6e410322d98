// The kernel's read-ahead window for a FUSE mount. A new FUSE connection gets 128 KiB, so a
// sequential reader has at most one or two 128 KiB requests in flight: too little to keep the
// threadpool decoding and verifying chunks while the event loop answers. The window lives in
// the connection's backing device, /sys/class/bdi/<major>:<minor>/read_ahead_kb, writable by
// root only; elsewhere the mount keeps the kernel's default.
//
// The same window is the read-around of every page fault of an mmap'd file, so with a wide one
// programs on the mount map somewhat more pages than from ext4 (whose disk keeps 128 KiB).
// Measured (bench/memory.ts and a cold `cat` of 512 MiB, side by side): 128 KiB, Pss of ten
// programs 1.075x dynamic and 1.6-2.4 s; 512-2048 KiB, 1.11-1.14x and 1.1-1.4 s.
// `mount --readahead-kib 128` chooses the first.
import { promises as fsp } from 'node:fs';

/** Read-ahead for slinkyfs mounts: two 1 MiB requests in flight, one per pool thread. */
export const READAHEAD_KIB = 2048;

/** "major:minor" of the filesystem mounted at `mountpoint` (the last mount there). */
export async function mountDevice(mountpoint: string): Promise<string | undefined> {
  // mountinfo, not stat(): a stat of our own mountpoint is a request to ourselves.
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  let found: string | undefined;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const mp = f[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === mountpoint) found = f[2];
  }
  return found;
}

/** Set the mount's read-ahead window; returns why not when it cannot (not root, no sysfs). */
export async function setReadahead(mountpoint: string, kib = READAHEAD_KIB): Promise<string | undefined> {
  const dev = await mountDevice(mountpoint).catch(() => undefined);
  if (!dev) return 'mount not found in /proc/self/mountinfo';
  try {
    await fsp.writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, `${kib}\n`);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
