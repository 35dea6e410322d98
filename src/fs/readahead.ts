// The kernel's read-ahead window for a FUSE mount: /sys/class/bdi/<major>:<minor>/read_ahead_kb
// of the connection, writable by root only. A wider window lets a sequential reader keep several
// 1 MiB requests in flight, so both pool threads decode and verify at once; but the same window
// is the read-around of every page fault of an mmap'd file, and programs then map more pages.
// Measured side by side (bench/memory.ts, bench/macro.ts, a cold `cat` of 512 MiB):
//   128 KiB (the kernel's default): Pss of ten programs 1.075x dynamic (physical pages 0.97x),
//            a C build 1.01x, the cold cat 1.6-2.4 s;
//   2048 KiB: Pss 1.11-1.14x (physical 1.00-1.03x), the build 1.03-1.05x, the cat 1.1-1.2 s.
// slinkyfs is a bin directory first: the default keeps 128 KiB, and `mount --readahead-kib 2048`
// suits a mount that mostly serves large files.
import { promises as fsp } from 'node:fs';
import { deviceAt } from './mountTable';

/** The default: the kernel's own choice for a new FUSE connection (see above). */
export const READAHEAD_KIB = 128;

/** "major:minor" of the filesystem mounted at `mountpoint` (the last mount there). */
export async function mountDevice(mountpoint: string): Promise<string | undefined> {
  // mountinfo, not stat(): a stat of our own mountpoint is a request to ourselves.
  return deviceAt(await fsp.readFile('/proc/self/mountinfo', 'utf8'), mountpoint);
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
