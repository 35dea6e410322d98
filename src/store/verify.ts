// Full consistency check: every chunk re-hashed, every recipe walked (contiguous extents from 0
// to the file's size, every chunk present, its hole count right), every reference count recomputed.
import { DigestFormatError, verifyDigest, digestToString } from '../chunking/digest';
import { decodeChunk } from '../chunking/compress';
import { CODEC_ABSENT, RecordFormatError, isReg, runEnd } from './records';
import { CorruptStoreError, isLmdbError } from './errors';
import type { Store } from './store';
import { isHoleChunk } from '../chunking/zeros';

export interface Damage {
  kind: 'chunk-corrupt' | 'chunk-missing' | 'recipe-gap' | 'hole-count' | 'refcount' | 'unreferenced';
  what: string;
}

export interface VerifyReport {
  chunksChecked: number;
  filesChecked: number;
  /** Referenced chunks whose bytes are still on a peer (lazy files, unfinished transfers): not damage. */
  notYetFetched: number;
  damage: Damage[];
}

/**
 * A record LMDB cannot read (a damaged node it trips over) or slinkyfs cannot decode (a record or
 * a digest key of the wrong shape) ends the walk: it is damage, reported with what was being
 * read, as CorruptStoreError.
 */
export function verifyStore(store: Store, onProgress?: (done: number, total: number) => void): VerifyReport {
  const at = { reading: 'the inode table' };
  try {
    return walk(store, at, onProgress);
  } catch (err) {
    if (!isLmdbError(err) && !(err instanceof RecordFormatError) && !(err instanceof DigestFormatError)) throw err;
    throw new CorruptStoreError(`store ${store.dir} is damaged: reading ${at.reading} failed: ${(err as Error).message}`);
  }
}

function walk(store: Store, at: { reading: string }, onProgress?: (done: number, total: number) => void): VerifyReport {
  const damage: Damage[] = [];
  const counted = new Map<string, number>();
  let filesChecked = 0;
  const holesCounted = store.holesCounted;
  for (const rec of store.allInodes()) {
    if (!isReg(rec)) continue;
    filesChecked++;
    at.reading = `the extents of inode ${rec.ino}`;
    let pos = 0;
    let holes = 0;
    // A run counts once and is walked arithmetically: it covers count × length bytes.
    for (const e of store.runs(rec.ino)) {
      if (e.offset !== pos) damage.push({ kind: 'recipe-gap', what: `inode ${rec.ino}: bytes ${pos}..${e.offset} have no chunk` });
      pos = runEnd(e);
      if (isHoleChunk(e.length, e.digest)) holes += e.length * e.count;
      const k = e.digest.toString('latin1');
      counted.set(k, (counted.get(k) ?? 0) + 1);
      if (!store.chunkRef(e.digest)) damage.push({ kind: 'chunk-missing', what: `inode ${rec.ino} at ${e.offset}: ${digestToString(e.digest)}` });
    }
    if (pos !== rec.size) damage.push({ kind: 'recipe-gap', what: `inode ${rec.ino}: recipe covers ${pos} of ${rec.size} bytes` });
    const recorded = store.holeBytes(rec.ino);
    if (holesCounted && recorded !== holes) damage.push({ kind: 'hole-count', what: `inode ${rec.ino}: ${recorded} hole bytes recorded, ${holes} in its recipe` });
    at.reading = `the inode table after inode ${rec.ino}`;
  }
  at.reading = 'the chunk references';
  const all = Array.from(store.allChunkRefs());
  let done = 0;
  let notYetFetched = 0;
  for (const { digest, ref } of all) {
    const name = digestToString(digest);
    at.reading = `chunk ${name}`;
    const stored = store.readStoredChunk(digest);
    if (ref.codec === CODEC_ABSENT) notYetFetched++;
    else if (!stored) damage.push({ kind: 'chunk-missing', what: `${name}: reference without bytes` });
    else {
      let ok = false;
      try {
        ok = verifyDigest(digest, decodeChunk(stored.codec, stored.data, ref.length));
      } catch {
        ok = false;
      }
      if (!ok) damage.push({ kind: 'chunk-corrupt', what: `${name}: bytes do not match the digest` });
    }
    const want = counted.get(digest.toString('latin1')) ?? 0;
    if (want === 0) damage.push({ kind: 'unreferenced', what: `${name}: no file uses it (slinkyfs gc reclaims it)` });
    else if (want !== ref.refs) damage.push({ kind: 'refcount', what: `${name}: count ${ref.refs}, used ${want} times` });
    if (onProgress && ++done % 4096 === 0) onProgress(done, all.length);
  }
  return { chunksChecked: all.length, filesChecked, notYetFetched, damage };
}

/**
 * Recompute reference counts from the recipes (one per `extents` record, a run included) and drop
 * chunks nothing uses (inside a txn).
 */
export function collectGarbage(store: Store): { freedChunks: number; freedBytes: number; fixedCounts: number } {
  const counted = new Map<string, number>();
  for (const { extent } of store.allExtents()) {
    const k = extent.digest.toString('latin1');
    counted.set(k, (counted.get(k) ?? 0) + 1);
  }
  let freedChunks = 0;
  let freedBytes = 0;
  let fixedCounts = 0;
  for (const { digest, ref } of Array.from(store.allChunkRefs())) {
    const want = counted.get(digest.toString('latin1')) ?? 0;
    if (want === ref.refs) continue;
    if (want === 0) {
      freedChunks++;
      freedBytes += ref.storedLength;
    } else fixedCounts++;
    store.setChunkRefs(digest, want);
  }
  for (const digest of Array.from(store.allChunkKeys())) {
    if (store.hasChunk(digest)) continue;
    store.removeChunkBytes(digest);
    freedChunks++;
  }
  return { freedChunks, freedBytes, fixedCounts };
}
