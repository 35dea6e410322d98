// A FUSE filesystem served through libfuse3's low-level, inode-based API (build/slinky_fusell.node,
// native/fusell.c). Handlers are async functions keyed by inode number; each resolved value
// becomes the reply and each thrown error an errno, so the kernel can have many requests in
// flight while JS answers them in any order. The FUSE device is read without blocking on the
// JS thread (libuv) by default, or on a session thread (options.sessionThread). Unlike fuse-native (libfuse 2, path-based) this
// gives every request its caller's uid/gid/pid, full setattr (distinct atime and mtime, NOW,
// the file handle), one kernel inode per inode number (hard links share a page cache), reply
// timeouts chosen per answer, and explicit cache invalidation.
//
// Lookup counts: every successful lookup, mknod, mkdir, symlink, link and create (and every
// readdirplus entry other than "." and "..") adds one reference to the inode in the kernel;
// `forget(ino, n)` gives n back. An inode must stay resolvable until its count is zero. When a
// reply cannot be delivered (the caller was interrupted, or the session ended) the wrapper
// gives the reference back itself by calling `forget(ino, 1)`, and calls release/releasedir for
// a handle the kernel never received.
//
// Buffers: the `data` of a write is a view of the request's receive buffer (no copy for large
// writes). It is valid until the handler's promise settles; afterwards it is detached (length
// 0). Copy it (Buffer.from(data)) to keep the bytes. A read handler's result is copied by the
// kernel while the reply is sent, so it may be reused right after.
//
// Immutable inodes: after `setImmutable(ino, true)` the addon answers read-only opens of `ino`
// itself, without calling `open` (fh 0, kernel page cache kept, no FLUSH at close), and releases
// and flushes of fh 0 without calling `release`/`flush`; `read` is still called, with fh 0. For
// inodes whose contents and attributes never change; a program start opens several of them, and
// the answer from C spares each open a turn of the JS thread. Other opens (for writing, O_TRUNC)
// reach `open` as usual. Once `getattr` (or `lookup`) has answered for such an inode, its
// GETATTRs are answered by the addon with those attributes. `fastPath` counts what the addon
// answered.
//
// Passthrough: with `passthrough` set and a kernel that grants it (6.9+), `setBacking(ino, fd)`
// gives an immutable inode a backing file: its opens are then answered with the kernel's
// FOPEN_PASSTHROUGH, so reads and mmap go straight to that file's page cache and never reach
// `read`. The caller must have verified that the file holds exactly the inode's bytes.
//
// Names: a name or symlink target arrives as a string and is answered as one; a name that is
// not valid UTF-8 carries each of its invalid bytes as a lone surrogate (src/store/names.ts),
// which the addon turns back into that byte in replies (readdir, readlink, notify).
//
// Unanswered requests: the calling process waits (in D state) until its request is answered.
// unmount() waits up to `unmountTimeoutMs` for handlers in flight, then answers what is left
// with EIO and unmounts; a handler that settles later is ignored.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { constants as osConstants } from 'node:os';
import { encodeName } from '../store/names';

export const ROOT_INO = 1;
const NUL = Buffer.from([0]);

/** Who asked: the calling thread's ids as the kernel saw them. */
export interface RequestContext {
  uid: number;
  gid: number;
  pid: number;
  umask: number;
}

export interface Attr {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  rdev?: number;
  /** 512-byte blocks; default ceil(size / 512). */
  blocks?: number;
  blksize?: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
}

export interface AttrReply {
  attr: Attr;
  /** Seconds the kernel may cache the attributes; default: options.attrTimeout. */
  timeout?: number;
}

export interface EntryReply {
  attr: Attr;
  generation?: number;
  /** Seconds for the attributes and for the name; defaults: options.attrTimeout/entryTimeout. */
  attrTimeout?: number;
  entryTimeout?: number;
}

export interface OpenReply {
  /** Handle passed back with every request on this open file; default 0. */
  fh?: number;
  directIo?: boolean;
  /** Keep the page cache from earlier opens (the file did not change meanwhile). */
  keepCache?: boolean;
  nonseekable?: boolean;
  /** opendir only: let the kernel cache the listing. */
  cacheDir?: boolean;
  noflush?: boolean;
}

export interface CreateReply extends EntryReply, OpenReply {}

/** The fields a setattr changes; absent means unchanged. */
export interface SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** Already resolved to the current time when the caller asked for "now" (atimeNow). */
  atimeMs?: number;
  mtimeMs?: number;
  atimeNow?: boolean;
  mtimeNow?: boolean;
  /** The new ctime: the kernel's value when it sent one, else the time of the request. */
  ctimeMs: number;
}

