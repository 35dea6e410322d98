// Shared by the page cache tests: real slinked programs, a real LMDB store with the Filesystem
// semantics layer on top (no FUSE), and the page cache hooked to it as the daemon hooks it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { digestOf } from '../../src/chunking/digest';
import { encodeChunkAsync } from '../../src/chunking/compress';
import { Filesystem } from '../../src/fs/filesystem';
import { createPageCache, type PageCache } from '../../src/pagecache';
import { LocalChunkSource } from '../../src/store/localSource';
import { Store } from '../../src/store/store';
import type { Extent } from '../../src/store/records';

export const ROOT = { uid: 0, gid: 0 };

export interface Rig {
  dir: string;
  store: Store;
  source: LocalChunkSource;
  fs: Filesystem;
  pc: PageCache;
  close(): Promise<void>;
}

/** A store in `dir` (created when absent) with a Filesystem and a page cache on it. */
export async function openRig(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-pc-')), opts: { poolBytes?: number; hook?: boolean } = {}): Promise<Rig> {
  const store = await Store.open(dir);
  const source = new LocalChunkSource(store);
  let pc: PageCache | undefined;
  const fsys = new Filesystem(store, source, { onContentCommitted: opts.hook === false ? undefined : (ino, tail) => pc!.onContentCommitted(ino, tail) });
  pc = createPageCache({ store, source, filesystem: fsys, mountpoint: path.join(dir, 'nowhere'), storeDir: false, log: () => undefined, poolBytes: opts.poolBytes, owner: ROOT });
  await pc.start();
  return {
    dir,
    store,
    source,
    fs: fsys,
    pc,
    async close() {
      await pc!.close();
      await store.close();
    },
  };
}

export async function writeFile(fsys: Filesystem, p: string, data: Buffer, mode = 0o755): Promise<number> {
  const fh = await fsys.create(p, mode, ROOT);
  for (let at = 0; at < data.length; at += 131072) await fsys.write(fh, data.subarray(at, at + 131072), Math.min(131072, data.length - at), at);
  await fsys.release(fh);
  return (await fsys.getattr(p)).ino;
}

/** Names in a directory, without "." and "..". */
export async function names(fsys: Filesystem, dir: string): Promise<string[]> {
  return (await fsys.readdir(dir)).filter((n) => n !== '.' && n !== '..').sort();
}

export async function readFile(fsys: Filesystem, p: string): Promise<Buffer> {
  const size = (await fsys.getattr(p)).size;
  const fh = await fsys.open(p, 0);
  const out = Buffer.alloc(size);
  try {
    await fsys.read(fh, out, size, 0);
  } finally {
    await fsys.release(fh);
  }
  return out;
}

/**
 * Replace the chunk holding byte `offset` of `ino` in its recipe by a chunk of the same length
 * with that byte flipped: a well-formed store (the new chunk matches its own digest) whose file
 * content is no longer what was published. Only the page digests can notice.
 */
export async function tamperRecipe(store: Store, source: LocalChunkSource, ino: number, offset: number): Promise<void> {
  const e: Extent = store.extents(ino, offset, offset + 1)[0];
  const bytes = Buffer.from((await source.getChunk(e.digest))!);
  bytes[offset - e.offset] ^= 0x40;
  const digest = digestOf(bytes);
  const encoded = await encodeChunkAsync(bytes);
  await store.txn(() => {
    store.refChunk(digest, bytes.length, encoded);
    store.removeExtent(ino, e);
    store.unrefChunk(e.digest);
    store.putExtent(ino, { offset: e.offset, length: e.length, digest });
  });
}

export function tempDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `slinkyfs-${tag}-`));
  fs.chmodSync(d, 0o755);
  return d;
}
