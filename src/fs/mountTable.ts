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

/** Symbolic links followed before giving up, as the kernel's limit (ELOOP). */
const MAX_LINKS = 40;

/**
 * `p` with its symbolic links followed, for a user who names a mount through one, but without
 * looking at any mountpoint in `mounts`: stat on a FUSE mount whose daemon hangs never returns,
 * and on one whose daemon died fails with ENOTCONN, yet that is the mount most in need of
 * `umount`. A mountpoint is a directory and no link, so it needs no look (only a name below one
 * is looked up inside its mount). `..` is taken
 * lexically, as path.resolve does. A name that does not exist (or a link loop) stays as far as
 * it was followed: it matches no mount.
 */
export function resolveOutsideMounts(p: string, mounts: readonly MountEntry[] = readMounts()): string {
  const mountpoints = new Set(mounts.map((m) => m.mountpoint));
  let todo = path.resolve(p).split('/').filter(Boolean);
  let done = '/';
  for (let links = 0; todo.length; ) {
    const next = path.join(done, todo[0]);
    let target: string | undefined;
    if (!mountpoints.has(next)) {
      try {
        target = fs.readlinkSync(next);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') return path.join(next, ...todo.slice(1));
      }
    }
    if (target === undefined) {
      done = next;
      todo.shift();
      continue;
    }
    if (++links > MAX_LINKS) return path.join(next, ...todo.slice(1));
    todo = [...path.resolve(done, target).split('/').filter(Boolean), ...todo.slice(1)];
    done = '/';
  }
  return done;
}

/**
 * The mount among `mounts` that `p` (taken as written) lies in: the one at its nearest ancestor,
 * the last of those stacked there.
 */
export function mountContaining(p: string, mounts: readonly MountEntry[] = readMounts()): MountEntry | undefined {
  for (let dir = path.resolve(p); ; dir = path.dirname(dir)) {
    const m = mounts.filter((x) => x.mountpoint === dir).pop();
    if (m || dir === path.dirname(dir)) return m;
  }
}

/** The slinkyfs mount at `mountpoint`, which is taken as written (see resolveOutsideMounts). */
export function findSlinkyMount(mountpoint: string): MountEntry | undefined {
  const want = path.resolve(mountpoint);
  // the last entry wins: mounts stack
  return readMounts().filter((m) => m.mountpoint === want && m.fstype === FSTYPE).pop();
}

export function isMountpoint(mountpoint: string): boolean {
  const want = path.resolve(mountpoint);
  return readMounts().some((m) => m.mountpoint === want);
}
