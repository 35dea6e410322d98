// A store in a fresh temporary directory for each test, opened and closed around the code that
// uses it (so a test can also close it, change it behind its back and open it again).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { chunkBuffer } from '../../src/chunking/chunker';
import { Filesystem } from '../../src/fs/filesystem';
import { LocalChunkSource } from '../../src/store/localSource';
import { Store } from '../../src/store/store';

export const ROOT = { uid: 0, gid: 0 };

export interface TempStore {
  /** The store's directory (valid inside a test). */
  readonly dir: string;
  /** Open the store, run `fn` with it and a Filesystem over it, close it. */
  withFs<T>(fn: (store: Store, fsys: Filesystem) => Promise<T>): Promise<T>;
}

export function useTempStore(tag: string): TempStore {
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `slinkyfs-${tag}-`));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  return {
    get dir() {
      return dir;
    },
    async withFs(fn) {
      const store = await Store.open(dir);
      try {
        return await fn(store, new Filesystem(store, new LocalChunkSource(store)));
      } finally {
        await store.close();
      }
    },
  };
}

/** A store opened in a fresh temporary directory before each test and closed after it; a test
 *  may close it and put another (e.g. the same directory opened again) in `store`. */
export interface OpenStore {
  dir: string;
  store: Store;
}

export function useOpenStore(tag: string): OpenStore {
  const t = {} as OpenStore;
  beforeEach(async () => {
    t.dir = fs.mkdtempSync(path.join(os.tmpdir(), `slinkyfs-${tag}-`));
    t.store = await Store.open(t.dir);
  });
  afterEach(async () => {
    await t.store.close();
    fs.rmSync(t.dir, { recursive: true, force: true });
  });
  return t;
}

export interface OpenFs extends OpenStore {
  /** Open the store's directory again (the test closed the store) and hand it out anew. */
  reopen(): Promise<void>;
}

/**
 * useOpenStore with a Filesystem over the store: `use` gets both before each test and after
 * each reopen (tests keep them in their own variables).
 */
export function useOpenFs(tag: string, use: (store: Store, fsys: Filesystem) => void): OpenFs {
  const t = useOpenStore(tag) as OpenFs;
  const hand = () => use(t.store, new Filesystem(t.store, new LocalChunkSource(t.store)));
  beforeEach(hand);
  t.reopen = async () => {
    t.store = await Store.open(t.dir); // useOpenStore's afterEach closes this one
    hand();
  };
  return t;
}

/** The chunking of `data` as a recipe reads (digests in hex): what a file of those bytes must store. */
export function chunkingOf(data: Buffer): Array<{ offset: number; length: number; digest: string }> {
  return chunkBuffer(data).map((c) => ({ offset: c.offset, length: c.length, digest: c.digest.toString('hex') }));
}

/**
 * Make a closed store look like one written before database `db` existed: drop it and its
 * `meta` mark (`<db>Indexed`) that says writers keep it.
 */
export async function asFromBefore(dir: string, db: string): Promise<void> {
  const env = openLmdb({ path: path.join(dir, 'db'), maxDbs: 16, encoding: 'binary', keyEncoding: 'binary' });
  try {
    await env.openDB({ name: db, encoding: 'binary', keyEncoding: 'binary' }).drop();
    await env.openDB({ name: 'meta', encoding: 'binary', keyEncoding: 'ordered-binary' }).remove(`${db}Indexed`);
  } finally {
    await env.close();
  }
}
