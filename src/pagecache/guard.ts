// The FUSE side of the page cache: wraps the mount's low-level operations so that
//  - nobody changes anything under /.slinky through the mount (not even root: permission bits do
//    not stop root), and nobody creates, removes or renames a /.slinky of their own;
//  - published objects are opened without a round trip to the Filesystem's handle table (they
//    never change: fh 0, kernel page cache kept across opens, no flush on close) and read
//    through the verified page cache;
//  - the kernel may cache names and attributes of the immutable objects for a long time, so a
//    program start from a hot cache costs one OPEN per object and nothing else.
import type { LowLevelOps, RequestContext } from '../fs/lowlevel';
import { ROOT_INO } from '../store/records';
import { SLINKY_NAME } from './layout';
import type { ObjectIndex } from './objectIndex';

/** Seconds the kernel may keep names and attributes of published objects (they never change). */
export const IMMUTABLE_TIMEOUT = 24 * 3600;
const EPERM = 1;
const O_ACCMODE = 3;
const O_TRUNC = 0o1000;
/** Handle number of an open object: Filesystem handles start at 1. */
const OBJECT_FH = 0;

export class ProtectedError extends Error {
  override name = 'ProtectedError';
  readonly errno = EPERM;
}

export interface ObjectAccess {
  read(ino: number, offset: number, size: number): Promise<Uint8Array>;
  /** Every name a lookup finds: the page cache takes what belongs to /.slinky under its care. */
  adopt(parent: number, name: string, ino: number, mode: number, size: number): void;
}

export function guardOps(ops: LowLevelOps, index: ObjectIndex, objects: ObjectAccess): LowLevelOps {
  const refuse = (what: string): never => {
    throw new ProtectedError(`${what}: the shared object tree /${SLINKY_NAME} is read-only`);
  };
  const checkName = (parent: number, name: string, what: string) => {
    if (index.isProtected(parent) || (parent === ROOT_INO && name === SLINKY_NAME)) refuse(what);
  };
  const checkIno = (ino: number, what: string) => {
    if (index.isProtected(ino)) refuse(what);
  };
  const isObjectHandle = (ino: number, fh: number) => fh === OBJECT_FH && index.isObject(ino);
  const wrapped: LowLevelOps = { ...ops };

  if (ops.lookup) {
    const inner = ops.lookup;
    wrapped.lookup = async (req, parent, name) => {
      const e = await inner(req, parent, name);
      objects.adopt(parent, name, e.attr.ino, e.attr.mode, e.attr.size);
      return index.isProtected(e.attr.ino) ? { ...e, attrTimeout: IMMUTABLE_TIMEOUT, entryTimeout: IMMUTABLE_TIMEOUT } : e;
    };
  }
  if (ops.getattr) {
    const inner = ops.getattr;
    wrapped.getattr = async (req, ino, fh) => {
      const a = await inner(req, ino, fh);
      return index.isObject(ino) ? { ...a, timeout: IMMUTABLE_TIMEOUT } : a;
    };
  }
  const named = <A extends unknown[], R>(what: string, inner: ((req: RequestContext, parent: number, name: string, ...rest: A) => R) | undefined) =>
    inner && ((req: RequestContext, parent: number, name: string, ...rest: A): R => {
      checkName(parent, name, what);
      return inner(req, parent, name, ...rest);
    });
  wrapped.mknod = named('mknod', ops.mknod);
  wrapped.mkdir = named('mkdir', ops.mkdir);
  wrapped.unlink = named('unlink', ops.unlink);
  wrapped.rmdir = named('rmdir', ops.rmdir);
  wrapped.symlink = named('symlink', ops.symlink);
  wrapped.create = named('create', ops.create);
  if (ops.rename) {
    const inner = ops.rename;
    wrapped.rename = (req, parent, name, newParent, newName, flags) => {
      checkName(parent, name, 'rename');
      checkName(newParent, newName, 'rename');
      return inner(req, parent, name, newParent, newName, flags);
    };
  }
  if (ops.link) {
    const inner = ops.link;
    wrapped.link = (req, ino, newParent, newName) => {
      checkIno(ino, 'link');
      checkName(newParent, newName, 'link');
      return inner(req, ino, newParent, newName);
    };
  }
  // Changes to an inode under /.slinky, whatever the operation.
  const byIno = <A extends unknown[], R>(what: string, inner: ((req: RequestContext, ino: number, ...rest: A) => R) | undefined) =>
    inner && ((req: RequestContext, ino: number, ...rest: A): R => {
      checkIno(ino, what);
      return inner(req, ino, ...rest);
    });
  wrapped.setattr = byIno('setattr', ops.setattr);
  wrapped.write = byIno('write', ops.write);
  wrapped.fallocate = byIno('fallocate', ops.fallocate);
  wrapped.setxattr = byIno('setxattr', ops.setxattr);
  wrapped.removexattr = byIno('removexattr', ops.removexattr);
  if (ops.copyFileRange) {
    const copy = ops.copyFileRange;
    wrapped.copyFileRange = (req, ino, fhIn, offIn, inoOut, fhOut, offOut, length, flags) => {
      checkIno(inoOut, 'copy_file_range');
      return copy(req, ino, fhIn, offIn, inoOut, fhOut, offOut, length, flags);
    };
  }
  const inner = { open: ops.open, read: ops.read, flush: ops.flush, release: ops.release };
  wrapped.open = (req, ino, flags) => {
    if (index.isProtected(ino) && ((flags & O_ACCMODE) !== 0 || flags & O_TRUNC)) refuse('open for writing');
    if (index.isObject(ino)) return { fh: OBJECT_FH, keepCache: true, noflush: true };
    return inner.open ? inner.open(req, ino, flags) : {};
  };
  wrapped.read = (req, ino, fh, offset, size) => {
    if (isObjectHandle(ino, fh)) return objects.read(ino, offset, size);
    if (!inner.read) throw new ProtectedError('read not supported');
    return inner.read(req, ino, fh, offset, size);
  };
  wrapped.flush = (req, ino, fh) => {
    if (isObjectHandle(ino, fh)) return;
    return inner.flush?.(req, ino, fh);
  };
  wrapped.release = (req, ino, fh, flags) => {
    if (isObjectHandle(ino, fh)) return;
    return inner.release?.(req, ino, fh, flags);
  };
  return wrapped;
}
