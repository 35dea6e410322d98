// Reading /proc/self/mountinfo to find slinkyfs mounts: the daemon sets the FUSE fsname to its
// store directory, so a mountpoint leads back to its store (for `stats MOUNTPOINT`, `umount`).
import fs from 'node:fs';
import path from 'node:path';

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  /** "major:minor" of the mounted filesystem, in decimal as mountinfo gives it. */
  device: string;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

/** The mounts listed in the text of a mountinfo file, in its order (later ones stack on earlier). */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const fields = left.split(' ');
    const [fstype, source] = right.split(' ');
    out.push({ mountpoint: unescape(fields[4]), fstype, source: unescape(source), device: fields[2] });
  }
  return out;
}

/** "major:minor" of what is mounted at `mountpoint` in a mountinfo text (the last mount: they stack). */
export function deviceAt(mountinfo: string, mountpoint: string): string | undefined {
  return parseMountinfo(mountinfo)
    .filter((m) => m.mountpoint === mountpoint)
    .pop()?.device;
}

export function readMounts(): MountEntry[] {
  return parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
}

export const FSTYPE = 'fuse.slinkyfs';

export function findSlinkyMount(mountpoint: string): MountEntry | undefined {
  const want = path.resolve(mountpoint);
  // the last entry wins: mounts stack
  return readMounts().filter((m) => m.mountpoint === want && m.fstype === FSTYPE).pop();
}

export function isMountpoint(mountpoint: string): boolean {
  const want = path.resolve(mountpoint);
  return readMounts().some((m) => m.mountpoint === want);
}
