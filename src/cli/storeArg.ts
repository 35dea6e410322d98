// Shared option for commands that work on a store: --store DIR, defaulting to the embedded
// store, or a mountpoint argument that leads to its store through the mount table.
import path from 'node:path';
import type { Argv } from 'yargs';
import { defaultStoreDir } from '../store/defaultStore';
import { findSlinkyMount, resolveOutsideMounts } from '../fs/mountTable';
import { UserError } from './errors';

export function withStore<T>(y: Argv<T>) {
  return y.option('store', {
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