export interface DirEntry {
  name: string;
  ino: number;
  /** At least the file type bits (S_IFDIR, S_IFREG...). */
  mode: number;
  /** Offset the next readdir continues from after this entry; default: request offset + index + 1. */
  offset?: number;
}

export interface DirEntryPlus extends EntryReply {
  name: string;
  offset?: number;
}

export interface StatFs {
  bsize: number;
  frsize?: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail?: number;
  fsid?: number;
  flag?: number;
  namemax?: number;
}

type R<T> = T | Promise<T>;

/** Operations; an absent one gets libfuse's default (open/opendir/release succeed with fh 0,
 *  flush/fsync/access/... answer ENOSYS, which the kernel remembers and stops sending). */
export interface LowLevelOps {
  lookup?(req: RequestContext, parent: number, name: string): R<EntryReply>;
  forget?(ino: number, nlookup: number): void;
  getattr?(req: RequestContext, ino: number, fh: number | undefined): R<AttrReply>;
  setattr?(req: RequestContext, ino: number, set: SetAttr, fh: number | undefined): R<AttrReply>;
  readlink?(req: RequestContext, ino: number): R<string | Uint8Array>;
  mknod?(req: RequestContext, parent: number, name: string, mode: number, rdev: number): R<EntryReply>;
  mkdir?(req: RequestContext, parent: number, name: string, mode: number): R<EntryReply>;
  unlink?(req: RequestContext, parent: number, name: string): R<void>;
  rmdir?(req: RequestContext, parent: number, name: string): R<void>;
  symlink?(req: RequestContext, parent: number, name: string, target: string): R<EntryReply>;
  /** flags: RENAME_NOREPLACE (1), RENAME_EXCHANGE (2), RENAME_WHITEOUT (4). */
  rename?(req: RequestContext, parent: number, name: string, newParent: number, newName: string, flags: number): R<void>;
  link?(req: RequestContext, ino: number, newParent: number, newName: string): R<EntryReply>;
  open?(req: RequestContext, ino: number, flags: number): R<OpenReply>;
  /** Resolve with at most `size` bytes; fewer means end of file. */
  read?(req: RequestContext, ino: number, fh: number, offset: number, size: number): R<Uint8Array>;
  /** Resolve with the number of bytes written. `data` is valid until the promise settles. */
  write?(req: RequestContext, ino: number, fh: number, offset: number, data: Buffer, writepage: boolean): R<number>;
  flush?(req: RequestContext, ino: number, fh: number): R<void>;
  release?(req: RequestContext, ino: number, fh: number, flags: number): R<void>;
  fsync?(req: RequestContext, ino: number, fh: number, datasync: boolean): R<void>;
  opendir?(req: RequestContext, ino: number, flags: number): R<OpenReply>;
  /** Entries from `offset` on (all of them or any prefix); the reply holds those that fit. */
  readdir?(req: RequestContext, ino: number, fh: number, offset: number, size: number): R<DirEntry[]>;
  /** Like readdir, with attributes; each entry except "." and ".." counts as a lookup. */
  readdirplus?(req: RequestContext, ino: number, fh: number, offset: number, size: number): R<DirEntryPlus[]>;
  releasedir?(req: RequestContext, ino: number, fh: number): R<void>;
  fsyncdir?(req: RequestContext, ino: number, fh: number, datasync: boolean): R<void>;
  statfs?(req: RequestContext, ino: number): R<StatFs>;
  access?(req: RequestContext, ino: number, mask: number): R<void>;
  create?(req: RequestContext, parent: number, name: string, mode: number, flags: number): R<CreateReply>;
  /** fallocate(2) on an open file: mode FALLOC_FL_* (the kernel passes on KEEP_SIZE, PUNCH_HOLE
   *  and ZERO_RANGE only). */
  fallocate?(req: RequestContext, ino: number, fh: number, mode: number, offset: number, length: number): R<void>;
  /**
   * copy_file_range(2) between two files of the mount; resolves to the bytes copied. Rejecting
   * with EOPNOTSUPP makes the kernel copy this call's range itself (reads and writes).
   */
  copyFileRange?(req: RequestContext, ino: number, fhIn: number, offIn: number, inoOut: number, fhOut: number, offOut: number, length: number, flags: number): R<number>;
  /**
   * lseek(2) with whence SEEK_DATA (3) or SEEK_HOLE (4); resolves to the offset found. Never
   * reject with ENOSYS: the kernel would stop asking for the rest of the mount's life.
   */
  lseek?(req: RequestContext, ino: number, fh: number, offset: number, whence: number): R<number>;
  /** flags: XATTR_CREATE (1), XATTR_REPLACE (2). `value` is a copy. */
  setxattr?(req: RequestContext, ino: number, name: string, value: Buffer, flags: number): R<void>;
  /** The value (the binding answers a size query, or ERANGE when it does not fit the caller's buffer). */
  getxattr?(req: RequestContext, ino: number, name: string): R<Uint8Array>;
  /** The names (the binding builds the NUL-separated list and answers size queries). */
  listxattr?(req: RequestContext, ino: number): R<string[]>;
  removexattr?(req: RequestContext, ino: number, name: string): R<void>;
}

