// Namespace changes a transfer makes directly in a store (no mount): directories made on the
// way, trees created from a peer's listing with their recipes (chunks not here yet become
// absent references), trees removed and renamed. The same inode conventions as src/fs: a
// directory's nlink is 2 plus its subdirectories, files and symlinks start at 1. Every function
// that writes runs inside the caller's Store.txn.
import { dropContent } from '../store/fileContent';
import { ExistsError, NotDirError } from '../store/errors';
import { type InodeRecord, type Ino, ROOT_INO, S_IFDIR, S_IFLNK, S_IFREG, isDir } from '../store/records';
import type { Store } from '../store/store';
import { nameByteLength } from '../store/names';
import type { Recipe, TreeEntry } from './protocol';

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * Mode bits a file from a peer keeps. Set-id bits are dropped: a peer must not be able to plant a
 * set-user-ID program on this machine.
 */
export const PEER_MODE_MASK = 0o1777;

export function processOwner(): Owner {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

function touch(store: Store, ino: Ino, nlinkDelta: number): void {
  const rec = store.getInode(ino)!;
  const now = Date.now();
  store.putInode({ ...rec, nlink: rec.nlink + nlinkDelta, mtimeMs: now, ctimeMs: now });
}

/** The directory at `components`, made (like mkdir -p) where missing. Inside txn. */
export function ensureDir(store: Store, components: readonly string[], owner: Owner): Ino {
  let ino = ROOT_INO;
  for (const name of components) {
    const child = store.lookup(ino, name);
    if (child !== undefined) {
      const rec = store.getInode(child);
      if (!rec || !isDir(rec)) throw new NotDirError(`/${components.join('/')}: ${name} is not a directory`);
      ino = child;
      continue;
    }
    ino = addNode(store, ino, name, { type: 'dir', mode: 0o755, mtime: Date.now(), size: 0, name }, undefined, owner);
  }
  return ino;
}

/** Create one node under `parent` (inside txn). Files take a reference on every recipe chunk. */
export function addNode(store: Store, parent: Ino, name: string, e: TreeEntry, recipe: Recipe | undefined, owner: Owner): Ino {
  if (store.lookup(parent, name) !== undefined) throw new ExistsError(`${name} exists`);
  const ino = store.allocIno();
  const now = Date.now();
  const base: InodeRecord = { ino, mode: 0, uid: owner.uid, gid: owner.gid, nlink: 1, size: 0, atimeMs: now, mtimeMs: e.mtime, ctimeMs: now, target: '' };
  if (e.type === 'dir') {
    store.putInode({ ...base, mode: S_IFDIR | (e.mode & PEER_MODE_MASK), nlink: 2 });
    store.addEntry(parent, name, ino);
    touch(store, parent, 1);
    return ino;
  }
  if (e.type === 'symlink') {
    const target = e.target ?? '';
    store.putInode({ ...base, mode: S_IFLNK | 0o777, size: nameByteLength(target), target });
  } else {
    if (!recipe) throw new Error(`no recipe for ${name}`);
    store.putInode({ ...base, mode: S_IFREG | (e.mode & PEER_MODE_MASK), size: recipe.size });
    // Consecutive identical chunks (a hole's zeros) become one run record, one reference.
    let offset = 0;
    const chunks = recipe.chunks;
    for (let i = 0; i < chunks.length; ) {
      const c = chunks[i];
      let count = 1;
      while (i + count < chunks.length && chunks[i + count].length === c.length && chunks[i + count].digest.equals(c.digest)) count++;
      store.putExtent(ino, { offset, length: c.length, digest: c.digest, count });
      store.refAbsentChunk(c.digest, c.length);
      offset += c.length * count;
      i += count;
    }
  }
  store.addEntry(parent, name, ino);
  touch(store, parent, 0);
  return ino;
}

/** Where each listed name went: relative name -> inode, filled as a tree is created. */
export type CreatedTree = Map<string, Ino>;

/**
 * Create the entries of a listing below `top` (a directory already made), in listing order, in
 * transactions of `perTxn` entries. Entries whose parent was skipped or exists as a non-directory
 * are skipped; with `merge`, names that already exist are kept as they are (directories are
 * descended into). Returns how many entries were created.
 */
export async function createEntries(
  store: Store,
  top: Ino,
  entries: readonly TreeEntry[],
  recipes: ReadonlyMap<string, Recipe>,
  owner: Owner,
  opts: { merge?: boolean; perTxn?: number } = {},
): Promise<number> {
  const dirs = new Map<string, Ino>([['', top]]);
  const perTxn = opts.perTxn ?? 500;
  let created = 0;
  for (let i = 0; i < entries.length; i += perTxn) {
    const slice = entries.slice(i, i + perTxn);
    created += await store.txn(() => {
      let n = 0;
      for (const e of slice) {
        const slash = e.name.lastIndexOf('/');
        const parent = dirs.get(slash < 0 ? '' : e.name.slice(0, slash));
        if (parent === undefined) continue;
        const base = slash < 0 ? e.name : e.name.slice(slash + 1);
        const existing = store.lookup(parent, base);
        if (existing !== undefined) {
          if (!opts.merge) throw new ExistsError(`${e.name} exists`);
          const rec = store.getInode(existing);
          if (e.type === 'dir' && rec && isDir(rec)) dirs.set(e.name, existing);
          continue;
        }
        const ino = addNode(store, parent, base, e, e.digest ? recipes.get(e.digest) : undefined, owner);
        if (e.type === 'dir') dirs.set(e.name, ino);
        n++;
      }
      return n;
    });
  }
  return created;
}

/** Remove `name` under `parent` and everything below it (inside txn). */
export function removeTree(store: Store, parent: Ino, name: string): void {
  const ino = store.lookup(parent, name);
  if (ino === undefined) return;
  const rec = store.getInode(ino);
  if (rec && isDir(rec)) {
    for (const child of Array.from(store.entries(ino))) removeTree(store, ino, child.name);
    touch(store, parent, -1);
  } else touch(store, parent, 0);
  store.removeEntry(parent, name);
  if (!rec) return;
  if (!isDir(rec) && rec.nlink > 1) {
    store.putInode({ ...rec, nlink: rec.nlink - 1 });
    return;
  }
  dropContent(store, ino);
  store.removeInode(ino);
}

/** Rename within one directory (inside txn); `to` must not exist. */
export function renameEntry(store: Store, parent: Ino, from: string, to: string): void {
  const ino = store.lookup(parent, from);
  if (ino === undefined) throw new Error(`${from} is gone`);
  if (store.lookup(parent, to) !== undefined) throw new ExistsError(`${to} exists`);
  store.removeEntry(parent, from);
  store.addEntry(parent, to, ino);
  touch(store, parent, 0);
}

/** Digests (text form) of a listing's files, for requesting recipes. */
export function fileDigests(entries: readonly TreeEntry[]): string[] {
  const seen = new Set<string>();
  for (const e of entries) if (e.type === 'file' && e.digest) seen.add(e.digest);
  return Array.from(seen);
}
