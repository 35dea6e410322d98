// The CLI's single error-to-exit-code mapping. 1 = the command ran and found a problem (verify
// failures), 2 = bad usage or input, 3 = environment (store locked, mount busy), 70 = internal bug.
import { UserError } from './errors';

export function exitCodeFor(err: unknown): number {
  if (err instanceof UserError) return err.exitCode;
  if (err && typeof err === 'object' && 'exitCode' in err && typeof (err as any).exitCode === 'number') {
    return (err as any).exitCode;
  }
  return 70;
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const msg = err.message.split('\n')[0];
    if (exitCodeFor(err) === 70) return `internal error: ${msg} (set SLINKYFS_DEBUG=1 for a stack trace)`;
    return msg;
  }
  return String(err);
}
