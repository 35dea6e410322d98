// What the store saves: logical bytes (what users see) against unique chunk bytes (after
// dedup) against stored bytes (after compression). Computed by one scan, so it is always exact.
import { CODEC_ABSENT, isDir, isReg, isSymlink, ROOT_INO } from './records';
import { walkTree } from './walk';
import type { Store } from './store';

export interface StoreStats {
  files: number;
  directories: number;
  symlinks: number;
  /** FIFOs, sockets and device nodes. */
  special: number;
  logicalBytes: number;
  /** Of the logical bytes, those in holes (records of the maximal zero chunk): sparse files' emptiness. */
  holeBytes: number;
  uniqueBytes: number;
  storedBytes: number;
  chunks: number;
  /** Chunks (and their plaintext bytes) that recipes reference but that are still on a peer. */
  absentChunks: number;
  absentBytes: number;
  meanChunkBytes: number;
  dedupRatio: number;
  compressionRatio: number;
  databaseBytes: number;
  /** Of those, bytes in free pages: what `slinkyfs gc` would give back. */
  databaseFreeBytes: number;
  /** Chunks stored raw that the compactor has not compressed yet. */
  pendingCompression: number;
}

export interface DirStats {
  dir: string;
  files: number;
  logicalBytes: number;
  uniqueBytes: number;
  storedBytes: number;
  dedupRatio: number;
}

const ratio = (a: number, b: number) => (b === 0 ? 1 : a / b);

export function computeStats(store: Store): StoreStats {
  let files = 0;
  let directories = 0;
  let symlinks = 0;
  let special = 0;
  let logicalBytes = 0;
  let holeBytes = 0;
  for (const rec of store.allInodes()) {
    if (isReg(rec)) {
      files++;
      logicalBytes += rec.size;
      holeBytes += store.holeBytes(rec.ino);
    } else if (isDir(rec)) directories++;
    else if (isSymlink(rec)) symlinks++;
    else special++;
  }
  let uniqueBytes = 0;
  let storedBytes = 0;
  let chunks = 0;
  let absentChunks = 0;
  let absentBytes = 0;
  for (const { ref } of store.allChunkRefs()) {
    if (ref.codec === CODEC_ABSENT) {
      absentChunks++;
      absentBytes += ref.length;
      continue;
    }
    chunks++;
    uniqueBytes += ref.length;
    storedBytes += ref.storedLength;
  }
  return {
    files,
    directories,
    symlinks,
    special,
    logicalBytes,
    holeBytes,
    uniqueBytes,
    storedBytes,
    chunks,
    absentChunks,
    absentBytes,
    meanChunkBytes: chunks ? Math.round(uniqueBytes / chunks) : 0,
    // Dedup is a property of the content, wherever its chunks are: absent ones count too.
    dedupRatio: ratio(logicalBytes, uniqueBytes + absentBytes),
    compressionRatio: ratio(uniqueBytes, storedBytes),
    databaseBytes: store.usedBytes(),
    databaseFreeBytes: store.freeBytes(),
    pendingCompression: store.compressionBacklog(),
  };
}

/** The paper's Table 2 shape: per top-level directory, what its files need on their own. */
export function statsByTopDir(store: Store): DirStats[] {
  const out: DirStats[] = [];
  for (const top of store.entries(ROOT_INO)) {
    const seen = new Set<string>();
    const row: DirStats = { dir: '/' + top.name, files: 0, logicalBytes: 0, uniqueBytes: 0, storedBytes: 0, dedupRatio: 1 };
    for (const rec of walkTree(store, top.ino)) {
      if (isReg(rec)) {
        row.files++;
        row.logicalBytes += rec.size;
        for (const e of store.runs(rec.ino)) {
          const k = e.digest.toString('latin1');
          if (seen.has(k)) continue;
          seen.add(k);
          const ref = store.chunkRef(e.digest);
          row.uniqueBytes += e.length;
          row.storedBytes += ref?.storedLength ?? 0;
        }
      }
    }
    row.dedupRatio = ratio(row.logicalBytes, row.uniqueBytes);
    out.push(row);
  }
  return out;
}
