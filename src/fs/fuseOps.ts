// The FUSE boundary: fuse-native's callback-style operations on top of Filesystem. Errors are
// turned into errno values here and nowhere else. fuse-native's high-level API does not tell
// us the calling process's uid/gid, so new files belong to the daemon's user (see README).
import type { Attr, Caller, Filesystem } from './filesystem';
import { toErrno } from './errno';

type Cb = (err: number, ...rest: any[]) => void;

function statOf(a: Attr): Record<string, number> {
  return {
    mode: a.mode,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    dev: 0,
    nlink: a.nlink,
    ino: a.ino,
    rdev: 0,
    blksize: a.blksize,
    blocks: a.blocks,
    atime: a.atimeMs,
    mtime: a.mtimeMs,
    ctime: a.ctimeMs,
  };
}

export interface FuseOpsOptions {
  caller: Caller;
  statfs: () => Promise<Record<string, number>>;
  log: (line: string) => void;
}

export function makeFuseOps(fs: Filesystem, opts: FuseOpsOptions): Record<string, Function> {
  const { caller, log } = opts;
  /** Run `work`, answer `cb` with its result, or with the errno its error maps to. */
  const answer = <T>(cb: Cb, work: () => Promise<T>, reply: (v: T) => any[] = () => []) => {
    work().then(
      (v) => cb(0, ...reply(v)),
      (err) => {
        const errno = toErrno(err);
        if (errno === -5 || errno === -28) log(`error: ${(err as Error).message}`);
        cb(errno);
      },
    );
  };
  /** read and write answer with a byte count or a negative errno in the first argument. */
  const count = (cb: (n: number) => void, work: () => Promise<number>) => {
    work().then(cb, (err) => {
      const errno = toErrno(err);
      if (errno === -5 || errno === -28) log(`error: ${(err as Error).message}`);
      cb(errno);
    });
  };

  return {
    init: (cb: Cb) => cb(0),
    access: (p: string, _mode: number, cb: Cb) => answer(cb, () => fs.access(p)),
    statfs: (_p: string, cb: Cb) => answer(cb, opts.statfs, (s) => [s]),
    getattr: (p: string, cb: Cb) => answer(cb, () => fs.getattr(p), (a) => [statOf(a)]),
    fgetattr: (p: string, _fd: number, cb: Cb) => answer(cb, () => fs.getattr(p), (a) => [statOf(a)]),
    readdir: (p: string, cb: Cb) => answer(cb, () => fs.readdir(p), (names) => [names]),
    readlink: (p: string, cb: Cb) => answer(cb, () => fs.readlink(p), (t) => [t]),
    chmod: (p: string, mode: number, cb: Cb) => answer(cb, () => fs.chmod(p, mode)),
    chown: (p: string, uid: number, gid: number, cb: Cb) => answer(cb, () => fs.chown(p, uid, gid)),
    utimens: (p: string, atime: number, mtime: number, cb: Cb) => answer(cb, () => fs.utimens(p, atime, mtime)),
    mkdir: (p: string, mode: number, cb: Cb) => answer(cb, () => fs.mkdir(p, mode, caller)),
    rmdir: (p: string, cb: Cb) => answer(cb, () => fs.rmdir(p)),
    mknod: (p: string, mode: number, _dev: number, cb: Cb) => answer(cb, () => fs.mknod(p, mode, caller)),
    symlink: (target: string, p: string, cb: Cb) => answer(cb, () => fs.symlink(target, p, caller)),
    unlink: (p: string, cb: Cb) => answer(cb, () => fs.unlink(p)),
    rename: (from: string, to: string, cb: Cb) => answer(cb, () => fs.rename(from, to)),
    link: (from: string, to: string, cb: Cb) => answer(cb, () => fs.link(from, to)),
    create: (p: string, mode: number, cb: Cb) => answer(cb, () => fs.create(p, mode, caller), (fh) => [fh]),
    open: (p: string, flags: number, cb: Cb) => answer(cb, () => fs.open(p, flags), (fh) => [fh]),
    read: (_p: string, fh: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) =>
      count(cb, () => fs.read(fh, buf, len, pos)),
    write: (_p: string, fh: number, buf: Buffer, len: number, pos: number, cb: (n: number) => void) =>
      count(cb, () => fs.write(fh, buf, len, pos)),
    truncate: (p: string, size: number, cb: Cb) => answer(cb, () => fs.truncate(p, size)),
    ftruncate: (_p: string, fh: number, size: number, cb: Cb) => answer(cb, () => fs.ftruncate(fh, size)),
    flush: (_p: string, fh: number, cb: Cb) => answer(cb, () => fs.flush(fh)),
    fsync: (_p: string, _datasync: number, fh: number, cb: Cb) => answer(cb, () => fs.fsync(fh)),
    release: (_p: string, fh: number, cb: Cb) => answer(cb, () => fs.release(fh)),
  };
}
