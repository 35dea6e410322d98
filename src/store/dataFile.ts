// A look at LMDB's data file before LMDB maps it. LMDB trusts its file: a file that is garbage,
// cut short (a copy that stopped, a disk that filled) or not LMDB's at all makes it read past
// the end of its map, and the process dies of SIGSEGV or SIGBUS with no word said. Its two meta
// pages say enough to refuse such a file with a message instead: each starts with a magic number
// and records the page size and the last page in use, and the newer of the two is the one LMDB
// will believe (docs/FORMAT.md, "Store").
import fs from 'node:fs';
import { CorruptStoreError } from './errors';

/** Where LMDB (as built by lmdb-js 3) keeps its meta fields: after a 24-byte page header. */
const META = 24;
const MAGIC = 0xbeefc0de;
const DATA_VERSION = 2;
const OFF_DBS = META + 24; // mm_dbs[FREE_DBI], then mm_dbs[MAIN_DBI]
const OFF_PSIZE = OFF_DBS; // mm_dbs[FREE_DBI].md_pad
const OFF_LAST_PAGE = META + 120; // mm_last_pg
const OFF_TXNID = META + 128; // mm_txnid
/** sizeof(MDB_db): md_pad u32, md_flags u16, md_depth u16, four page/entry counts, md_root. */
export const DB_RECORD_SIZE = 48;

/** An MDB_db record: where one B-tree starts (the two in a meta page, or a named database's). */
export interface DbRecord {
  flags: number;
  depth: number;
  /** Page number, or P_INVALID (2^64 - 1) for an empty tree. */
  root: bigint;
}

export function readDbRecord(b: Buffer, at: number): DbRecord {
  return { flags: b.readUInt16LE(at + 4), depth: b.readUInt16LE(at + 6), root: b.readBigUInt64LE(at + 40) };
}

export interface Meta {
  pageSize: number;
  lastPage: number;
  txnid: bigint;
  freeDb: DbRecord;
  mainDb: DbRecord;
}

function readMeta(page: Buffer): Meta | undefined {
  if (page.length < OFF_TXNID + 8) return undefined;
  if (page.readUInt32LE(META) !== MAGIC || page.readUInt32LE(META + 4) !== DATA_VERSION) return undefined;
  return {
    pageSize: page.readUInt32LE(OFF_PSIZE),
    lastPage: Number(page.readBigUInt64LE(OFF_LAST_PAGE)),
    txnid: page.readBigUInt64LE(OFF_TXNID),
    freeDb: readDbRecord(page, OFF_DBS),
    mainDb: readDbRecord(page, OFF_DBS + DB_RECORD_SIZE),
  };
}

export function damagedFile(file: string, why: string): CorruptStoreError {
  return new CorruptStoreError(`the store's database file ${file} is damaged (${why})`);
}

const validPageSize = (n: number) => n >= 4096 && n <= 65536 && (n & (n - 1)) === 0;

/** The page size page 0 states (4096 if it is no meta page) and the valid meta pages of that size. */
async function readMetas(handle: fs.promises.FileHandle): Promise<{ pageSize: number; metas: Meta[] }> {
  const first = Buffer.alloc(4096);
  await handle.read(first, 0, first.length, 0);
  const page0 = readMeta(first);
  const pageSize = page0?.pageSize ?? 4096;
  if (!validPageSize(pageSize)) return { pageSize, metas: [] };
  const second = Buffer.alloc(4096);
  await handle.read(second, 0, second.length, pageSize);
  const metas = [page0, readMeta(second)].filter((m): m is Meta => m !== undefined && m.pageSize === pageSize);
  return { pageSize, metas };
}

/** The meta page LMDB will believe: the valid one with the higher transaction id. */
const newest = (metas: Meta[]): Meta | undefined => (metas.length ? metas.reduce((a, b) => (b.txnid > a.txnid ? b : a)) : undefined);

export async function newestMeta(handle: fs.promises.FileHandle): Promise<Meta | undefined> {
  return newest((await readMetas(handle)).metas);
}

/**
 * Throw CorruptStoreError unless `file` looks like an LMDB data file LMDB can map safely: both
 * meta pages readable, one of them valid, and the file as long as the newest valid one says. An
 * empty file is accepted when `emptyIsNew` (LMDB initialises it, as on a store's first open).
 * Returns whether there is a database in it (false: no file yet, or a new empty one).
 */
export async function checkDataFile(file: string, emptyIsNew: boolean): Promise<boolean> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    // The meta pages first, the length after: a daemon may commit meanwhile, and it writes a
    // meta page only after the pages it names, so a length taken first can be short of them.
    const { pageSize, metas } = await readMetas(handle);
    const { size } = await handle.stat();
    if (size === 0 && emptyIsNew) return false;
    const damaged = (why: string) => damagedFile(file, why);
    if (!validPageSize(pageSize)) throw damaged(`page size ${pageSize}`);
    if (size < 2 * pageSize) throw damaged(`${size} bytes, shorter than its two meta pages`);
    const meta = newest(metas);
    if (!meta) throw damaged('not an LMDB file');
    const needed = (meta.lastPage + 1) * pageSize;
    if (size < needed) throw damaged(`${size} bytes where its last page ends at ${needed}`);
    return true;
  } finally {
    await handle.close();
  }
}
