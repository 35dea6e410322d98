// src/fs: POSIX filesystem semantics over the store, and the FUSE daemon that serves them.
// This file holds the semantics (paths, inodes, handles, write buffering) with no FUSE types,
// so it can be driven by the FUSE adapter (fuseOps.ts) and by tests alike. Every change it
// acknowledges is one store transaction.
import { FAST_ZSTD_LEVEL } from '../chunking/compress';
import type { ChunkSource } from '../store/chunkSource';
import { CachedSource } from '../store/cachedSource';
import {
  ExistsError,
  InvalidError,
  IsDirError,
  NotDirError,
  NotEmptyError,
  NotFoundError,
} from '../store/errors';
import {
  applyPlan,
  dropContent,
  encodeMissing,
  NeedEncodingError,
  type NewExtent,
  planBytes,
  planRewrite,
  readCommitted,
  type RewriteOptions,
  cloneExtents,
} from '../store/fileContent';
import { Overlay, OVERLAY_HEADROOM } from '../store/overlay';
import {
  type InodeRecord,
  type Ino,
  ROOT_INO,
  S_IFDIR,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  isDir,
  isReg,
  isSymlink,
} from '../store/records';
import type { Store } from '../store/store';
import { seekDataOrHole } from '../store/seekHole';
import { nameByteLength } from '../store/names';
import { E, ErrnoError } from './errno';
import { ACL_ACCESS, ACL_DEFAULT, type Acl, aclWithMode, decodeAcl, encodeAcl, inheritAcl, isAclName, isMinimal, modeFromAcl } from './posixAcl';
import { RwLock } from './rwLock';

/**
 * st_blksize: the I/O size that suits the mount. Every request is a round trip through the
 * daemon's event loop, and cp, tar and dd size their buffers from st_blksize (cp: at least
 * 128 KiB), so 1 MiB (the mount's max_write) makes a large copy an eighth of the requests.
 * stdio takes st_blksize only when below BUFSIZ, so FILE buffers are unchanged.
 */
export const PREFERRED_IO_SIZE = 1 << 20;
/** Uncommitted bytes one open file may hold before a write commits them (memory bound). */
export const COMMIT_THRESHOLD = 8 << 20;
const NAME_MAX = 255;
/**
 * The largest file (16 TiB, ext4's limit with 4 KiB blocks): beyond it truncate, write and
 * fallocate are EFBIG. A hole costs no scan: its maximal zero chunks are computed and stored as
 * one run record (docs/FORMAT.md, "Recipes"), so `truncate -s 16T` is one small commit; offsets
 * stay far below 2^53, where JS numbers stop being exact.
 */
export const MAX_FILE_SIZE = 16 * 2 ** 40;
const tooBig = (end: number) => new ErrnoError(E.EFBIG, `file would end at ${end}, past the largest file size (${MAX_FILE_SIZE})`);
/** File types mknod(2) makes besides regular files: FIFOs, sockets, character and block devices. */
const SPECIAL_TYPES = new Set([S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK]);

/** setxattr(2) flags and limits (linux/xattr.h, linux/limits.h). */
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;
const XATTR_NAMESPACES = ['user.', 'trusted.', 'security.'];

function checkXattrName(name: string): void {
  const bytes = nameByteLength(name);
  if (bytes === 0 || bytes > XATTR_NAME_MAX) throw new ErrnoError(E.ERANGE, `bad attribute name length: ${bytes}`);
  if (isAclName(name)) return;
  if (!XATTR_NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length)) {
    throw new ErrnoError(E.ENOTSUP, `attribute ${name} is not supported (only the user, trusted and security namespaces and POSIX ACLs)`);
  }
  // File capabilities would not apply (the mount is nosuid), and the FUSE binding answers the
  // kernel's check for them before every write itself, with "none" (native/fusell.c).
  if (name === 'security.capability') throw new ErrnoError(E.ENOTSUP, 'file capabilities are not supported');
}

/** renameat2(2) flags (linux/fs.h). */
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;
/** fallocate(2) modes (linux/falloc.h) the kernel passes on to a FUSE filesystem. */
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
const FALLOC_FL_ZERO_RANGE = 0x10;
/** lseek(2) whence values the kernel passes on to a FUSE filesystem. */
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

export interface Caller {
  uid: number;
  gid: number;
  /**
   * The caller's umask, for new nodes (default 0). The kernel leaves it to us (FUSE_DONT_MASK)
   * because a directory's default ACL replaces it.
   */
  umask?: number;
}

const S_ISGID = 0o2000;

export interface Attr {
  ino: Ino;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  blocks: number;
  blksize: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** Device number of a character or block device; 0 for everything else. */
  rdev: number;
}

/** The fields a setattr changes; absent means unchanged. */
export interface SetAttrs {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atimeMs?: number;
  mtimeMs?: number;
}

type PendingAttrs = Partial<Pick<InodeRecord, 'mode' | 'uid' | 'gid' | 'atimeMs' | 'mtimeMs' | 'ctimeMs'>>;

/** State of a file that is open: its uncommitted writes and the lock that orders them. */
interface FileState {
  ino: Ino;
  overlay: Overlay;
  size: number;
  committedSize: number;
  /** Attribute changes not yet committed (times of writes; chmod/chown/utimens while writing). */
  pending: PendingAttrs;
  /** Content differs from the store. */
  dirty: boolean;
  /** `pending` differs from the store. */
  metaDirty: boolean;
  opens: number;
  /** Handles open for writing: only then are attribute changes deferred. */
  writers: number;
  lock: RwLock;
  /** The committed content ends at a definite cut (see RewriteOptions.endIsCut). */
  endIsCut: boolean;
  /**
   * The newest batch of writes being committed in the background while new ones collect in
   * `overlay`; its `overlay` reads the bytes of every batch still in flight, and its `done`
   * settles once all of them have.
   */
  inflight?: Batch;
  /** The in-flight batches' own work, for back-pressure. */
  batches: Set<Promise<void>>;
  /** A background commit's error, reported by the next write, flush or close. */
  failure?: Error;
}

interface Prepared {
  plan: Awaited<ReturnType<typeof planRewrite>>;
  encoded: Awaited<ReturnType<typeof encodeMissing>>;
}

/** Writes being committed in the background (see commitInBackground). */
interface Batch {
  /** Copies the bytes of this batch, over those of any earlier batch still in flight. */
  overlay: { copyInto(offset: number, target: Buffer): void };
  /** Settles when this batch and every earlier one have been applied or have failed. */
  done: Promise<void>;
  /** This batch's own work (its failure handling included). */
  work: Promise<void>;
  /** Where the committed content will end once this batch is applied; undefined if it failed. */
  planned: Promise<{ end: number; endIsCut: boolean } | undefined>;
  /** Settles once this batch has been applied or has failed (before its bytes are put back). */
  settled: Promise<void>;
  failed?: Error;
  prev?: Batch;
  successor?: Batch;
}

