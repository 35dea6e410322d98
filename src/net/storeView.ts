// What a server sees of a store: a served subtree, paths resolved inside it without following
// symlinks, files as recipes with their digests, and a resumable pre-order walk for paged
// listings. Read-only: nothing here writes to the store.
import { digestToString, type Digest } from '../chunking/digest';
import { type InodeRecord, type Ino, ROOT_INO, isDir, isReg, isSymlink, runEnd } from '../store/records';
import type { Store } from '../store/store';
import { encodeName } from '../store/names';
import { SLINKY_NAME } from '../pagecache/layout';
import { LIMITS, type Recipe, type TreeEntry, encodeRecipe, fileDigest } from './protocol';

export class NotServedError extends Error {
  override name = 'NotServedError';
}

export class StoreView {
  /** file digest (text) -> inode, filled by listings and by scans; checked again on every use. */
  private readonly byDigest = new Map<string, Ino>();
  private lastScanMs = -Infinity;

  constructor(
    readonly store: Store,
    private readonly rootIno: Ino = ROOT_INO,
    /** A digest lookup that misses rescans the served tree at most this often. */
    private readonly rescanIntervalMs = 10_000,
  ) {}

  /** Open a view of the subtree at `root` ("/" for the whole store). */
  static at(store: Store, rootComponents: readonly string[]): StoreView {
    let ino = ROOT_INO;
    for (const name of rootComponents) {
      const child = store.lookup(ino, name);
      const rec = child === undefined ? undefined : store.getInode(child);
      if (!rec || !isDir(rec)) throw new NotServedError(`/${rootComponents.join('/')} is not a directory in the store`);
      ino = child!;
    }
    return new StoreView(store, ino);
  }

  /** The inode at `components` below the served root; symlinks are never followed. */
  resolve(components: readonly string[]): InodeRecord {
    let rec = this.store.getInode(this.rootIno);
    for (const name of components) {
      if (!rec || !isDir(rec) || hidden(rec.ino, name)) throw new NotServedError('no such file or directory');
      const child = this.store.lookup(rec.ino, name);
      rec = child === undefined ? undefined : this.store.getInode(child);
    }
    if (!rec) throw new NotServedError('no such file or directory');
    return rec;
  }

  /**
   * The file's recipe, runs expanded; undefined when its extents do not cover it contiguously
   * (damage) or it has more chunks than a recipe may carry (LIMITS.recipeChunks).
   */
  recipe(rec: InodeRecord): Recipe | undefined {
    const runs = this.store.runs(rec.ino);
    let pos = 0;
    let n = 0;
    for (const e of runs) {
      if (e.offset !== pos) return undefined;
      pos = runEnd(e);
      n += e.count;
    }
    if (pos !== rec.size || n > LIMITS.recipeChunks) return undefined;
    const chunks = [];
    for (const e of runs) for (let i = 0; i < e.count; i++) chunks.push({ length: e.length, digest: e.digest });
    return { mode: rec.mode, size: rec.size, chunks };
  }

  /** Entry describing `rec` under `name`; files get their digest (and are indexed by it). */
  entry(rec: InodeRecord, name: string): TreeEntry | undefined {
    const base = { name, mode: rec.mode & 0o7777, mtime: rec.mtimeMs };
    if (isDir(rec)) return { ...base, type: 'dir', size: 0 };
    if (isSymlink(rec)) return { ...base, type: 'symlink', size: rec.size, target: rec.target };
    if (!isReg(rec)) return undefined;
    const r = this.recipe(rec);
    if (!r) return undefined;
    const digest = digestToString(fileDigest(r));
    this.byDigest.set(digest, rec.ino);
    return { ...base, type: 'file', size: rec.size, digest };
  }

  /** Canonical recipe bytes of the served file whose digest is `digest`, or undefined. */
  recipeByDigest(digest: Digest): Buffer | undefined {
    return this.fileByDigest(digest)?.recipe;
  }

  /** The served file whose digest is `digest`, with its canonical recipe bytes. */
  fileByDigest(digest: Digest): { rec: InodeRecord; recipe: Buffer } | undefined {
    const key = digestToString(digest);
    const hit = this.checked(key, digest);
    if (hit) return hit;
    if (Date.now() - this.lastScanMs < this.rescanIntervalMs) return undefined;
    this.scan();
    return this.checked(key, digest);
  }

  private checked(key: string, digest: Digest): { rec: InodeRecord; recipe: Buffer } | undefined {
    const ino = this.byDigest.get(key);
    if (ino === undefined) return undefined;
    const rec = this.store.getInode(ino);
    const r = rec && isReg(rec) ? this.recipe(rec) : undefined;
    const bytes = r && encodeRecipe(r);
    if (rec && bytes && fileDigest(bytes).equals(digest)) return { rec, recipe: bytes };
    this.byDigest.delete(key); // the file changed or went away
    return undefined;
  }

  /** Index every file of the served tree by digest. */
  private scan(): void {
    this.lastScanMs = Date.now();
    for (const { rec } of this.walk(this.rootIno, '', [])) if (isReg(rec)) this.entry(rec, 'x');
  }

  /**
   * Pre-order walk of directory `dir` (entries in byte order of their names), starting after the
   * entry named by `after` (its components; [] = from the start).
   */
  *walk(dir: Ino, prefix: string, after: readonly string[]): Generator<{ name: string; rec: InodeRecord }> {
    const first = after[0];
    const firstBytes = first === undefined ? undefined : encodeName(first);
    for (const e of this.store.entries(dir)) {
      if (hidden(dir, e.name)) continue;
      const name = prefix ? `${prefix}/${e.name}` : e.name;
      if (firstBytes) {
        const c = Buffer.compare(encodeName(e.name), firstBytes);
        if (c < 0) continue;
        if (c === 0) {
          // The cursor is this entry (already sent) or lies inside it.
          const rec = this.store.getInode(e.ino);
          if (rec && isDir(rec)) yield* this.walk(e.ino, name, after.slice(1));
          continue;
        }
      }
      const rec = this.store.getInode(e.ino);
      if (!rec) continue;
      yield { name, rec };
      if (isDir(rec)) yield* this.walk(e.ino, name, []);
    }
  }
}

/**
 * The page cache's /.slinky tree is derived from the store's own slinked files and each store
 * makes its own (docs/FORMAT.md, "Page cache"): it is not served.
 */
function hidden(dir: Ino, name: string): boolean {
  return dir === ROOT_INO && name === SLINKY_NAME;
}