export interface LowLevelOptions {
  allowOther?: boolean;
  /** Let the kernel check permissions from the modes and owners we report. */
  defaultPermissions?: boolean;
  fsname?: string;
  subtype?: string;
  /** More -o options as libfuse spells them (e.g. 'ro', 'auto_unmount', 'max_read=131072'). */
  options?: string[];
  /** Largest write request in bytes (default 128 KiB; the kernel allows up to 1 MiB). */
  maxWrite?: number;
  maxReadahead?: number;
  /** Let the kernel cache writes (off by default: every write reaches the handler at once). */
  writebackCache?: boolean;
  cacheSymlinks?: boolean;
  /**
   * Let the kernel enforce POSIX ACLs (FUSE_POSIX_ACL), which the handlers store as the
   * system.posix_acl_* attributes; the kernel then leaves the umask of new nodes to them
   * (FUSE_DONT_MASK, RequestContext.umask). Without it those names are refused.
   */
  posixAcl?: boolean;
  /** Ask the kernel for FUSE passthrough (see the header; excluded by writebackCache). */
  passthrough?: boolean;
  /** Read the FUSE device on a session thread that hands requests to JS through a threadsafe
   *  function, instead of on the JS thread through libuv (the default: one thread hand-off less
   *  per request, 2-5x the metadata rate; see bench/fuseBinding.ts). */
  sessionThread?: boolean;
  /**
   * With the JS thread reading the device: keep polling (not sleeping) this many microseconds
   * after each request, so the next request of a burst finds the thread awake. Default 0.
   */
  spinMicros?: number;
  /** Defaults for reply timeouts in seconds (1 s each unless set). */
  attrTimeout?: number;
  entryTimeout?: number;
  /** When > 0, a lookup failing with ENOENT is answered as a negative entry cached this long. */
  negativeTimeout?: number;
  /** Maps a thrown error to an errno (sign ignored); default: err.errno, err.code, else EIO. */
  toErrno?: (err: unknown) => number;
  /** Told about errors that became EIO (a bug or a broken store, worth a log line). */
  onError?: (op: string, err: unknown) => void;
  /** How long unmount() waits for handlers in flight before answering them EIO (default 5 s). */
  unmountTimeoutMs?: number;
  debug?: boolean;
}

export interface ConnectionInfo {
  protoMajor: number;
  protoMinor: number;
  maxWrite: number;
  maxReadahead: number;
  /** FUSE_CAP_* bits the kernel offered and the ones in use. */
  capable: number;
  want: number;
}

export interface LowLevelSession {
  readonly mountpoint: string;
  readonly conn: ConnectionInfo;
  /** Settles when the mount is gone: after unmount(), or after an external umount. */
  readonly closed: Promise<void>;
  /** Requests handed to handlers and not answered yet. */
  readonly inFlight: number;
  unmount(): Promise<void>;
  /** Drop cached data of `ino` in [offset, offset+length) (length 0: to the end) and its
   *  attributes; offset < 0 drops only the attributes. */
  invalidateInode(ino: number, offset?: number, length?: number): Promise<void>;
  /** Drop the cached name `name` in `parent` (and the parent's attributes). */
  invalidateEntry(parent: number, name: string): Promise<void>;
  /** Like invalidateEntry, and tell inotify watchers that `child` was deleted. */
  notifyDelete(parent: number, child: number, name: string): Promise<void>;
  /** Mark (or unmark) an inode whose contents and attributes never change: see the header. */
  setImmutable(ino: number, immutable: boolean): void;
  /**
   * Opens of immutable `ino` pass through to the file open at `fd` (see the header; `fd` may be
   * closed afterwards). The kernel's backing id, or a negative errno: ENOTSUP when the
   * connection has no passthrough, ENOENT when `ino` is not immutable, EEXIST when it has one.
   */
  setBacking(ino: number, fd: number): number;
  readonly fastPath: FastPathCounters;
}

/** Requests the addon answered itself for immutable inodes, and how many inodes are marked. */
export interface FastPathCounters {
  opens: number;
  flushes: number;
  releases: number;
  immutable: number;
  /** Opens answered with a passthrough backing file, and whether the kernel granted it. */
  passthroughOpens: number;
  passthrough: boolean;
  /** GETATTRs answered from the attributes the filesystem gave for the inode before. */
  getattrs: number;
}