/** A batch given up because an earlier one failed: its bytes go back, nothing to report. */
class AbandonedBatch extends Error {}

/**
 * Extents one copy_file_range clones, in one transaction on the event loop: 2048 (about 20 MiB
 * of file) take ~20 ms; `cp` asks again for the rest.
 */
const CLONE_EXTENTS = 2048;

/** Batches committing at once per file: one applying while the next is chunked and hashed. */
const MAX_BATCHES = 2;

const RETRY = Symbol('retry');

interface Handle {
  state: FileState;
  flags: number;
}

const O_ACCMODE = 3;
const O_RDONLY = 0;
const O_WRONLY = 1;

export interface FilesystemOptions {
  /** Called for events worth a line in the daemon's log. */
  log?: (line: string) => void;
  cacheBytes?: number;
  /**
   * Called after a file's content change is committed (with the file's lock held, except after
   * a background batch that only appended). Parts that derive data from file contents (the page
   * cache's object index) hook in here. `tail`, when given, is the committed content's last
   * bytes (its last chunk), valid during the call only: most commits write the end of the file,
   * and the hook can often decide from them without reading the file back.
   */
  onContentCommitted?: (ino: Ino, tail?: Buffer) => Promise<void>;
  /** Store new chunks raw and leave compression to the idle-time compactor (src/store/compactor.ts). */
  compressLater?: boolean;
  /**
   * With compressLater: how many raw chunks may wait for the compactor. Past that, a commit
   * compresses its new chunks itself, so a long copy that never leaves the compactor a quiet
   * moment does not grow the database file to the raw size of everything it wrote.
   */
  compressBacklogChunks?: number;
  /**
   * Extra cut points for a file about to be committed (e.g. the object boundaries of a slinked
   * file). `size` is the file's new size; `read` reads its new bytes. Must be deterministic.
   */
  forcedCuts?: (size: number, read: (offset: number, length: number) => Promise<Buffer>) => Promise<number[]>;
}

export class Filesystem {
  readonly source: CachedSource;
  private readonly states = new Map<Ino, FileState>();
  private readonly handles = new Map<number, Handle>();
  private nextFh = 1;
  private readonly log: (line: string) => void;
  private readonly onContentCommitted?: (ino: Ino, tail?: Buffer) => Promise<void>;
  private readonly compressLater: boolean;
  private readonly compressBacklogChunks: number;
  private backlog = 0;
  private backlogReadAt = -Infinity;
  /** When the last write arrived: the compactor waits for a quiet moment. */
  lastWriteMs = 0;

  constructor(readonly store: Store, source: ChunkSource, options: FilesystemOptions = {}) {
    this.source = source instanceof CachedSource ? source : new CachedSource(source, options.cacheBytes);
    this.log = options.log ?? (() => undefined);
    this.onContentCommitted = options.onContentCommitted;
    this.compressLater = options.compressLater ?? false;
    this.compressBacklogChunks = options.compressBacklogChunks ?? Infinity;
  }

  /**
   * Encode a commit's new chunks. With compressLater they go in raw while the compactor's queue
   * has room; past its bound the commit compresses them itself, at the fast level since the
   * copy waits for it. The queue's length costs ~10 us to read, a few percent of a small file's
   * commit, so it is read at most every 100 ms: a copy can overshoot the bound by what it writes
   * in that time.
   */
  private encodeNew(chunks: readonly NewExtent[]): ReturnType<typeof encodeMissing> {
    if (!this.compressLater) return encodeMissing(this.store, chunks);
    if (this.compressBacklogChunks !== Infinity) {
      const now = performance.now();
      if (now - this.backlogReadAt >= 100) {
        this.backlog = this.store.compressionBacklog();
        this.backlogReadAt = now;
      }
      if (this.backlog >= this.compressBacklogChunks) return encodeMissing(this.store, chunks, FAST_ZSTD_LEVEL);
    }
    return encodeMissing(this.store, chunks, 'later');
  }

  // ---- path resolution ----------------------------------------------------------------------

  private components(p: string): string[] {
    if (!p.startsWith('/')) throw new InvalidError(`not an absolute path: ${p}`);
    return p.split('/').filter((c) => c.length > 0);
  }

  private resolve(p: string): InodeRecord {
    let ino = ROOT_INO;
    for (const name of this.components(p)) {
      const dir = this.inode(ino);
      if (!isDir(dir)) throw new NotDirError(p);
      const child = this.store.lookup(ino, name);
      if (child === undefined) throw new NotFoundError(p);
      ino = child;
    }
    return this.inode(ino);
  }

  private resolveParent(p: string): { parent: InodeRecord; name: string } {
    const parts = this.components(p);
    const name = parts.pop();
    if (name === undefined) throw new InvalidError('the root has no parent');
    if (nameByteLength(name) > NAME_MAX) throw new ErrnoError(E.ENAMETOOLONG, `name too long: ${name}`);
    const parent = this.resolve('/' + parts.join('/'));
    if (!isDir(parent)) throw new NotDirError(p);
    return { parent, name };
  }

  private inode(ino: Ino): InodeRecord {
    const rec = this.store.getInode(ino);
    if (!rec) throw new NotFoundError(`inode ${ino}`);
    return rec;
  }

  // ---- attributes ---------------------------------------------------------------------------

  private attrOf(stored: InodeRecord): Attr {
    const rec = this.mergedRecord(stored, this.states.get(stored.ino));
    return {
      ino: rec.ino,
      mode: rec.mode,
      uid: rec.uid,
      gid: rec.gid,
      nlink: rec.nlink,
      size: rec.size,
      // Holes take no room: `du` shows it, and `cp`, `tar` and the like then ask for them (lseek).
      blocks: Math.ceil((isReg(rec) ? Math.max(0, rec.size - this.store.holeBytes(rec.ino)) : rec.size) / 512),
      blksize: PREFERRED_IO_SIZE,
      atimeMs: rec.atimeMs,
      mtimeMs: rec.mtimeMs,
      ctimeMs: rec.ctimeMs,
      rdev: rec.rdev ?? 0,
    };
  }

  async fgetattr(fh: number): Promise<Attr> {
    return this.attrOf(this.inode(this.handle(fh).state.ino));
  }

  /**
   * Change an inode's attributes. For a file open for writing (cp, tar, install set owner, mode
   * and times before they close) the change joins the file's pending state and is committed
   * with its content at the next flush: one transaction per file instead of four.
   */
  private async changeAttrs(ino: Ino, change: (rec: InodeRecord) => PendingAttrs): Promise<void> {
    const st = this.states.get(ino);
    if (st && st.writers > 0) {
      await this.quiescent(st, async () => {
        const cur = this.mergedRecord(this.inode(ino), st);
        Object.assign(st.pending, change(cur), { ctimeMs: Date.now() });
        st.metaDirty = true;
      });
      return;
    }
    await this.store.txn(() => {
      const rec = this.inode(ino);
      this.store.putInode({ ...rec, ...change(rec), ctimeMs: Date.now() });
    });
  }

