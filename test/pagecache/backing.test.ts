// Which objects get their twin as passthrough backing (src/pagecache/backing.ts): only those
// whose twin some process maps. Real files, real /proc; the session is a recorder, since what is
// tested is the choice, not the kernel (passthrough.test.ts runs the kernel's side).
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { digestOf } from '../../src/chunking/digest';
import { ObjectIndex } from '../../src/pagecache/objectIndex';
import { TwinFinder } from '../../src/pagecache/twins';
import { TwinBacking } from '../../src/pagecache/backing';
import { tempDir } from './helpers';

let dir: string;
let mapper: ChildProcess | undefined;
beforeEach(() => {
  dir = tempDir('backing');
});
afterEach(async () => {
  if (mapper && mapper.exitCode === null) {
    const gone = new Promise((r) => mapper!.once('exit', r));
    mapper.kill('SIGKILL');
    await gone;
  }
  mapper = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A process that maps `file` and waits; resolves once the mapping is in its /proc maps. */
async function mapIn(file: string): Promise<void> {
  const script = 'import mmap, sys\nf = open(sys.argv[1], "rb")\nm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\nprint("mapped", flush=True)\nsys.stdin.read()';
  mapper = spawn('python3', ['-c', script, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    mapper!.stdout!.once('data', () => resolve());
    mapper!.once('exit', (code) => reject(new Error(`python3 exited with ${code}`)));
  });
}

async function backed(files: Record<string, Buffer>): Promise<string[]> {
  const index = new ObjectIndex();
  const calls: number[] = [];
  const session = { setBacking: (ino: number) => (calls.push(ino), 1) };
  const backing = new TwinBacking(session, index, new TwinFinder({ dirs: [dir], uid: process.getuid!() }), () => undefined);
  index.watch((ino, isObject) => isObject && backing.add(ino));
  let ino = 100;
  for (const [name, bytes] of Object.entries(files)) index.add({ name, digest: digestOf(bytes), ino: ino++, size: bytes.length });
  await backing.idle();
  return calls.map((i) => index.get(i)!.name);
}

test('an object whose twin a process maps passes through; one whose twin nobody maps does not', async () => {
  const used = randomBytes(8192);
  const idle = randomBytes(8192 + 4096);
  fs.writeFileSync(path.join(dir, 'libused.so'), used);
  fs.writeFileSync(path.join(dir, 'libidle.so'), idle);
  await mapIn(path.join(dir, 'libused.so'));
  expect(await backed({ used, idle })).toEqual(['used']);
});

test('nobody mapping any twin, nothing passes through', async () => {
  const a = randomBytes(5000);
  fs.writeFileSync(path.join(dir, 'liba.so'), a);
  expect(await backed({ a })).toEqual([]);
});