export class LowLevelError extends Error {
  override name = 'LowLevelError';
  constructor(message: string, readonly errno?: number) {
    super(message);
  }
}

// ---- the addon ---------------------------------------------------------------------------------

type Handle = { readonly __fusell: unique symbol };
type Dispatch = (op: number, id: number, ino: number, uid: number, gid: number, pid: number, umask: number, ...args: any[]) => void;

interface FusellAddon {
  mount(mountpoint: string, args: string[], config: object, opMask: number, dispatch: Dispatch, scratch: Float64Array): [Handle, Promise<void>];
  unmount(h: Handle): void;
  replyErr(h: Handle, id: number, errno: number): number;
  replyEntry(h: Handle, id: number): number;
  replyCreate(h: Handle, id: number): number;
  replyAttr(h: Handle, id: number): number;
  replyOpen(h: Handle, id: number): number;
  replyWrite(h: Handle, id: number, count: number): number;
  replyLseek(h: Handle, id: number, offset: number): number;
  replyBuf(h: Handle, id: number, data: Uint8Array | string): number;
  replyXattrSize(h: Handle, id: number, size: number): number;
  replyDir(h: Handle, id: number, flat: unknown[], plus: boolean): number;
  replyStatfs(h: Handle, id: number): number;
  notify(h: Handle, kind: number, ino: number, a: number, b: number, name: string): Promise<number>;
  liveRequests(h: Handle): number;
  setImmutable(h: Handle, ino: number, on: boolean): boolean;
  setBacking(h: Handle, ino: number, fd: number): number;
  fastPath(h: Handle): [number, number, number, number, number, number, number];
  opNames: string[];
  scratchLength: number;
  fuseVersion: string;
}

/** Request kinds in the addon's order (native/fusell.c OP_NAMES). */
const OPS = [
  'init', 'ended', 'mountFailed', 'notifyDone', 'mounted',
  'lookup', 'forget', 'getattr', 'setattr', 'readlink', 'mknod', 'mkdir', 'unlink',
  'rmdir', 'symlink', 'rename', 'link', 'open', 'read', 'write', 'flush', 'release',
  'fsync', 'opendir', 'readdir', 'releasedir', 'fsyncdir', 'statfs', 'access', 'create',
  'readdirplus', 'fallocate', 'setxattr', 'getxattr', 'listxattr', 'removexattr',
  'copyFileRange', 'lseek',
] as const;
type OpName = (typeof OPS)[number];
const OP = Object.fromEntries(OPS.map((n, i) => [n, i])) as Record<OpName, number>;

export const ADDON_FILE = 'slinky_fusell.node';
// src/fs -> repo root is two levels up; dist/src/fs is three.
const CANDIDATES = [path.resolve(__dirname, '../../build', ADDON_FILE), path.resolve(__dirname, '../../../build', ADDON_FILE)];
let addon: FusellAddon | undefined;

/** The addon, loaded once; throws LowLevelError saying why it cannot be used. */
export function fusellAddon(): FusellAddon {
  if (addon) return addon;
  const file = CANDIDATES.find((p) => existsSync(p));
  if (!file) throw new LowLevelError(`${ADDON_FILE} not found (looked in ${CANDIDATES.join(', ')}); run \`make build\` (needs libfuse3-dev)`);
  let a: FusellAddon;
  try {
    a = require(file) as FusellAddon;
  } catch (e) {
    throw new LowLevelError(`${file} failed to load: ${(e as Error).message.split('\n')[0]} (needs libfuse3-3)`);
  }
  if (a.opNames.join() !== OPS.join() || typeof a.setBacking !== 'function') throw new LowLevelError(`${file} is out of date: rebuild with \`make build\``);
  return (addon = a);
}

// ---- errno -------------------------------------------------------------------------------------

const EIO = 5;
const ENOENT = 2;
const ERANGE = 34;
const ENOSYS = 38;

/** err.errno (either sign), else err.code looked up in os.constants.errno, else EIO. */
export function defaultErrno(err: unknown): number {
  if (typeof err === 'number') return Math.abs(err);
  if (typeof err === 'object' && err !== null) {
    const { errno, code } = err as { errno?: unknown; code?: unknown };
    if (typeof errno === 'number' && errno !== 0) return Math.abs(errno);
    if (typeof code === 'string' && code in osConstants.errno) return (osConstants.errno as Record<string, number>)[code];
  }
  return EIO;
}

// ---- scratch layout (native/fusell.c SC_*) ------------------------------------------------------

