// The kernel's read-ahead window for a FUSE mount: /sys/class/bdi/<major>:<minor>/read_ahead_kb
// of the connection, writable by root only. A wider window lets a sequential reader keep several
// 1 MiB requests in flight, so both pool threads decode and verify at once; the same window is
// also the read-around of every page fault of an mmap'd file. Measured side by side:
//   before twins (objects identical to this machine's libraries passing through to them), 2048
//   KiB cost programs 3-6% more Pss than the kernel's 128 (1.11-1.14x dynamic against 1.075x)
//   and a C build 1.03-1.05x against 1.01x, so the default stayed at 128;
//   with twins (bench/memory.ts and bench/macro.ts with --readahead-kib, alternating): Pss of
//   ten programs 1.005x and 1.015x dynamic at 2048 against 1.012-1.020x at 128, the build
//   1.028-1.043x against 1.017-1.094x (noise), while a cold `cat` of 512 MiB reads at 256-344
//   MB/s against 202-247 MB/s. So the default is 2048. Without twins (--no-passthrough, or
//   programs slinked from another machine's libraries) the cost remains, Pss 1.13-1.22x against
//   1.08-1.10x: `mount --readahead-kib 128` gives such a mount the kernel's own window back.
import { promises as fsp } from 'node:fs';
import { deviceAt } from './mountTable';

/** The default (see above); the kernel's own for a new FUSE connection is 128. */
export const READAHEAD_KIB = 2048;

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