  /** An inode record as users see it: the stored one with an open file's pending changes. */
  private mergedRecord(rec: InodeRecord, st: FileState | undefined): InodeRecord {
    return st ? { ...rec, ...st.pending, size: st.size } : rec;
  }

  // ---- namespace ----------------------------------------------------------------------------

  private newInode(ino: Ino, mode: number, caller: Caller, extra: Partial<InodeRecord> = {}): InodeRecord {
    const now = Date.now();
    return { ino, mode, uid: caller.uid, gid: caller.gid, nlink: 1, size: 0, atimeMs: now, mtimeMs: now, ctimeMs: now, target: '', ...extra };
  }

  private touchDir(dir: InodeRecord, nlinkDelta = 0): void {
    const now = Date.now();
    const cur = this.inode(dir.ino);
    this.store.putInode({ ...cur, nlink: cur.nlink + nlinkDelta, mtimeMs: now, ctimeMs: now });
  }

  /** A directory inode that may receive `name` (checks that need no transaction). */
  private dirFor(parent: Ino, name: string): InodeRecord {
    if (name.length === 0 || name === '.' || name === '..' || name.includes('/')) throw new InvalidError(`bad name: ${name}`);
    if (nameByteLength(name) > NAME_MAX) throw new ErrnoError(E.ENAMETOOLONG, `name too long: ${name}`);
    const dir = this.inode(parent);
    if (!isDir(dir)) throw new NotDirError(`inode ${parent}`);
    return dir;
  }

  /**
   * Create a name for a new inode; the checks run inside the transaction. `make` gives the
   * record with the mode the caller asked for; what the directory passes on is applied here.
   */
  private async createNode(parent: Ino, name: string, caller: Caller, make: (ino: Ino) => InodeRecord): Promise<InodeRecord> {
    this.dirFor(parent, name);
    return this.store.txn(() => {
      const dir = this.store.getInode(parent);
      if (!dir) throw new NotFoundError(name);
      if (this.store.lookup(dir.ino, name) !== undefined) throw new ExistsError(name);
      const rec = this.inherit(dir, make(this.store.allocIno()), caller.umask ?? 0);
      this.store.putInode(rec);
      this.store.addEntry(dir.ino, name, rec.ino);
      this.touchDir(dir, isDir(rec) ? 1 : 0);
      return rec;
    });
  }

  /**
   * What a new node takes from its directory (inside the creating transaction): the group of a
   * set-group-ID directory (and, for a directory, the bit itself), and either the directory's
   * default ACL (a directory inherits it as its own default; the mode is limited by it and the
   * access ACL stored unless the mode says it all) or, without one, the umask.
   */
  private inherit(dir: InodeRecord, rec: InodeRecord, umask: number): InodeRecord {
    let { mode, gid } = rec;
    if (dir.mode & S_ISGID) {
      gid = dir.gid;
      if (isDir(rec)) mode |= S_ISGID;
    }
    if (isSymlink(rec)) return { ...rec, gid };
    // An empty default ACL is never stored (setAcl removes it).
    const stored = this.store.getXattr(dir.ino, ACL_DEFAULT);
    if (!stored) return { ...rec, gid, mode: mode & ~(umask & 0o777) };
    const inherited = inheritAcl(decodeAcl(stored), mode);
    if (inherited.access) this.store.setXattr(rec.ino, ACL_ACCESS, encodeAcl(inherited.access));
    if (isDir(rec)) this.store.setXattr(rec.ino, ACL_DEFAULT, stored);
    return { ...rec, gid, mode: inherited.mode };
  }

  /** The attributes of `name` in directory `parent` (ENOENT if absent). */
  async lookup(parent: Ino, name: string): Promise<Attr> {
    const dir = this.inode(parent);
    if (!isDir(dir)) throw new NotDirError(`inode ${parent}`);
    // The kernel passes on names up to its own limit (1024 bytes): one longer than any name here
    // can hold is ENAMETOOLONG, as on ext4, not a missing name.
    if (nameByteLength(name) > NAME_MAX) throw new ErrnoError(E.ENAMETOOLONG, `name too long: ${name}`);
    const ino = this.store.lookup(parent, name);
    if (ino === undefined) throw new NotFoundError(name);
    return this.attrOf(this.inode(ino));
  }

  async getattrIno(ino: Ino): Promise<Attr> {
    return this.attrOf(this.inode(ino));
  }

  async readlinkIno(ino: Ino): Promise<string> {
    const rec = this.inode(ino);
    if (!isSymlink(rec)) throw new InvalidError(`not a symlink: inode ${ino}`);
    return rec.target;
  }

  /** Entries of a directory with their file types, "." and ".." first. */
  async readdirIno(ino: Ino): Promise<Array<{ name: string; ino: Ino; mode: number }>> {
    const dir = this.inode(ino);
    if (!isDir(dir)) throw new NotDirError(`inode ${ino}`);
    const out = [
      { name: '.', ino, mode: S_IFDIR },
      { name: '..', ino: ino === ROOT_INO ? ino : this.store.findParent(ino) ?? ino, mode: S_IFDIR },
    ];
    for (const e of this.store.entries(ino)) {
      const rec = this.store.getInode(e.ino);
      if (rec) out.push({ name: e.name, ino: e.ino, mode: rec.mode });
    }
    return out;
  }

  /** setattr: any of mode, owner, size, times, as one change. */
  async setattr(ino: Ino, set: SetAttrs, fh?: number): Promise<Attr> {
    if (set.size !== undefined) {
      if (fh !== undefined && this.handles.has(fh)) await this.ftruncate(fh, set.size);
      else await this.truncateIno(ino, set.size);
    }
    if (set.mode !== undefined || set.uid !== undefined || set.gid !== undefined || set.atimeMs !== undefined || set.mtimeMs !== undefined) {
      await this.changeAttrs(ino, (rec) => {
        const out: PendingAttrs = {};
        if (set.mode !== undefined) out.mode = (rec.mode & S_IFMT) | (set.mode & 0o7777);
        if (set.uid !== undefined || set.gid !== undefined) {
          const uid = set.uid ?? rec.uid;
          const gid = set.gid ?? rec.gid;
          // POSIX: a chown of a regular file clears set-user-ID and set-group-ID.
          if (isReg(rec) && (uid !== rec.uid || gid !== rec.gid)) out.mode = (out.mode ?? rec.mode) & ~0o6000;
          out.uid = uid;
          out.gid = gid;
        }
        if (set.atimeMs !== undefined) out.atimeMs = set.atimeMs;
        if (set.mtimeMs !== undefined) out.mtimeMs = set.mtimeMs;
        return out;
      });
    }
    return this.getattrIno(ino);
  }

