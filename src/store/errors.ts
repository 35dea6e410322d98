// Typed store errors. The FUSE boundary (src/fs/errno.ts) maps them to errno values and the CLI
// boundary to exit codes; nothing else needs to know about either.
export class StoreError extends Error {
  override name = 'StoreError';
}
/** No such inode or directory entry (ENOENT). */
export class NotFoundError extends StoreError {
  override name = 'NotFoundError';
}
export class ExistsError extends StoreError {
  override name = 'ExistsError';
}
export class NotDirError extends StoreError {
  override name = 'NotDirError';
}
export class IsDirError extends StoreError {
  override name = 'IsDirError';
}
export class NotEmptyError extends StoreError {
  override name = 'NotEmptyError';
}
export class InvalidError extends StoreError {
  override name = 'InvalidError';
}
/** The store's size limit or the disk is full (ENOSPC). Nothing of the failed change was kept. */
export class StoreFullError extends StoreError {
  override name = 'StoreFullError';
}
/** Another process holds the store (a running daemon). */
export class StoreLockedError extends StoreError {
  override name = 'StoreLockedError';
  readonly exitCode = 3;
}
/** A chunk the recipe needs is in no source, or its bytes do not match its digest. */
export class ChunkMissingError extends StoreError {
  override name = 'ChunkMissingError';
}
export class CorruptStoreError extends StoreError {
  override name = 'CorruptStoreError';
}

/** An error from LMDB itself: lmdb-js gives its status as a number (MDB_* codes are negative). */
export function isLmdbError(err: unknown): boolean {
  return typeof (err as { code?: unknown } | undefined)?.code === 'number';
}

/** True for the errors LMDB and the OS raise when the disk or the map is full. */
export function isSpaceError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (!e) return false;
  const text = `${String(e.code ?? '')} ${String(e.message ?? '')}`;
  return /ENOSPC|MDB_MAP_FULL|No space left|MDB_MAP_RESIZED|-30792|\b28\b/.test(text);
}
