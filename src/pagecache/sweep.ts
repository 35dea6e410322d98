// The object sweep of `slinkyfs gc`. A published object (/.slinky/objects/<digest>, with its
// page table) holds references to its chunks; once the last slinked file embedding it is gone it
// would keep them forever. The sweep reads the manifest of every file outside /.slinky and removes
// the objects no manifest names. It runs on an unmounted store (no program can be using an
// object), and removes nothing when any file could not be read: a manifest it missed might
// name an object still in use.
import { TRAILER_SIZE } from '../elf/manifest';
import type { Filesystem } from '../fs/filesystem';
import type { ChunkSource } from '../store/chunkSource';
import { readCommitted } from '../store/fileContent';
import { ROOT_INO, isReg } from '../store/records';
import { walkTree } from '../store/walk';
import type { Store } from '../store/store';
import { NotFoundError } from '../store/errors';
import { OBJECTS_DIR, SLINKY_NAME, objectName, objectPath, pageTablePath } from './layout';
import { hasTrailer, readManifest } from './manifestReader';

export interface SweepResult {
  /** Slinked files found, and objects their manifests name that are published. */
  slinkedFiles: number;
  kept: number;
  /** Object names removed (with their page tables). */
  removed: string[];
  /** Files whose manifest could not be read: when non-zero nothing was removed. */
  unreadable: number;
}

export async function sweepObjects(fs: Filesystem, store: Store, source: ChunkSource, log: (line: string) => void): Promise<SweepResult> {
  const r: SweepResult = { slinkedFiles: 0, kept: 0, removed: [], unreadable: 0 };
  let published: string[];
  try {
    published = (await fs.readdir(OBJECTS_DIR)).filter((n) => n !== '.' && n !== '..');
  } catch (err) {
    if (err instanceof NotFoundError) return r;
    throw err;
  }
  const named = new Set<string>();
  // Every regular file outside /.slinky, once each.
  for (const rec of walkTree(store, ROOT_INO, (parent, name) => parent === ROOT_INO && name === SLINKY_NAME)) {
    if (!isReg(rec)) continue;
    const { ino, size } = rec;
    if (size < TRAILER_SIZE) continue;
    let readFailed = false;
    const read = async (at: number, n: number) => {
      const b = Buffer.alloc(n);
      await readCommitted(store, source, ino, at, b).catch((err) => {
        readFailed = true;
        throw err;
      });
      return b;
    };
    try {
      const tail = await read(size - TRAILER_SIZE, TRAILER_SIZE);
      if (!hasTrailer(tail)) continue;
      const m = await readManifest(read, size, tail);
      if (!m) continue;
      r.slinkedFiles++;
      for (const o of m.objects) named.add(objectName(o.digest));
    } catch (err) {
      // A malformed manifest names nothing; a file that cannot be read might name anything.
      if (!readFailed) continue;
      r.unreadable++;
      log(`gc: cannot read inode ${ino}: ${(err as Error).message}`);
    }
  }
  if (r.unreadable > 0) {
    r.kept = published.length;
    return r;
  }
  for (const name of published) {
    if (named.has(name)) {
      r.kept++;
      continue;
    }
    await fs.unlink(objectPath(name));
    await fs.unlink(pageTablePath(name)).catch((err) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
    r.removed.push(name);
  }
  return r;
}
