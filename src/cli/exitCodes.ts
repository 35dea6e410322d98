// The CLI's single error-to-exit-code mapping. 1 = the command ran and found a problem (verify
// failures), 2 = bad usage or input, 3 = environment (store locked, mount busy), 70 = internal bug.
import { UserError } from './errors';
import { CorruptStoreError, StoreError } from '../store/errors';

export function exitCodeFor(err: unknown): number {
  if (err instanceof UserError) return err.exitCode;
  if (err && typeof err === 'object' && 'exitCode' in err && typeof (err as any).exitCode === 'number') {
    return (err as any).exitCode;
  }
  // A damaged store is a problem found, like verify's; other store errors and the system's
  // (EACCES, ENOSPC, EROFS, ENOTCONN... from a path the user named) come from the environment.
  if (err instanceof CorruptStoreError) return 1;
  if (err instanceof StoreError) return 3;
  if (isSystemError(err)) return 3;
  return 70;
}

function isSystemError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    // yargs spreads one complaint over lines ("Invalid values:\n  Argument: ..."): keep it all, on one.
    const msg = err.message
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length > 0)
      .join(' ');
    if (exitCodeFor(err) === 70) return `internal error: ${msg} (set SLINKYFS_DEBUG=1 for a stack trace)`;
    return msg;
  }
  return String(err);
}
