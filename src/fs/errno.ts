// The one place where typed errors become errno values for the kernel.
import {
  ChunkMissingError,
  CorruptStoreError,
  ExistsError,
  InvalidError,
  IsDirError,
  NotDirError,
  NotEmptyError,
  NotFoundError,
  StoreFullError,
  isSpaceError,
} from '../store/errors';

export const E = {
  EPERM: -1,
  ENOENT: -2,
  ENXIO: -6,
  EIO: -5,
  E2BIG: -7,
  EBADF: -9,
  EACCES: -13,
  EEXIST: -17,
  EXDEV: -18,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  EFBIG: -27,
  ENOSPC: -28,
  EROFS: -30,
  EMLINK: -31,
  ERANGE: -34,
  ENAMETOOLONG: -36,
  ENOSYS: -38,
  ENOTEMPTY: -39,
  ELOOP: -40,
  ENODATA: -61,
  ENOTSUP: -95,
} as const;

/** Errors raised to signal a specific errno directly (e.g. EBADF for an unknown handle). */
export class ErrnoError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

export function toErrno(err: unknown): number {
  if (err instanceof ErrnoError) return err.errno;
  if (err instanceof NotFoundError) return E.ENOENT;
  if (err instanceof ExistsError) return E.EEXIST;
  if (err instanceof NotDirError) return E.ENOTDIR;
  if (err instanceof IsDirError) return E.EISDIR;
  if (err instanceof NotEmptyError) return E.ENOTEMPTY;
  if (err instanceof InvalidError) return E.EINVAL;
  if (err instanceof StoreFullError || isSpaceError(err)) return E.ENOSPC;
  if (err instanceof ChunkMissingError || err instanceof CorruptStoreError) return E.EIO;
  return E.EIO;
}
