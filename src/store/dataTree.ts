// A walk over every B-tree page of LMDB's data file before LMDB follows them: Store.open runs it,
// so every command and the daemon (before it mounts) check a store before LMDB maps it.
// LMDB trusts what its pages say: a flipped bit in a node's size or offset makes it copy from
// outside the page, and past the end of its map the process dies of SIGSEGV; a flipped page
// number or node flag gives errors like MDB_PAGE_NOTFOUND or "Invalid dupdata flag" (and a line
// LMDB prints to stderr). Damage of that kind is to be reported, not crashed on, so this reads each
// page reachable from the newest meta page, checks what LMDB would rely on, and names the first
// page that is wrong. Layouts are LMDB's as lmdb-js 3 builds it (mdb.c: MDB_page, MDB_node, MDB_db).
import fs from 'node:fs';
import { DB_RECORD_SIZE, checkDataFile, damagedFile, newestMeta, readDbRecord, type DbRecord, type Meta } from './dataFile';

const PAGE_HEADER = 24; // mp_pgno u64, mp_txnid u64, mp_pad u16, mp_flags u16, mp_lower u16, mp_upper u16
const NODE_HEADER = 8; // mn_lo u16, mn_hi u16, mn_flags u16, mn_ksize u16
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
/** Flags that say what a page holds; the others (P_DIRTY_OVF, P_LOOSE, P_KEEP) are bookkeeping. */
const P_KIND = 0x7f;
const F_BIGDATA = 0x01;
const F_SUBDATA = 0x02;
/** Databases with duplicate keys: slinkyfs opens none, so a record saying so is damage. */
const DUP_FLAGS = 0x04 | 0x10; // MDB_DUPSORT, MDB_DUPFIXED
const P_INVALID = 0xffffffffffffffffn;
const CURSOR_STACK = 32; // LMDB's deepest tree
/** A store being written while it is read may reuse pages under the walk: walk again. */
const ATTEMPTS = 3;

class Damage extends Error {}

/** A value kept on overflow pages, as its leaf node describes it. */
interface OverflowRef {
  entry: string;
  pgno: number;
  size: number;
}

class Walk {
  private readonly used: Uint8Array;
  readonly named: { name: string; db: DbRecord }[] = [];
  private readonly overflows: OverflowRef[] = [];
  /** Pages read and claimed so far. */
  pages = 0;

  constructor(
    private readonly handle: fs.promises.FileHandle,
    private readonly meta: Meta,
  ) {
    this.used = new Uint8Array(meta.lastPage + 1);
  }

  tree(name: string, db: DbRecord, isMain: boolean): void {
    const where = `database ${name}`;
    if (db.flags & DUP_FLAGS) throw new Damage(`${where}: marked as holding duplicate keys`);
    if (db.root === P_INVALID) {
      if (db.depth !== 0) throw new Damage(`${where}: empty but of depth ${db.depth}`);
      return;
    }
    if (db.depth < 1 || db.depth > CURSOR_STACK) throw new Damage(`${where}: depth ${db.depth}`);
    this.node(where, db.root, 1, db.depth, isMain);
  }

  /** Claims pages [first, first + count) for one use, or throws. */
  private claim(where: string, first: bigint, count: number): number {
    if (first < 2n || first + BigInt(count) - 1n > BigInt(this.meta.lastPage)) {
      throw new Damage(`${where}: refers to page ${first}, outside pages 2 to ${this.meta.lastPage}`);
    }
    const p = Number(first);
    for (let i = p; i < p + count; i++) {
      if (this.used[i]) throw new Damage(`${where}: refers to page ${i}, which is already in use`);
      this.used[i] = 1;
    }
    this.pages += count;
    return p;
  }

  private read(where: string, pgno: number, length: number): Buffer {
    const b = Buffer.alloc(length);
    const bytesRead = fs.readSync(this.handle.fd, b, 0, length, pgno * this.meta.pageSize);
    if (bytesRead !== length) throw new Damage(`${where}: page ${pgno} is past the end of the file`);
    if (b.readBigUInt64LE(0) !== BigInt(pgno)) throw new Damage(`${where}: page ${pgno} says it is page ${b.readBigUInt64LE(0)}`);
    return b;
  }

