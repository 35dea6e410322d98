// Errors a user can cause (bad arguments, bad input files, a busy store). The CLI boundary prints
// their message as one line and exits with their code; anything else is a bug and is reported
// as such (still one line unless SLINKYFS_DEBUG is set).
export class UserError extends Error {
  override name = 'UserError';
  constructor(message: string, readonly exitCode = 2) {
    super(message);
  }
}