const SC = { INO: 0, MODE: 1, NLINK: 2, UID: 3, GID: 4, RDEV: 5, SIZE: 6, BLOCKS: 7, BLKSIZE: 8, ATIME: 9, MTIME: 10, CTIME: 11, GENERATION: 12, ATTR_TIMEOUT: 13, ENTRY_TIMEOUT: 14, FH: 15, OPEN_FLAGS: 16 } as const;
const SCRATCH_LENGTH = 17;
const OPEN_BITS = { directIo: 1, keepCache: 2, nonseekable: 4, cacheDir: 8, noflush: 16 } as const;

const SET_ATTR = { MODE: 1, UID: 2, GID: 4, SIZE: 8, ATIME: 16, MTIME: 32, ATIME_NOW: 128, MTIME_NOW: 256 } as const;

function fillAttr(s: Float64Array, a: Attr): void {
  s[SC.INO] = a.ino;
  s[SC.MODE] = a.mode;
  s[SC.NLINK] = a.nlink;
  s[SC.UID] = a.uid;
  s[SC.GID] = a.gid;
  s[SC.RDEV] = a.rdev ?? 0;
  s[SC.SIZE] = a.size;
  s[SC.BLOCKS] = a.blocks ?? Math.ceil(a.size / 512);
  s[SC.BLKSIZE] = a.blksize ?? 4096;
  s[SC.ATIME] = a.atimeMs;
  s[SC.MTIME] = a.mtimeMs;
  s[SC.CTIME] = a.ctimeMs;
}

function fillOpen(s: Float64Array, o: OpenReply): void {
  s[SC.FH] = o.fh ?? 0;
  s[SC.OPEN_FLAGS] =
    (o.directIo ? OPEN_BITS.directIo : 0) |
    (o.keepCache ? OPEN_BITS.keepCache : 0) |
    (o.nonseekable ? OPEN_BITS.nonseekable : 0) |
    (o.cacheDir ? OPEN_BITS.cacheDir : 0) |
    (o.noflush ? OPEN_BITS.noflush : 0);
}

function buildArgs(o: LowLevelOptions): string[] {
  const opts: string[] = [];
  if (o.allowOther) opts.push('allow_other');
  if (o.defaultPermissions) opts.push('default_permissions');
  if (o.fsname !== undefined) opts.push(`fsname=${o.fsname}`);
  if (o.subtype !== undefined) opts.push(`subtype=${o.subtype}`);
  opts.push(...(o.options ?? []));
  // libfuse splits -o values at commas; a backslash keeps one inside a value.
  const escaped = opts.map((s) => s.replace(/\\/g, '\\\\').replace(/,/g, '\\,'));
  const args = escaped.length ? ['-o', escaped.join(',')] : [];
  if (o.debug) args.push('-d');
  return args;
}

// ---- mounting ----------------------------------------------------------------------------------