  private node(where: string, pgno: bigint, level: number, depth: number, isMain: boolean): void {
    const p = this.claim(where, pgno, 1);
    const b = this.read(where, p, this.meta.pageSize);
    const at = `${where}, page ${p}`;
    const want = level < depth ? P_BRANCH : P_LEAF;
    const kind = b.readUInt16LE(18) & P_KIND;
    if (kind !== want) throw new Damage(`${at}: flags 0x${kind.toString(16)} where a ${want === P_BRANCH ? 'branch' : 'leaf'} page belongs`);
    const lower = b.readUInt16LE(20);
    const upper = b.readUInt16LE(22);
    const space = this.meta.pageSize - PAGE_HEADER;
    const count = lower >> 1;
    if (lower & 1 || count === 0 || lower > upper || upper > space) throw new Damage(`${at}: free space bounds ${lower}..${upper}`);
    const children: bigint[] = [];
    for (let i = 0; i < count; i++) {
      const ptr = b.readUInt16LE(PAGE_HEADER + 2 * i);
      const entry = `${at}, entry ${i}`;
      if (ptr < upper || ptr + NODE_HEADER > space) throw new Damage(`${entry}: starts at ${ptr}, outside the page's nodes`);
      const n = PAGE_HEADER + ptr;
      const lo = b.readUInt16LE(n);
      const hi = b.readUInt16LE(n + 2);
      const flags = b.readUInt16LE(n + 4);
      const keyEnd = n + NODE_HEADER + b.readUInt16LE(n + 6);
      if (keyEnd > b.length) throw new Damage(`${entry}: its key runs past the end of the page`);
      if (want === P_BRANCH) {
        children.push((BigInt(flags) << 32n) | BigInt((hi << 16) | lo));
        continue;
      }
      const size = (hi << 16) + lo;
      if (flags & ~(F_BIGDATA | F_SUBDATA) || (flags & F_SUBDATA && (!isMain || flags & F_BIGDATA))) {
        throw new Damage(`${entry}: node flags 0x${flags.toString(16)}`);
      }
      if (flags & F_BIGDATA) {
        if (keyEnd + 8 > b.length) throw new Damage(`${entry}: its overflow page number runs past the end of the page`);
        this.overflow(entry, b.readBigUInt64LE(keyEnd), size);
      } else if (keyEnd + size > b.length) {
        throw new Damage(`${entry}: ${size} bytes of data run past the end of the page`);
      }
      if (flags & F_SUBDATA) {
        const name = JSON.stringify(b.toString('utf8', n + NODE_HEADER, keyEnd).replace(/\0$/, ''));
        if (size !== DB_RECORD_SIZE) throw new Damage(`${entry}: database ${name} has a ${size}-byte record`);
        this.named.push({ name, db: readDbRecord(b, keyEnd) });
      }
    }
    for (const child of children) this.node(where, child, level + 1, depth, isMain);
  }

  private overflow(entry: string, pgno: bigint, size: number): void {
    if (pgno < 2n || pgno > BigInt(this.meta.lastPage)) throw new Damage(`${entry}: refers to page ${pgno}, outside pages 2 to ${this.meta.lastPage}`);
    this.overflows.push({ entry, pgno: Number(pgno), size });
  }

  /**
   * The overflow headers, after the trees and in file order. A store holds an overflow run per
   * stored value of more than ~2 KiB; once values have been rewritten (compressed later,
   * replaced) the runs lie scattered over the file, and each header read as its leaf named it
   * was one random disk read (a cold open of a 600 MB store: 3–10 s). Read in ascending order
   * the kernel reads ahead. The trees stay depth first: the order a compacted file (`gc`) holds
   * them in.
   */
  overflowHeaders(): void {
    for (const { entry, pgno, size } of this.overflows.sort((a, b) => a.pgno - b.pgno)) {
      const h = this.read(entry, pgno, PAGE_HEADER);
      const kind = h.readUInt16LE(18) & P_KIND;
      const pages = h.readUInt32LE(20);
      if (kind !== P_OVERFLOW) throw new Damage(`${entry}: its page ${pgno} has flags 0x${kind.toString(16)} where an overflow page belongs`);
      if (pages * this.meta.pageSize - PAGE_HEADER < size) throw new Damage(`${entry}: its overflow at page ${pgno} spans ${pages} pages, too few for ${size} bytes`);
      this.claim(entry, BigInt(pgno), pages);
    }
  }
}

/**
 * Throws CorruptStoreError naming the first damaged page of `file`, after checkDataFile's look
 * at its meta pages and length (the walk starts from them; `emptyIsNew` as there: no file or an
 * empty one has nothing to walk). A writer may commit while this reads, without a reader slot to
 * keep its pages; when the newest meta page changed during a walk that found damage, the walk is
 * repeated, and a store that never holds still is left to LMDB's own reading.
 * The pages are read synchronously: this runs in Store.open, in commands and in the daemon
 * before it mounts, so no request waits. A store holding /usr/bin has some 28,000 pages
 * and overflow headers to read: 1.0 s one by one through the threadpool, 0.2 s in place.
 * Returns how many pages it checked (0: nothing to walk, or a store that never held still).
 */
export async function checkDataTree(file: string, emptyIsNew = false): Promise<number> {
  if (!(await checkDataFile(file, emptyIsNew))) return 0;
  const handle = await fs.promises.open(file, 'r');
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const meta = await newestMeta(handle);
      if (!meta) throw damagedFile(file, 'not an LMDB file');
      const walk = new Walk(handle, meta);
      try {
        walk.tree('of free pages', meta.freeDb, false);
        walk.tree('of databases', meta.mainDb, true);
        for (const { name, db } of walk.named) walk.tree(name, db, false);
        walk.overflowHeaders();
        return walk.pages;
      } catch (err) {
        if (!(err instanceof Damage)) throw err;
        if ((await newestMeta(handle))?.txnid === meta.txnid) throw damagedFile(file, err.message);
      }
    }
    return 0;
  } finally {
    await handle.close();
  }
}
