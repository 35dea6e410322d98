// Where the store lives when the user does not say: $XDG_DATA_HOME/slinkyfs, else
// ~/.local/share/slinkyfs (the XDG base-directory convention).
import os from 'node:os';
import path from 'node:path';

export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(env.HOME || os.homedir(), '.local', 'share');
  return path.join(base, 'slinkyfs');
}
