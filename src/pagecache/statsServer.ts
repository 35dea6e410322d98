// The page cache's statistics live in the daemon's memory; `slinkyfs stats --pages` asks for them
// over a Unix socket in the store directory (docs/FORMAT.md, "Page cache": one request line
// `stats`, one JSON line back).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const SOCKET_NAME = 'pagecache.sock';
/** Linux's limit on a socket path (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

export function socketPath(storeDir: string): string {
  return path.join(storeDir, SOCKET_NAME);
}

export class NoDaemonError extends Error {
  override name = 'NoDaemonError';
}

/** Serves `answer()` to each client; resolves with a close function. */
export async function serveStats(file: string, answer: () => Promise<unknown>, log: (l: string) => void): Promise<() => Promise<void>> {
  if (file.length > MAX_SOCKET_PATH) {
    log(`page cache: no statistics socket (path longer than ${MAX_SOCKET_PATH} bytes: ${file})`);
    return async () => undefined;
  }
  await fs.promises.rm(file, { force: true }); // left by a daemon that died: the store lock is ours
  const server = net.createServer((sock) => {
    let text = '';
    sock.setEncoding('utf8');
    sock.setTimeout(10000, () => sock.destroy());
    sock.on('error', () => undefined);
    sock.on('data', (d: string) => {
      text += d;
      if (text.length > 1024) return void sock.destroy();
      if (!text.includes('\n')) return;
      const request = text.slice(0, text.indexOf('\n')).trim();
      sock.removeAllListeners('data');
      if (request !== 'stats') return void sock.end(`${JSON.stringify({ error: `unknown request ${JSON.stringify(request)}` })}\n`);
      answer().then(
        (value) => sock.end(`${JSON.stringify(value)}\n`),
        (err) => sock.end(`${JSON.stringify({ error: (err as Error).message })}\n`),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => resolve());
  });
  server.unref();
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      fs.rmSync(file, { force: true });
    });
}

/** Asks the daemon serving the store at `storeDir`. */
export function requestStats(storeDir: string, timeoutMs = 30000): Promise<unknown> {
  const file = socketPath(storeDir);
  return new Promise((resolve, reject) => {
    const sock = net.connect(file);
    let text = '';
    sock.setEncoding('utf8');
    sock.setTimeout(timeoutMs, () => {
      sock.destroy();
      reject(new NoDaemonError(`the daemon of ${storeDir} did not answer within ${timeoutMs / 1000} s`));
    });
    sock.on('connect', () => sock.write('stats\n'));
    sock.on('data', (d: string) => (text += d));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new NoDaemonError(`no running slinkyfs daemon serves ${storeDir} (page cache statistics live in the daemon)`));
      else reject(err);
    });
    sock.on('end', () => {
      try {
        const value = JSON.parse(text) as { error?: string };
        if (value && typeof value === 'object' && typeof value.error === 'string') reject(new Error(value.error));
        else resolve(value);
      } catch {
        reject(new Error('the daemon sent a malformed answer'));
      }
    });
  });
}