/** Mount `ops` at `mountpoint`; resolves once the kernel's INIT has been answered. */
export function mountLowLevel(mountpoint: string, ops: LowLevelOps, options: LowLevelOptions = {}): Promise<LowLevelSession> {
  let a: FusellAddon;
  try {
    a = fusellAddon();
  } catch (e) {
    return Promise.reject(e);
  }
  const mp = path.resolve(mountpoint);
  const attrTimeout = options.attrTimeout ?? 1;
  const entryTimeout = options.entryTimeout ?? 1;
  const negativeTimeout = options.negativeTimeout ?? 0;
  const toErrno = options.toErrno ?? defaultErrno;
  const onError = options.onError;
  const scratch = new Float64Array(SCRATCH_LENGTH);

  let opMask = 0;
  for (const name of OPS) if (typeof (ops as Record<string, unknown>)[name] === 'function') opMask += 2 ** OP[name];

  let handle!: Handle;
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];
  let conn: ConnectionInfo | undefined;
  let settleMount!: { resolve: (s: LowLevelSession) => void; reject: (e: Error) => void };
  const mounted = new Promise<LowLevelSession>((resolve, reject) => (settleMount = { resolve, reject }));

  const done = () => {
    if (--inFlight === 0 && idleWaiters.length) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };

  const errnoFor = (op: string, err: unknown): number => {
    let e: number;
    try {
      e = Math.abs(toErrno(err));
    } catch {
      e = EIO;
    }
    if (!Number.isInteger(e) || e <= 0 || e >= 4096) e = EIO;
    if (e === EIO && onError) {
      try {
        onError(op, err);
      } catch {
        /* a failing logger must not change the answer */
      }
    }
    return e;
  };

  /** Run a handler for request `id`; `ok` turns its value into the reply. */
  function run<T>(id: number, op: string, call: () => R<T>, ok: (v: T) => void, failed?: (errno: number) => boolean): void {
    const fail = (err: unknown) => {
      const e = errnoFor(op, err);
      if (failed?.(e)) return;
      a.replyErr(handle, id, e);
    };
    inFlight++;
    let v: R<T>;
    try {
      v = call();
    } catch (err) {
      fail(err);
      done();
      return;
    }
    if (v instanceof Promise) {
      v.then(
        (value) => {
          try {
            ok(value);
          } catch (err) {
            fail(err);
          }
          done();
        },
        (err) => {
          fail(err);
          done();
        },
      );
    } else {
      try {
        ok(v);
      } catch (err) {
        fail(err);
      }
      done();
    }
  }

  const replyEntry = (id: number, e: EntryReply): void => {
    fillAttr(scratch, e.attr);
    scratch[SC.GENERATION] = e.generation ?? 0;
    scratch[SC.ATTR_TIMEOUT] = e.attrTimeout ?? attrTimeout;
    scratch[SC.ENTRY_TIMEOUT] = e.entryTimeout ?? entryTimeout;
    if (a.replyEntry(handle, id) < 0 && e.attr.ino !== 0) ops.forget?.(e.attr.ino, 1);
  };
  const replyAttr = (id: number, r: AttrReply): void => {
    fillAttr(scratch, r.attr);
    scratch[SC.ATTR_TIMEOUT] = r.timeout ?? attrTimeout;
    a.replyAttr(handle, id);
  };
  const ok0 = (id: number) => () => void a.replyErr(handle, id, 0);
  // getxattr/listxattr: size 0 asks how big the answer is; a buffer too small is ERANGE.
  const replyXattr = (id: number, value: Uint8Array, size: number) => {
    if (size === 0) a.replyXattrSize(handle, id, value.length);
    else if (value.length > size) a.replyErr(handle, id, ERANGE);
    else a.replyBuf(handle, id, value);
  };

  const dispatch: Dispatch = (op, id, ino, uid, gid, pid, umask, a0, a1, a2, a3, a4, a5, a6, a7, a8) => {
    const req: RequestContext = { uid, gid, pid, umask };
    switch (op) {
      case OP.lookup:
        return run(id, 'lookup', () => ops.lookup!(req, ino, a0), (e) => replyEntry(id, e), (errno) => {
          if (errno !== ENOENT || negativeTimeout <= 0) return false;
          scratch.fill(0);
          scratch[SC.ENTRY_TIMEOUT] = negativeTimeout;
          a.replyEntry(handle, id);
          return true;
        });
      case OP.forget:
        try {
          ops.forget!(ino, a0);
        } catch (err) {
          onError?.('forget', err);
        }
        return;
      case OP.getattr:
        return run(id, 'getattr', () => ops.getattr!(req, ino, a0), (r) => replyAttr(id, r));
      case OP.setattr: {
        const bits: number = a0;
        const set: SetAttr = { ctimeMs: a8 };
        if (bits & SET_ATTR.MODE) set.mode = a2;
        if (bits & SET_ATTR.UID) set.uid = a3;
        if (bits & SET_ATTR.GID) set.gid = a4;
        if (bits & SET_ATTR.SIZE) set.size = a5;
        if (bits & (SET_ATTR.ATIME | SET_ATTR.ATIME_NOW)) set.atimeMs = a6;
        if (bits & (SET_ATTR.MTIME | SET_ATTR.MTIME_NOW)) set.mtimeMs = a7;
        if (bits & SET_ATTR.ATIME_NOW) set.atimeNow = true;
        if (bits & SET_ATTR.MTIME_NOW) set.mtimeNow = true;
        return run(id, 'setattr', () => ops.setattr!(req, ino, set, a1), (r) => replyAttr(id, r));
      }
      case OP.readlink:
        return run(id, 'readlink', () => ops.readlink!(req, ino), (t) => void a.replyBuf(handle, id, t));
      case OP.mknod:
        return run(id, 'mknod', () => ops.mknod!(req, ino, a0, a1, a2), (e) => replyEntry(id, e));
      case OP.mkdir:
        return run(id, 'mkdir', () => ops.mkdir!(req, ino, a0, a1), (e) => replyEntry(id, e));
      case OP.unlink:
        return run(id, 'unlink', () => ops.unlink!(req, ino, a0), ok0(id));
      case OP.rmdir:
        return run(id, 'rmdir', () => ops.rmdir!(req, ino, a0), ok0(id));
      case OP.symlink:
        return run(id, 'symlink', () => ops.symlink!(req, ino, a0, a1), (e) => replyEntry(id, e));
      case OP.rename:
        return run(id, 'rename', () => ops.rename!(req, ino, a0, a1, a2, a3), ok0(id));
      case OP.link:
        return run(id, 'link', () => ops.link!(req, ino, a0, a1), (e) => replyEntry(id, e));
      case OP.open:
      case OP.opendir: {
        const isDir = op === OP.opendir;
        const flags: number = a0;
        return run(id, isDir ? 'opendir' : 'open', () => (isDir ? ops.opendir!(req, ino, flags) : ops.open!(req, ino, flags)), (o) => {
          fillOpen(scratch, o);
          if (a.replyOpen(handle, id) < 0) {
            // The kernel never got the handle, so it will never release it.
            const fh = o.fh ?? 0;
            void Promise.resolve()
              .then(() => (isDir ? ops.releasedir?.(req, ino, fh) : ops.release?.(req, ino, fh, flags)))
              .catch(() => undefined);
          }
        });
      }
      case OP.read:
        return run(id, 'read', () => ops.read!(req, ino, a0, a1, a2), (data) => void a.replyBuf(handle, id, data));
      case OP.write:
        return run(id, 'write', () => ops.write!(req, ino, a0, a1, a2, a3), (n) => void a.replyWrite(handle, id, n));
      case OP.flush:
        return run(id, 'flush', () => ops.flush!(req, ino, a0), ok0(id));
      case OP.release:
        return run(id, 'release', () => ops.release!(req, ino, a0, a1), ok0(id));
      case OP.fsync:
        return run(id, 'fsync', () => ops.fsync!(req, ino, a0, a1), ok0(id));
      case OP.fallocate:
        return run(id, 'fallocate', () => ops.fallocate!(req, ino, a0, a1, a2, a3), ok0(id));
      case OP.copyFileRange:
        return run(id, 'copyFileRange', () => ops.copyFileRange!(req, ino, a0, a1, a2, a3, a4, a5, a6), (n) => void a.replyWrite(handle, id, n));
      case OP.lseek:
        return run(id, 'lseek', () => ops.lseek!(req, ino, a0, a1, a2), (off) => void a.replyLseek(handle, id, off));
      case OP.setxattr:
        return run(id, 'setxattr', () => ops.setxattr!(req, ino, a0, a1, a2), ok0(id));
      case OP.getxattr:
        return run(id, 'getxattr', () => ops.getxattr!(req, ino, a0), (v) => replyXattr(id, v, a1));
      case OP.listxattr:
        return run(id, 'listxattr', () => ops.listxattr!(req, ino), (names) => {
          const parts = names.flatMap((n) => [encodeName(n), NUL]);
          replyXattr(id, Buffer.concat(parts), a0);
        });
      case OP.removexattr:
        return run(id, 'removexattr', () => ops.removexattr!(req, ino, a0), ok0(id));
      case OP.readdir: {
        const offset: number = a1;
        return run(id, 'readdir', () => ops.readdir!(req, ino, a0, offset, a2), (list) => {
          const flat: unknown[] = [];
          for (let i = 0; i < list.length; i++) {
            const d = list[i];
            flat.push(d.name, d.ino, d.mode, d.offset ?? offset + i + 1);
          }
          a.replyDir(handle, id, flat, false);
        });
      }
      case OP.readdirplus: {
        const offset: number = a1;
        return run(id, 'readdirplus', () => ops.readdirplus!(req, ino, a0, offset, a2), (list) => {
          const flat: unknown[] = [];
          for (let i = 0; i < list.length; i++) {
            const d = list[i];
            fillAttr(scratch, d.attr);
            flat.push(d.name, d.offset ?? offset + i + 1);
            for (let k = 0; k < SC.GENERATION; k++) flat.push(scratch[k]);
            flat.push(d.generation ?? 0, d.attrTimeout ?? attrTimeout, d.entryTimeout ?? entryTimeout, 0, 0);
          }
          const sent = a.replyDir(handle, id, flat, true);
          // Entries that did not fit (or all, if the reply failed) were never looked up.
          for (let i = Math.max(sent, 0); i < list.length; i++) {
            const d = list[i];
            if (d.name !== '.' && d.name !== '..' && d.attr.ino !== 0) ops.forget?.(d.attr.ino, 1);
          }
        });
      }
      case OP.releasedir:
        return run(id, 'releasedir', () => ops.releasedir!(req, ino, a0), ok0(id));
      case OP.fsyncdir:
        return run(id, 'fsyncdir', () => ops.fsyncdir!(req, ino, a0, a1), ok0(id));
      case OP.statfs:
        return run(id, 'statfs', () => ops.statfs!(req, ino), (s) => {
          scratch[0] = s.bsize;
          scratch[1] = s.frsize ?? s.bsize;
          scratch[2] = s.blocks;
          scratch[3] = s.bfree;
          scratch[4] = s.bavail;
          scratch[5] = s.files;
          scratch[6] = s.ffree;
          scratch[7] = s.favail ?? s.ffree;
          scratch[8] = s.fsid ?? 0;
          scratch[9] = s.flag ?? 0;
          scratch[10] = s.namemax ?? 255;
          a.replyStatfs(handle, id);
        });
      case OP.access:
        return run(id, 'access', () => ops.access!(req, ino, a0), ok0(id));
      case OP.create: {
        const flags: number = a2;
        return run(id, 'create', () => ops.create!(req, ino, a0, a1, flags), (c) => {
          fillAttr(scratch, c.attr);
          scratch[SC.GENERATION] = c.generation ?? 0;
          scratch[SC.ATTR_TIMEOUT] = c.attrTimeout ?? attrTimeout;
          scratch[SC.ENTRY_TIMEOUT] = c.entryTimeout ?? entryTimeout;
          fillOpen(scratch, c);
          if (a.replyCreate(handle, id) < 0) {
            ops.forget?.(c.attr.ino, 1);
            void Promise.resolve()
              .then(() => ops.release?.(req, c.attr.ino, c.fh ?? 0, flags))
              .catch(() => undefined);
          }
        });
      }
      case OP.init:
        conn = { protoMajor: ino, protoMinor: a0, maxWrite: a1, capable: a2, want: a3, maxReadahead: a4 };
        settleMount.resolve(session);
        return;
      case OP.mountFailed:
        settleMount.reject(new LowLevelError(`cannot mount ${mp}: ${a0}`));
        return;
      case OP.ended:
        // Before INIT this means the kernel never talked to us.
        settleMount.reject(new LowLevelError(`cannot mount ${mp}: the session ended before INIT`));
        return;
      default:
        // An op the addon knows and this wrapper does not: the addon answers EIO.
        if (id) a.replyErr(handle, id, ENOSYS);
    }
  };

  const notify = async (kind: number, ino: number, x: number, y: number, name: string, what: string) => {
    const res = await a.notify(handle, kind, ino, x, y, name);
    // ENOENT: the kernel had nothing cached, which is what we wanted.
    if (res < 0 && res !== -ENOENT) throw new LowLevelError(`${what}: errno ${-res}`, -res);
  };

  let unmounting: Promise<void> | undefined;
  const config = {
    maxWrite: options.maxWrite ?? 128 * 1024,
    maxReadahead: options.maxReadahead ?? 0,
    writebackCache: options.writebackCache ?? false,
    cacheSymlinks: options.cacheSymlinks ?? false,
    posixAcl: options.posixAcl ?? false,
    passthrough: options.passthrough ?? false,
    mainThreadLoop: !options.sessionThread,
    spinMicros: options.spinMicros ?? 0,
  };
  let closed!: Promise<void>;
  const session: LowLevelSession = {
    mountpoint: mp,
    get conn() {
      return conn!;
    },
    get closed() {
      return closed;
    },
    get inFlight() {
      return inFlight;
    },
    unmount() {
      return (unmounting ??= (async () => {
        if (inFlight > 0) {
          const timeout = options.unmountTimeoutMs ?? 5000;
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            idleWaiters.push(resolve);
            timer = setTimeout(resolve, timeout);
          });
          clearTimeout(timer);
        }
        a.unmount(handle);
        await closed;
      })());
    },
    invalidateInode: (ino, offset = 0, length = 0) => notify(0, ino, offset, length, '', `invalidate inode ${ino}`),
    invalidateEntry: (parent, name) => notify(1, parent, 0, 0, name, `invalidate entry ${name} in ${parent}`),
    notifyDelete: (parent, child, name) => notify(2, parent, child, 0, name, `notify delete of ${name} in ${parent}`),
    setImmutable(ino, immutable) {
      // Out of memory in the addon: the inode stays with JS, which answers the same way.
      if (!a.setImmutable(handle, ino, immutable)) onError?.('setImmutable', new LowLevelError(`cannot mark inode ${ino} immutable: out of memory`));
    },
    setBacking: (ino, fd) => a.setBacking(handle, ino, fd),
    get fastPath() {
      const [opens, flushes, releases, immutable, passthroughOpens, passthrough, getattrs] = a.fastPath(handle);
      return { opens, flushes, releases, immutable, passthroughOpens, passthrough: passthrough === 1, getattrs };
    },
  };

  try {
    [handle, closed] = a.mount(mp, buildArgs(options), config, opMask, dispatch, scratch);
  } catch (e) {
    return Promise.reject(new LowLevelError(`cannot mount ${mp}: ${(e as Error).message}`));
  }
  return mounted;
}
