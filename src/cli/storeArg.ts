// Shared option for commands that work on a store: --store DIR, defaulting to the embedded
// store, or a mountpoint argument that leads to its store through the mount table.
import path from 'node:path';
import type { Argv } from 'yargs';
import { defaultStoreDir } from '../store/defaultStore';
import { readLock } from '../store/lock';
import { FSTYPE, findSlinkyMount, mountContaining, readMounts, resolveOutsideMounts, type MountEntry } from '../fs/mountTable';
import { UserError } from './errors';

export function withStore<T>(y: Argv<T>) {
  return y.option('store', {
    requiresArg: true,
    type: 'string',
    describe: 'store directory (default: $XDG_DATA_HOME/slinkyfs or ~/.local/share/slinkyfs)',
  });
}

/** The store named by --store, by a mountpoint, or the default. */
export function storeDirFrom(args: { store?: string; mountpoint?: string }): string {
  // An empty value (`--store "$UNSET"`) must not fall back to the user's default store.
  if (args.store === '') throw new UserError('--store needs a directory');
  if (args.mountpoint === '') throw new UserError('the mountpoint is an empty name');
  if (args.store) return path.resolve(args.store);
  if (args.mountpoint) {
    const m = findSlinkyMount(resolveOutsideMounts(args.mountpoint));
    if (!m) throw new UserError(`${args.mountpoint} is not a slinkyfs mount`);
    return m.source;
  }
  return defaultStoreDir();
}

/**
 * The slinkyfs mount whose mountpoint `name` is or lies under (through symbolic links, looking
 * into no mount: see resolveOutsideMounts), when its daemon is gone, killed or crashed. Its
 * store's lock says which daemon serves which mountpoint; the kernel cannot be asked without a
 * stat on the mount, which answers ENOTCONN, or for a second after the death still answers
 * from its attribute cache.
 */
export function deadMountOf(name: string): MountEntry | undefined {
  const mounts = readMounts();
  const p = resolveOutsideMounts(name, mounts);
  const m = mountContaining(p, mounts);
  if (m?.fstype !== FSTYPE) return undefined;
  const holder = readLock(m.source);
  // A daemon mounted through a symbolic link records the name it was given.
  const serves = holder?.mountpoint !== undefined && resolveOutsideMounts(holder.mountpoint, mounts) === m.mountpoint;
  return serves ? undefined : m;
}

/** What to tell a user who named a mount whose daemon is gone (exit 3, as for a busy mount). */
export function deadMountError(m: MountEntry): UserError {
  return new UserError(
    `the daemon of the slinkyfs mount at ${m.mountpoint} is gone (killed or crashed): clear the mount with \`slinkyfs umount ${m.mountpoint}\`, then mount it again (\`slinkyfs stats --store ${m.source}\` reads its store meanwhile)`,
    3,
  );
}

/**
 * What `verify` says before it checks the store of a mount whose daemon is gone: the store can
 * still be read, but the mount must be cleared before the files are usable again.
 */
export function deadMountNote(m: MountEntry): string {
  return `slinkyfs: the daemon of the slinkyfs mount at ${m.mountpoint} is gone (killed or crashed): checking its store ${m.source}; then clear the mount with \`slinkyfs umount ${m.mountpoint}\` and mount it again\n`;
}