  async mkdirAt(parent: Ino, name: string, mode: number, caller: Caller): Promise<Attr> {
    return this.attrOf(await this.createNode(parent, name, caller, (ino) => this.newInode(ino, S_IFDIR | (mode & 0o7777), caller, { nlink: 2 })));
  }

  async symlinkAt(parent: Ino, name: string, target: string, caller: Caller): Promise<Attr> {
    return this.attrOf(
      await this.createNode(parent, name, caller, (ino) => this.newInode(ino, S_IFLNK | 0o777, caller, { target, size: nameByteLength(target) })),
    );
  }

  /**
   * A regular file or a special file: a FIFO, a Unix socket's name (bind(2) makes one), or a
   * character or block device node (`rdev`: the kernel checks CAP_MKNOD before it asks). The
   * kernel serves FIFOs, sockets and devices itself; the store keeps only their inode.
   */
  async mknodAt(parent: Ino, name: string, mode: number, caller: Caller, rdev = 0): Promise<Attr> {
    const type = mode & S_IFMT || S_IFREG;
    if (!SPECIAL_TYPES.has(type) && type !== S_IFREG) throw new InvalidError(`mknod: file type 0o${type.toString(8)} is not one mknod(2) creates`);
    const extra = type === S_IFCHR || type === S_IFBLK ? { rdev } : {};
    return this.attrOf(await this.createNode(parent, name, caller, (ino) => this.newInode(ino, type | (mode & 0o7777), caller, extra)));
  }

  async rmdirAt(parent: Ino, name: string): Promise<void> {
    const dir = this.dirFor(parent, name);
    await this.store.txn(() => {
      const ino = this.store.lookup(dir.ino, name);
      if (ino === undefined) throw new NotFoundError(name);
      const rec = this.inode(ino);
      if (!isDir(rec)) throw new NotDirError(name);
      if (this.store.hasEntries(ino)) throw new NotEmptyError(name);
      this.store.removeEntry(dir.ino, name);
      this.store.removeInode(ino);
      this.touchDir(dir, -1);
    });
  }

  async unlinkAt(parent: Ino, name: string): Promise<void> {
    const dir = this.dirFor(parent, name);
    await this.store.txn(() => {
      const ino = this.store.lookup(dir.ino, name);
      if (ino === undefined) throw new NotFoundError(name);
      const rec = this.inode(ino);
      if (isDir(rec)) throw new IsDirError(name);
      this.store.removeEntry(dir.ino, name);
      this.dropLink(rec);
      this.touchDir(dir);
    });
  }

  /** One name fewer for `rec` (inside txn); the inode and its content go with the last name. */
  private dropLink(rec: InodeRecord): void {
    const cur = this.inode(rec.ino);
    if (cur.nlink > 1) {
      this.store.putInode({ ...cur, nlink: cur.nlink - 1, ctimeMs: Date.now() });
      return;
    }
    if (this.states.has(rec.ino)) {
      // Still open: keep the data until the last close (POSIX); a crash leaves an orphan that
      // the next mount reclaims.
      this.store.putInode({ ...cur, nlink: 0, ctimeMs: Date.now() });
      this.store.markOrphan(rec.ino);
      return;
    }
    dropContent(this.store, rec.ino);
    this.store.removeInode(rec.ino);
  }

  async linkAt(ino: Ino, parent: Ino, name: string): Promise<Attr> {
    const src = this.inode(ino);
    if (isDir(src)) throw new ErrnoError(E.EPERM, `hard link to a directory`);
    const dir = this.dirFor(parent, name);
    await this.store.txn(() => {
      if (this.store.lookup(dir.ino, name) !== undefined) throw new ExistsError(name);
      const rec = this.inode(src.ino);
      if (rec.nlink === 0) throw new NotFoundError(name);
      if (rec.nlink >= 0xffff) throw new ErrnoError(E.EMLINK, 'too many links');
      this.store.putInode({ ...rec, nlink: rec.nlink + 1, ctimeMs: Date.now() });
      this.store.addEntry(dir.ino, name, rec.ino);
      this.touchDir(dir);
    });
    return this.getattrIno(ino);
  }

