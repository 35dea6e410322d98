// Opening a store from the CLI: read-only while a daemon serves it (LMDB allows readers in other
// processes), and a clear error when there is no store or a writer holds it.
import fs from 'node:fs';
import path from 'node:path';
import { Store } from '../store/store';
import { readLock } from '../store/lock';
import { CorruptStoreError } from '../store/errors';
import { UserError } from './errors';

/**
 * That `dir` has a database file. No file means no store; a file that cannot be looked at
 * (another user's store behind a 0700 directory) is a permission problem and said as one (exit 3).
 */
function mustHaveDatabase(dir: string): void {
  const file = path.join(dir, 'db', 'data.mdb');
  try {
    fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new UserError(`no slinkyfs store at ${dir}`);
    throw new UserError(`cannot open store ${dir}: ${(err as Error).message}`, 3);
  }
}

/**
 * Damage Store.open finds in the database file is exit 1, as verify reports damage. verify asks
 * for `checkEveryPage`: it walks the pages even of a file a clean close vouches for.
 */
export async function openStoreForReading(dir: string, options: { checkEveryPage?: boolean } = {}): Promise<Store> {
  mustHaveDatabase(dir);
  try {
    return await Store.open(dir, { readOnly: true, checkEveryPage: options.checkEveryPage });
  } catch (err) {
    // A damaged store is what verify exists to find: exit status 1, as for damaged chunks.
    throw new UserError(`cannot open store ${dir}: ${(err as Error).message}`, err instanceof CorruptStoreError ? 1 : 2);
  }
}

/**
 * Writers must be alone: refuse while a daemon holds the store. Alone, the page check is exact
 * (nothing commits under it), and a writer (gc rewrites the whole file) must not follow damaged
 * pages: it would crash or carry the damage into the new file.
 */
export async function openStoreForWriting(dir: string): Promise<Store> {
  const holder = readLock(dir);
  if (holder) throw new UserError(`store ${dir} is in use by slinkyfs daemon pid ${holder.pid}; unmount it first`, 3);
  mustHaveDatabase(dir);
  return Store.open(dir);
}
