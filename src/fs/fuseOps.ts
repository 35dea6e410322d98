// The FUSE boundary: libfuse 3 low-level operations (src/fs/lowlevel.ts, inode-based) on top of
// Filesystem. Errors become errno values here (toErrno) and nowhere else. Inode numbers are the
// store's, so a hard link is one kernel inode with one page cache, and every request carries the
// caller's uid/gid, which new files get as their owner.
import type { Attr as FsAttr, Filesystem } from './filesystem';
import type { Attr, EntryReply, LowLevelOps, RequestContext, StatFs } from './lowlevel';

/**
 * How long the kernel may keep attributes and names. Changes made through the mount update the
 * kernel's copy from our replies; the daemon invalidates what changes behind its back.
 */
export const ATTR_TIMEOUT = 1;
export const ENTRY_TIMEOUT = 1;

function attrOf(a: FsAttr): Attr {
  return {
    ino: a.ino,
    mode: a.mode,
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    blocks: a.blocks,
    blksize: a.blksize,
    atimeMs: a.atimeMs,
    mtimeMs: a.mtimeMs,
    ctimeMs: a.ctimeMs,
    rdev: a.rdev,
  };
}

const O_ACCMODE = 3;
const O_RDONLY = 0;

const entry = (a: FsAttr): EntryReply => ({ attr: attrOf(a), attrTimeout: ATTR_TIMEOUT, entryTimeout: ENTRY_TIMEOUT });
/** Who creates: owner and group of new nodes, and the umask, which the Filesystem applies unless a default ACL replaces it. */
const caller = (req: RequestContext) => ({ uid: req.uid, gid: req.gid, umask: req.umask ?? 0 });

export interface FuseOpsOptions {
  statfs: () => Promise<StatFs>;
  /** Called after a change that alters a directory's attributes the kernel may have cached. */
  dirChanged?: (ino: number) => void;
  /**
   * Serve extended attributes (default true). Without them the kernel stops asking after the
   * first ENOSYS; with them it asks for security.capability before every write(2), which the
   * binding answers in C but which is still one round trip per write (README, "Known limitations").
   */
  xattr?: boolean;
}

export function makeLowLevelOps(fs: Filesystem, opts: FuseOpsOptions): LowLevelOps {
  const changed = (ino: number) => opts.dirChanged?.(ino);
  return {
    lookup: async (_req, parent, name) => entry(await fs.lookup(parent, name)),
    getattr: async (_req, ino) => ({ attr: attrOf(await fs.getattrIno(ino)), timeout: ATTR_TIMEOUT }),
    setattr: async (_req, ino, set, fh) => {
      const a = await fs.setattr(
        ino,
        { mode: set.mode, uid: set.uid, gid: set.gid, size: set.size, atimeMs: set.atimeMs, mtimeMs: set.mtimeMs },
        fh,
      );
      return { attr: attrOf(a), timeout: ATTR_TIMEOUT };
    },
    readlink: (_req, ino) => fs.readlinkIno(ino),
    mknod: async (req, parent, name, mode, rdev) => {
      const a = entry(await fs.mknodAt(parent, name, mode, caller(req), rdev));
      changed(parent);
      return a;
    },
    mkdir: async (req, parent, name, mode) => {
      const a = entry(await fs.mkdirAt(parent, name, mode, caller(req)));
      changed(parent);
      return a;
    },
    symlink: async (req, parent, name, target) => {
      const a = entry(await fs.symlinkAt(parent, name, target, caller(req)));
      changed(parent);
      return a;
    },
    unlink: async (_req, parent, name) => {
      await fs.unlinkAt(parent, name);
      changed(parent);
    },
    rmdir: async (_req, parent, name) => {
      await fs.rmdirAt(parent, name);
      changed(parent);
    },
    rename: async (_req, parent, name, newParent, newName, flags) => {
      await fs.renameAt(parent, name, newParent, newName, flags);
      changed(parent);
      if (newParent !== parent) changed(newParent);
    },
    link: async (_req, ino, newParent, newName) => {
      const a = entry(await fs.linkAt(ino, newParent, newName));
      changed(newParent);
      return a;
    },
    create: async (req, parent, name, mode, flags) => {
      const { attr, fh } = await fs.createAt(parent, name, mode, flags, caller(req));
      changed(parent);
      return { ...entry(attr), fh, keepCache: true };
    },
    // Writes reach us through the kernel, which keeps its page cache in step: keep it across opens.
    // A read-only open has nothing of its own to flush (writers flush at their own close, and
    // release still commits), so the kernel need not wait for a FLUSH round trip at its close:
    // that is one of the round trips of every program start from the mount (its exec).
    open: async (_req, ino, flags) => ({ fh: await fs.openIno(ino, flags), keepCache: true, noflush: (flags & O_ACCMODE) === O_RDONLY }),
    read: async (_req, _ino, fh, offset, size) => {
      const buf = Buffer.allocUnsafe(size);
      const n = await fs.read(fh, buf, size, offset);
      return buf.subarray(0, n);
    },
    write: (_req, _ino, fh, offset, data) => fs.write(fh, data, data.length, offset),
    flush: (_req, _ino, fh) => fs.flush(fh),
    release: (_req, _ino, fh) => fs.release(fh),
    fsync: (_req, _ino, fh) => fs.fsync(fh),
    fallocate: (_req, _ino, fh, mode, offset, length) => fs.fallocate(fh, mode, offset, length),
    copyFileRange: (_req, _ino, fhIn, offIn, _inoOut, fhOut, offOut, length) => fs.copyFileRange(fhIn, offIn, fhOut, offOut, length),
    lseek: (_req, ino, _fh, offset, whence) => fs.lseekIno(ino, offset, whence),
    ...(opts.xattr === false
      ? {}
      : {
          setxattr: (_req, ino, name, value, flags) => fs.setxattrIno(ino, name, value, flags),
          getxattr: (_req, ino, name) => fs.getxattrIno(ino, name),
          listxattr: (_req, ino) => fs.listxattrIno(ino),
          removexattr: (_req, ino, name) => fs.removexattrIno(ino, name),
        } satisfies Partial<LowLevelOps>),
    opendir: async () => ({ fh: 0 }),
    readdir: async (_req, ino, _fh, offset) => {
      const all = await fs.readdirIno(ino);
      return all.slice(offset).map((e, i) => ({ name: e.name, ino: e.ino, mode: e.mode, offset: offset + i + 1 }));
    },
    releasedir: async () => undefined,
    statfs: () => opts.statfs(),
    access: async (_req, ino) => {
      await fs.getattrIno(ino);
    },
  };
}