  /** rename(2), and renameat2(2) with RENAME_NOREPLACE or RENAME_EXCHANGE. */
  async renameAt(parent: Ino, name: string, newParent: Ino, newName: string, flags = 0): Promise<void> {
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || flags === (RENAME_NOREPLACE | RENAME_EXCHANGE)) {
      throw new InvalidError('unsupported rename flags');
    }
    const a = this.dirFor(parent, name);
    const b = this.dirFor(newParent, newName);
    await this.store.txn(() => {
      const srcIno = this.store.lookup(a.ino, name);
      if (srcIno === undefined) throw new NotFoundError(name);
      const src = this.inode(srcIno);
      const dstIno = this.store.lookup(b.ino, newName);
      if (flags & RENAME_EXCHANGE) {
        if (dstIno === undefined) throw new NotFoundError(newName);
        this.exchange(a, name, src, b, newName, this.inode(dstIno));
        return;
      }
      if (dstIno !== undefined && flags & RENAME_NOREPLACE) throw new ExistsError(newName);
      if (dstIno === srcIno) return; // same file: POSIX says do nothing
      if (isDir(src) && this.isAncestor(srcIno, b.ino)) throw new InvalidError(`cannot move ${name} into itself`);
      if (dstIno !== undefined) {
        const dst = this.inode(dstIno);
        if (isDir(dst)) {
          if (!isDir(src)) throw new IsDirError(newName);
          if (this.store.hasEntries(dstIno)) throw new NotEmptyError(newName);
          this.store.removeEntry(b.ino, newName);
          this.store.removeInode(dstIno);
          this.touchDir(b, -1);
        } else {
          if (isDir(src)) throw new NotDirError(newName);
          this.store.removeEntry(b.ino, newName);
          this.dropLink(dst);
        }
      }
      this.store.removeEntry(a.ino, name);
      this.store.addEntry(b.ino, newName, srcIno);
      const moved = isDir(src) && a.ino !== b.ino ? 1 : 0;
      this.touchDir(a, -moved);
      this.touchDir(b, moved);
      this.store.putInode({ ...this.inode(srcIno), ctimeMs: Date.now() });
    });
  }

  /** RENAME_EXCHANGE (inside txn): `x` named (a, name) and `y` named (b, newName) trade names. */
  private exchange(a: InodeRecord, name: string, x: InodeRecord, b: InodeRecord, newName: string, y: InodeRecord): void {
    if (x.ino === y.ino) return; // two names of one file: nothing changes
    // Each directory moves into the other's place: neither may end up inside itself.
    if (isDir(x) && this.isAncestor(x.ino, b.ino)) throw new InvalidError(`cannot move ${name} into itself`);
    if (isDir(y) && this.isAncestor(y.ino, a.ino)) throw new InvalidError(`cannot move ${newName} into itself`);
    this.store.removeEntry(a.ino, name);
    this.store.removeEntry(b.ino, newName);
    this.store.addEntry(a.ino, name, y.ino);
    this.store.addEntry(b.ino, newName, x.ino);
    // A directory that changes parent takes one link from the old parent to the new one.
    const shift = a.ino === b.ino ? 0 : (isDir(x) ? 1 : 0) - (isDir(y) ? 1 : 0);
    this.touchDir(a, -shift);
    if (b.ino !== a.ino) this.touchDir(b, shift);
    const now = Date.now();
    this.store.putInode({ ...this.inode(x.ino), ctimeMs: now });
    this.store.putInode({ ...this.inode(y.ino), ctimeMs: now });
  }

  // ---- extended attributes ------------------------------------------------------------------

  /**
   * Set an extended attribute of the user, trusted or security namespace, or a POSIX ACL (the
   * kernel checks who may, and enforces ACLs). File capabilities are refused as unsupported:
   * this nosuid mount would not apply them, and `cp -a` then leaves them out instead of storing
   * dead ones.
   */
  async setxattrIno(ino: Ino, name: string, value: Uint8Array, flags: number): Promise<void> {
    checkXattrName(name);
    if (value.length > XATTR_SIZE_MAX) throw new ErrnoError(E.E2BIG, `value of ${name} too large`);
    if (isAclName(name)) return this.setAcl(ino, name, decodeAcl(value), flags);
    await this.store.txn(() => {
      const rec = this.inode(ino);
      this.checkXattrFlags(ino, name, flags);
      this.store.setXattr(ino, name, value);
      this.store.putInode({ ...rec, ctimeMs: Date.now() });
    }, value.length + 64);
  }

  /** setxattr(2)'s XATTR_CREATE (the name must be new) and XATTR_REPLACE (it must exist). */
  private checkXattrFlags(ino: Ino, name: string, flags: number): void {
    const exists = this.store.getXattr(ino, name) !== undefined;
    if (flags & XATTR_CREATE && exists) throw new ExistsError(name);
    if (flags & XATTR_REPLACE && !exists) throw new ErrnoError(E.ENODATA, `no attribute ${name}`);
  }

  async getxattrIno(ino: Ino, name: string): Promise<Buffer> {
    const rec = this.inode(ino);
    const v = this.store.getXattr(ino, name);
    if (v === undefined) throw new ErrnoError(E.ENODATA, `no attribute ${name}`);
    if (name !== ACL_ACCESS) return v;
    // The mode is the authority for the entries it expresses (a chmod changes only the mode).
    return encodeAcl(aclWithMode(decodeAcl(v), this.mergedRecord(rec, this.states.get(ino)).mode));
  }

  /**
   * Store an ACL. An access ACL sets the mode's permission bits (owner, group class, other) and
   * is kept only if it says more than they do; an empty one is a removal. Files open for
   * writing may hold a pending mode, so the change waits for their commits and updates it.
   */
  private async setAcl(ino: Ino, name: string, acl: Acl, flags: number): Promise<void> {
    const rec = this.inode(ino);
    if (isSymlink(rec)) throw new ErrnoError(E.ENOTSUP, 'symbolic links have no ACLs');
    if (name === ACL_DEFAULT && !isDir(rec)) throw new ErrnoError(acl.length ? E.EACCES : E.ENODATA, 'only directories have a default ACL');
    if (name === ACL_ACCESS && acl.length && isMinimal(acl) && !(flags & XATTR_REPLACE) && this.store.getXattr(ino, name) === undefined) {
      // What `cp -a` and `tar` set on every file they copy: no more than a chmod, and as cheap
      // (a file open for writing takes it with its next commit). The kernel holds the inode's
      // lock, so no other ACL can be stored meanwhile.
      return this.changeAttrs(ino, (cur) => ({ mode: modeFromAcl(acl, cur.mode) }));
    }
    const change = () =>
      this.store.txn(() => {
        const cur = this.inode(ino);
        this.checkXattrFlags(ino, name, flags);
        let mode = cur.mode;
        if (name === ACL_ACCESS && acl.length) {
          const st = this.states.get(ino);
          mode = modeFromAcl(acl, this.mergedRecord(cur, st).mode);
          if (st?.pending.mode !== undefined) st.pending.mode = mode;
        }
        if (!acl.length || (name === ACL_ACCESS && isMinimal(acl))) this.store.removeXattr(ino, name);
        else this.store.setXattr(ino, name, encodeAcl(acl));
        this.store.putInode({ ...cur, mode, ctimeMs: Date.now() });
      });
    const st = this.states.get(ino);
    await (st ? this.quiescent(st, change) : change());
  }

  async listxattrIno(ino: Ino): Promise<string[]> {
    this.inode(ino);
    return this.store.xattrNames(ino);
  }

  async removexattrIno(ino: Ino, name: string): Promise<void> {
    await this.store.txn(() => {
      const rec = this.inode(ino);
      if (!this.store.removeXattr(ino, name)) throw new ErrnoError(E.ENODATA, `no attribute ${name}`);
      this.store.putInode({ ...rec, ctimeMs: Date.now() });
    });
  }

  // ---- the same by path (tests, internal writers such as the page cache) ----------------------

  async getattr(p: string): Promise<Attr> {
    return this.attrOf(this.resolve(p));
  }
  async readdir(p: string): Promise<string[]> {
    return (await this.readdirIno(this.resolve(p).ino)).map((e) => e.name);
  }
  async readlink(p: string): Promise<string> {
    return this.readlinkIno(this.resolve(p).ino);
  }
  async chmod(p: string, mode: number): Promise<void> {
    await this.setattr(this.resolve(p).ino, { mode });
  }
  async chown(p: string, uid: number, gid: number): Promise<void> {
    const keep = (v: number) => (v === 0xffffffff || v === -1 ? undefined : v);
    await this.setattr(this.resolve(p).ino, { uid: keep(uid), gid: keep(gid) });
  }
  async utimens(p: string, atimeMs: number, mtimeMs: number): Promise<void> {
    await this.setattr(this.resolve(p).ino, { atimeMs, mtimeMs });
  }
  async mkdir(p: string, mode: number, caller: Caller): Promise<void> {
    const { parent, name } = this.resolveParent(p);
    await this.mkdirAt(parent.ino, name, mode, caller);
  }
  async symlink(target: string, p: string, caller: Caller): Promise<void> {
    const { parent, name } = this.resolveParent(p);
    await this.symlinkAt(parent.ino, name, target, caller);
  }
  async mknod(p: string, mode: number, caller: Caller, rdev = 0): Promise<void> {
    const { parent, name } = this.resolveParent(p);
    await this.mknodAt(parent.ino, name, mode, caller, rdev);
  }
  async rmdir(p: string): Promise<void> {
    const { parent, name } = this.resolveParent(p);
    await this.rmdirAt(parent.ino, name);
  }
  async unlink(p: string): Promise<void> {
    const { parent, name } = this.resolveParent(p);
    await this.unlinkAt(parent.ino, name);
  }
  async link(existing: string, p: string): Promise<void> {
    const src = this.resolve(existing);
    const { parent, name } = this.resolveParent(p);
    await this.linkAt(src.ino, parent.ino, name);
  }
  async rename(from: string, to: string): Promise<void> {
    const a = this.resolveParent(from);
    const b = this.resolveParent(to);
    await this.renameAt(a.parent.ino, a.name, b.parent.ino, b.name);
  }
  async create(p: string, mode: number, caller: Caller, flags = 2): Promise<number> {
    const { parent, name } = this.resolveParent(p);
    return (await this.createAt(parent.ino, name, mode, flags, caller)).fh;
  }
  async open(p: string, flags: number): Promise<number> {
    return this.openIno(this.resolve(p).ino, flags);
  }
  async truncate(p: string, size: number): Promise<void> {
    await this.truncateIno(this.resolve(p).ino, size);
  }
  async access(p: string): Promise<void> {
    this.resolve(p);
  }

  /** True when directory `ancestor` is `ino` or contains it. */
  private isAncestor(ancestor: Ino, ino: Ino): boolean {
    // Directories have exactly one name, so walking up from `ino` is a chain.
    let cur = ino;
    for (let depth = 0; depth < 4096; depth++) {
      if (cur === ancestor) return true;
      if (cur === ROOT_INO) return false;
      const up = this.store.findParent(cur);
      if (up === undefined) return false;
      cur = up;
    }
    return false;
  }

  // ---- files --------------------------------------------------------------------------------

  private handle(fh: number): Handle {
    const h = this.handles.get(fh);
    if (!h) throw new ErrnoError(E.EBADF, `bad file handle ${fh}`);
    return h;
  }

  private attach(rec: InodeRecord, flags: number): number {
    let st = this.states.get(rec.ino);
    if (!st) {
      st = {
        ino: rec.ino,
        overlay: new Overlay(),
        size: rec.size,
        committedSize: rec.size,
        pending: {},
        dirty: false,
        metaDirty: false,
        opens: 0,
        writers: 0,
        lock: new RwLock(),
        endIsCut: false,
        batches: new Set(),
      };
      this.states.set(rec.ino, st);
    }
    st.opens++;
    if ((flags & O_ACCMODE) !== O_RDONLY) st.writers++;
    const fh = this.nextFh++;
    this.handles.set(fh, { state: st, flags });
    return fh;
  }

  async createAt(parent: Ino, name: string, mode: number, flags: number, caller: Caller): Promise<{ attr: Attr; fh: number }> {
    const rec = await this.createNode(parent, name, caller, (ino) => this.newInode(ino, S_IFREG | (mode & 0o7777), caller));
    const fh = this.attach(rec, flags);
    return { attr: this.attrOf(rec), fh };
  }

  async openIno(ino: Ino, flags: number): Promise<number> {
    const rec = this.inode(ino);
    if (isDir(rec)) throw new IsDirError(`inode ${ino}`);
    if (!isReg(rec)) throw new InvalidError(`not a regular file: inode ${ino}`);
    return this.attach(rec, flags);
  }

  async read(fh: number, target: Buffer, length: number, position: number): Promise<number> {
    const st = this.handle(fh).state;
    return st.lock.shared(async () => {
      if (position >= st.size) return 0;
      const n = Math.min(length, st.size - position);
      const out = target.subarray(0, n);
      const committedEnd = Math.min(position + n, st.committedSize);
      if (committedEnd > position) {
        await readCommitted(this.store, this.source, st.ino, position, out.subarray(0, committedEnd - position));
      }
      if (committedEnd < position + n) out.fill(0, Math.max(0, committedEnd - position));
      st.inflight?.overlay.copyInto(position, out);
      st.overlay.copyInto(position, out);
      return n;
    });
  }

  async write(fh: number, data: Buffer, length: number, position: number): Promise<number> {
    const h = this.handle(fh);
    if ((h.flags & O_ACCMODE) === O_RDONLY) throw new ErrnoError(E.EBADF, 'file not open for writing');
    // Up to the largest file size, as write(2) does at a filesystem's limit: a short write, then EFBIG.
    if (position + length > MAX_FILE_SIZE) {
      if (position >= MAX_FILE_SIZE) throw tooBig(position + length);
      length = MAX_FILE_SIZE - position;
    }
    const st = h.state;
    // Back-pressure: at most MAX_BATCHES in flight and one filling, so memory stays bounded.
    while (st.batches.size >= MAX_BATCHES && st.overlay.bytes >= COMMIT_THRESHOLD) await Promise.race(st.batches);
    this.lastWriteMs = Date.now();
    return st.lock.exclusive(async () => {
      this.takeFailure(st);
      st.overlay.write(position, data.subarray(0, length));
      st.size = Math.max(st.size, position + length);
      this.touchContent(st);
      if (st.overlay.bytes >= COMMIT_THRESHOLD && st.batches.size < MAX_BATCHES) this.commitInBackground(st);
      return length;
    });
  }

  /**
   * Commit what has collected so far while new writes go on: chunking, hashing and the
   * transaction of one batch overlap the arrival of the next. A batch commits only up to its last
   * definite cut (keepTail): the bytes after it move under the next batch's, which then starts
   * at that cut. So when the next batch only appends, it needs nothing of this one but where it
   * ends, and is chunked and hashed while this one's transaction commits; batches are applied
   * in order. The lock is taken only to swap the recipe.
   */
  private commitInBackground(st: FileState): void {
    const own = st.overlay;
    const size = st.size;
    const pending = { ...st.pending };
    const prev = st.inflight;
    // A writer that filled one batch is likely to fill the next: one slab for all of it.
    const next = new Overlay({ firstSlab: COMMIT_THRESHOLD + OVERLAY_HEADROOM + (1 << 20) });
    st.overlay = next;
    let setPlanned!: (p: { end: number; endIsCut: boolean } | undefined) => void;
    let setSettled!: () => void;
    const batch: Batch = {
      overlay: {
        copyInto: (offset, target) => {
          batch.prev?.overlay.copyInto(offset, target);
          own.copyInto(offset, target);
        },
      },
      planned: new Promise((resolve) => (setPlanned = resolve)),
      settled: new Promise((resolve) => (setSettled = resolve)),
      prev,
      done: Promise.resolve(),
      work: Promise.resolve(),
    };
    if (prev) prev.successor = batch;
    batch.work = (async () => {
      try {
        let from = { end: st.committedSize, endIsCut: st.endIsCut };
        if (prev) {
          const p = await prev.planned;
          if (!p) throw new AbandonedBatch();
          from = p;
          // Anything but an append needs the store as the earlier batch leaves it.
          const appendOnly = p.endIsCut && own.ranges().every(([a]) => a >= p.end);
          if (!appendOnly) await this.afterPrevious(batch);
        }
        const prepared = await this.prepare(st, own, from.end, size, { endIsCut: from.endIsCut, keepTail: true });
        const { plan } = prepared;
        // The undecided tail goes under the bytes written since: the next batch starts with it.
        if (plan.newSize < size) next.underlay(plan.newSize, size, own);
        setPlanned({ end: plan.newSize, endIsCut: plan.endIsCut });
        await this.afterPrevious(batch);
        // A plan that only adds extents changes nothing a read in progress depends on (every
        // extent and chunk it found stays), and writes touch only the newer overlay: the file's
        // writes go on while the transaction commits. A plan that replaces extents could free a
        // chunk under a read, so it excludes them.
        if (plan.removed.length === 0) await this.apply(st, prepared, plan.newSize, pending);
        else await st.lock.exclusive(() => this.apply(st, prepared, plan.newSize, pending));
        setSettled();
      } catch (err) {
        batch.failed = err as Error;
        setPlanned(undefined);
        setSettled();
        if (!(err instanceof AbandonedBatch)) this.log(`background commit of inode ${st.ino} failed: ${(err as Error).message}`);
        // Keep the bytes, under the newer writes, for reads and for the next flush to retry: a
        // later batch (given up because of this one) puts its bytes back first.
        await batch.successor?.work;
        await st.lock.exclusive(async () => {
          st.overlay = Overlay.layered(own, st.overlay);
          if (!(err instanceof AbandonedBatch)) st.failure = err as Error;
        });
      } finally {
        st.batches.delete(batch.work);
      }
    })();
    st.batches.add(batch.work);
    batch.done = Promise.all([batch.work, prev?.done]).then(() => {
      if (st.inflight === batch) st.inflight = undefined;
    });
    st.inflight = batch;
  }

  /** Wait until the batch before `batch` is applied; throws if it failed. */
  private async afterPrevious(batch: Batch): Promise<void> {
    const prev = batch.prev;
    if (!prev) return;
    await prev.settled;
    if (prev.failed) throw new AbandonedBatch();
    batch.prev = undefined; // its bytes are committed or under ours now
  }

  private takeFailure(st: FileState): void {
    const err = st.failure;
    if (!err) return;
    st.failure = undefined;
    throw err;
  }

  /**
   * Run `fn` holding the file's lock with no background commit in flight (flush, truncate,
   * close: they need the whole file in one state).
   */
  private async quiescent<T>(st: FileState, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      while (st.inflight) await st.inflight.done;
      const r = await st.lock.exclusive(async () => (st.inflight ? RETRY : fn()));
      if (r !== RETRY) return r as T;
    }
  }

  async truncateIno(ino: Ino, size: number): Promise<void> {
    const rec = this.inode(ino);
    if (isDir(rec)) throw new IsDirError(`inode ${ino}`);
    if (!isReg(rec)) throw new InvalidError(`not a regular file: inode ${ino}`);
    const fh = this.attach(rec, 2);
    try {
      await this.ftruncate(fh, size);
    } finally {
      await this.release(fh);
    }
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    if (size < 0 || !Number.isSafeInteger(size)) throw new InvalidError('bad size');
    if (size > MAX_FILE_SIZE) throw tooBig(size);
    const st = this.handle(fh).state;
    await this.quiescent(st, async () => {
      st.overlay.truncate(size);
      st.size = size;
      this.touchContent(st);
      await this.commit(st);
    });
  }

  /**
   * fallocate(2). The store reserves nothing ahead (chunks are content-addressed, and a run of
   * zeros is one stored chunk however long it is), so allocating only extends the size unless
   * KEEP_SIZE, and punching a hole or zeroing a range commits the file's writes, then re-chunks
   * with the range known to be zeros: its zeros are neither buffered, read nor hashed.
   */
  async fallocate(fh: number, mode: number, offset: number, length: number): Promise<void> {
    const h = this.handle(fh);
    if ((h.flags & O_ACCMODE) === O_RDONLY) throw new ErrnoError(E.EBADF, 'file not open for writing');
    if (offset < 0 || length <= 0 || !Number.isSafeInteger(offset + length)) throw new InvalidError('bad range');
    if (offset + length > MAX_FILE_SIZE) throw tooBig(offset + length);
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
      throw new ErrnoError(E.ENOTSUP, `fallocate mode 0x${mode.toString(16)} is not supported`);
    }
    if (mode & FALLOC_FL_PUNCH_HOLE && !(mode & FALLOC_FL_KEEP_SIZE)) throw new ErrnoError(E.ENOTSUP, 'a hole is punched with KEEP_SIZE');
    const st = h.state;
    const end = offset + length;
    if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
      // Past the end of the file there is nothing to zero: it reads as zeros if it grows.
      this.lastWriteMs = Date.now();
      await this.quiescent(st, async () => {
        this.takeFailure(st);
        const zeroEnd = Math.min(end, st.size);
        if (zeroEnd <= offset) return;
        await this.commit(st);
        this.touchContent(st);
        const prepared = await this.prepare(st, st.overlay, st.committedSize, st.size, { endIsCut: st.endIsCut, zeros: [[offset, zeroEnd]] });
        await this.apply(st, prepared, st.size, st.pending);
        st.pending = {};
        st.dirty = false;
        st.metaDirty = false;
      });
    }
    if (!(mode & FALLOC_FL_KEEP_SIZE) && end > st.size) await this.ftruncate(fh, end);
  }

  /**
   * lseek(2)'s SEEK_DATA and SEEK_HOLE (the kernel answers the other kinds itself). Writes not yet
   * committed are committed first, so the answer is about every byte written so far; holes are
   * records of the maximal zero chunk (src/store/seekHole.ts).
   */
  async lseekIno(ino: Ino, offset: number, whence: number): Promise<number> {
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new InvalidError(`lseek: whence ${whence} is not SEEK_DATA or SEEK_HOLE`);
    const find = (): number => {
      const rec = this.inode(ino);
      if (!isReg(rec)) throw new InvalidError(`not a regular file: inode ${ino}`);
      const found = offset >= 0 && offset < rec.size ? seekDataOrHole(this.store, ino, rec.size, offset, whence === SEEK_HOLE) : undefined;
      if (found === undefined) throw new ErrnoError(E.ENXIO, `lseek: no ${whence === SEEK_HOLE ? 'hole' : 'data'} at or after ${offset}`);
      return found;
    };
    const st = this.states.get(ino);
    if (!st) return find();
    // The failure of a background commit stays for the writer to hear (at its write, flush or close).
    return this.quiescent(st, async () => {
      await this.commit(st);
      return find();
    });
  }

  /**
   * copy_file_range(2) inside the mount as a clone: the destination gets the source's extents
   * (its chunks one reference more each) and no byte is read, hashed or written. That needs the
   * copied range to start at the same offset in both files, where the destination ends: at 0
   * in an empty file, or after the chunks this copy cloned so far (what `cp` asks; see
   * cloneExtents), and the source's writes to be committed. Anything else is EOPNOTSUPP, and
   * the kernel then copies that range itself through read and write.
   */
  async copyFileRange(fhIn: number, offIn: number, fhOut: number, offOut: number, length: number): Promise<number> {
    const hin = this.handles.get(fhIn);
    const hout = this.handles.get(fhOut);
    const unsupported = (why: string) => new ErrnoError(E.ENOTSUP, `copy_file_range: ${why}`);
    // Handles the daemon answered in C (shared objects) are not in the table: the kernel reads them.
    if (!hin || !hout) throw unsupported('a handle this filesystem did not open');
    if ((hin.flags & O_ACCMODE) === O_WRONLY || (hout.flags & O_ACCMODE) === O_RDONLY) throw new ErrnoError(E.EBADF, 'copy_file_range: wrong access mode');
    const src = hin.state;
    const dst = hout.state;
    if (src === dst) throw unsupported('a copy within one file');
    if (length <= 0 || offIn !== offOut) throw unsupported('ranges at different offsets');
    return this.quiescent(dst, async () => {
      this.takeFailure(dst);
      if (src.dirty || src.inflight || offIn >= src.committedSize) throw unsupported('the source has uncommitted writes or ends first');
      if (dst.dirty || dst.size !== offOut || dst.committedSize !== offOut) throw unsupported('the destination does not end where the copy starts');
      const now = Date.now();
      const end = await this.store.txn(() => {
        const to = cloneExtents(this.store, src.ino, dst.ino, offIn, offIn + length, CLONE_EXTENTS);
        if (to > offIn) this.store.putInode({ ...this.inode(dst.ino), size: to, mtimeMs: now, ctimeMs: now });
        return to;
      });
      if (end === offIn) throw unsupported('no whole chunk of the source fits the range');
      dst.size = dst.committedSize = end;
      dst.endIsCut = false;
      // Pending times from before the copy must not roll its mtime back at the next flush.
      Object.assign(dst.pending, { mtimeMs: now, ctimeMs: now });
      await this.onContentCommitted?.(dst.ino);
      return end - offIn;
    });
  }

  private touchContent(st: FileState): void {
    const now = Date.now();
    st.pending.mtimeMs = now;
    st.pending.ctimeMs = now;
    st.dirty = true;
    st.metaDirty = true;
  }

  async flush(fh: number): Promise<void> {
    const st = this.handle(fh).state;
    await this.quiescent(st, async () => {
      this.takeFailure(st);
      await this.commit(st);
    });
  }

  async fsync(fh: number): Promise<void> {
    await this.flush(fh);
    await this.store.flushed();
  }

  async release(fh: number): Promise<void> {
    const h = this.handle(fh);
    const st = h.state;
    this.handles.delete(fh);
    await this.quiescent(st, async () => {
      st.opens--;
      if ((h.flags & O_ACCMODE) !== O_RDONLY) st.writers--;
      const rec = this.store.getInode(st.ino);
      if (rec && rec.nlink > 0) {
        try {
          await this.commit(st);
        } finally {
          if (st.opens === 0) this.states.delete(st.ino);
        }
        return;
      }
      if (st.opens > 0) return;
      this.states.delete(st.ino);
      if (rec) {
        // last close of an unlinked file: its data goes now
        await this.store.txn(() => {
          const cur = this.store.getInode(st.ino);
          if (!cur || cur.nlink > 0) return;
          dropContent(this.store, st.ino);
          this.store.removeInode(st.ino);
        });
      }
    });
  }

  /** Chunk and store the file's pending writes as one transaction. Caller holds the lock. */
  private async commit(st: FileState): Promise<void> {
    if (!st.dirty && !st.metaDirty) return;
    const prepared = st.dirty
      ? await this.prepare(st, st.overlay, st.committedSize, st.size, { endIsCut: st.endIsCut })
      : { plan: { removed: [], added: [], newSize: st.size, endIsCut: st.endIsCut }, encoded: new Map() };
    await this.apply(st, prepared, st.size, st.pending);
    st.overlay.clear();
    st.pending = {};
    st.dirty = false;
    st.metaDirty = false;
  }

  /** Plan the new recipe and encode new chunks: reads the store, changes nothing. */
  private async prepare(st: FileState, overlay: Overlay, fromSize: number, size: number, options: RewriteOptions): Promise<Prepared> {
    const plan = await planRewrite(this.store, this.source, st.ino, fromSize, size, overlay, undefined, options);
    return { plan, encoded: await this.encodeNew(plan.added) };
  }

  /**
   * One transaction: swap the recipe, set size and attributes. Caller holds the lock, or (a
   * background batch that only adds extents) no read depends on what changes.
   */
  private async apply(st: FileState, prepared: Prepared, size: number, pending: PendingAttrs): Promise<void> {
    const { plan } = prepared;
    let { encoded } = prepared;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.store.txn(() => {
          const rec = this.inode(st.ino);
          applyPlan(this.store, st.ino, plan, encoded);
          this.store.putInode({ ...rec, ...pending, size });
        }, planBytes(plan, encoded));
        break;
      } catch (err) {
        // A chunk we saw in the store was reclaimed before our transaction: encode and retry.
        if (err instanceof NeedEncodingError && attempt < 3) {
          encoded = await this.encodeNew(plan.added);
          continue;
        }
        this.log(`commit of inode ${st.ino} failed: ${(err as Error).message}`);
        throw err;
      }
    }
    st.committedSize = size;
    st.endIsCut = plan.endIsCut;
    // The last chunk is what the next append re-reads: keep it hot.
    const last = plan.added[plan.added.length - 1];
    if (last) this.source.add(last.digest, Buffer.from(last.plain));
    const tail = last && last.offset + last.length * (last.count ?? 1) === size ? last.plain : undefined;
    if (plan.added.length || plan.removed.length) await this.onContentCommitted?.(st.ino, tail);
  }

  /** Commit every open file's pending writes (on unmount). */
  async commitAll(): Promise<void> {
    for (const st of this.states.values()) {
      await this.quiescent(st, () => this.commit(st)).catch((err) => this.log(`commit on unmount failed: ${err.message}`));
    }
  }

  get openFiles(): number {
    return this.handles.size;
  }
}
