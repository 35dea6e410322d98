// The FUSE operations of the daemon (src/fs/fuseOps.ts) over a real store, mounted in this
// process through the low-level binding and used by child processes: what the kernel is told at
// open, observed through the requests that reach the operations. Every access to the mount goes
// through an asynchronous child process (a synchronous one would block the thread that answers).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Filesystem } from '../../src/fs/filesystem';
import { toErrno } from '../../src/fs/errno';
import { makeLowLevelOps } from '../../src/fs/fuseOps';
import { mountLowLevel, type LowLevelOps, type LowLevelSession } from '../../src/fs/lowlevel';
import { LocalChunkSource } from '../../src/store/localSource';
import { Store } from '../../src/store/store';

function out(cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', cmd], { timeout: 30000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

let dir: string;
let store: Store;
let session: LowLevelSession;
let mp: string;
const calls = new Map<string, number>();
const count = (op: string) => calls.get(op) ?? 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-fuseops-'));
  mp = path.join(dir, 'mnt');
  fs.mkdirSync(mp);
  store = await Store.open(path.join(dir, 'store'));
  const filesystem = new Filesystem(store, new LocalChunkSource(store), {});
  const ops = makeLowLevelOps(filesystem, { statfs: async () => ({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 }) });
  const counted: LowLevelOps = { ...ops };
  for (const op of ['open', 'flush', 'release'] as const) {
    const inner = ops[op] as (...a: unknown[]) => unknown;
    (counted as Record<string, unknown>)[op] = (...a: unknown[]) => {
      calls.set(op, count(op) + 1);
      return inner(...a);
    };
  }
  session = await mountLowLevel(mp, counted, { defaultPermissions: true, toErrno });
});
afterAll(async () => {
  await session?.unmount();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('closing a file opened read-only sends no FLUSH (the open says noflush); closing a writer still does', async () => {
  await out(`printf 'hello' > ${mp}/f`);
  const [o0, f0] = [count('open'), count('flush')];
  expect(await out(`cat ${mp}/f`)).toBe('hello');
  expect([count('open') - o0, count('flush') - f0]).toEqual([1, 0]);
  await out(`printf ' world' >> ${mp}/f`);
  expect(count('open') - o0).toBe(2);
  expect(count('flush') - f0).toBeGreaterThan(0); // one per close of a descriptor (bash dup2s the redirect: 2)
  expect(await out(`cat ${mp}/f`)).toBe('hello world');
});

test('what a writer has written and not yet flushed is read by a read-only open, and kept after that reader closes', async () => {
  const seen = await out(`exec 3>${mp}/g; printf 'pending' >&3; cat ${mp}/g; echo; exec 3>&-; cat ${mp}/g`);
  expect(seen).toBe('pending\npending');
});
