// Running the real `slinkyfs` command (compiled in dist/ by `make build`) from tests.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'slinkyfs');

export function slinkyfs(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    input: opts.input,
    env: opts.env ?? process.env,
    timeout: opts.timeout ?? 120000,
  });
}

/** Run a shell command; the test process is not the daemon, so blocking here is safe. */
export function sh(cmd: string, opts: { cwd?: string; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync('bash', ['-c', cmd], { encoding: 'utf8', cwd: opts.cwd, timeout: opts.timeout ?? 300000 });
}
