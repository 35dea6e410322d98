// seed: local files as chunk sources. A get takes exactly the chunks the seeded files share
// with what it needs from them, and re-verifies each one: a seeded file that changed is not
// trusted.
import fs from 'node:fs';
import path from 'node:path';
import { slinkyfs } from '../helpers/cli';
import { tempDir } from '../elf/slinkHelpers';
import { type Sender, type Served, buildSender, runCli, sha, startServe, tally, uniqueChunks } from './netHelpers';

const LIBS = ['/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2'];
let sender: Sender;
let served: Served;
let work: string;

beforeAll(async () => {
  sender = await buildSender(['ls']);
  served = await startServe(sender.store);
  work = tempDir('net-seed');
}, 120_000);

afterAll(async () => {
  await served?.stop();
  if (sender) fs.rmSync(sender.dir, { recursive: true, force: true });
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A directory of copies of the libraries, seeded into a fresh store. */
function seeded(tag: string): { store: string; libs: string[] } {
  const dir = path.join(work, tag, 'libs');
  fs.mkdirSync(dir, { recursive: true });
  const libs = LIBS.map((l) => {
    const p = path.join(dir, path.basename(l));
    fs.copyFileSync(fs.realpathSync(l), p);
    return p;
  });
  const store = path.join(work, tag, 'store');
  const r = slinkyfs(['seed', dir, '--store', store, '--json']);
  expect(r.status).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ files: 2, unchanged: 0 });
  return { store, libs };
}

test('get takes the chunks the seeded libraries share with the program; only the rest crosses the wire', async () => {
  const { store, libs } = seeded('a');
  const program = uniqueChunks([sender.files.get('ls')!]);
  const fromLibs = uniqueChunks(libs);
  const shared = new Map([...program].filter(([k]) => fromLibs.has(k)));
  const out = path.join(work, 'ls-a');
  const r = await runCli(['get', served.url, '/bin/ls', '-o', out, '--store', store, '--json']);
  expect(r.code).toBe(0);
  const s = JSON.parse(r.stdout);
  expect(s.seededChunks).toBe(shared.size);
  expect(s.seededBytes).toBe(tally(shared).bytes);
  expect(s.seededChunks).toBeGreaterThan(program.size / 2); // libc is most of a slinked ls
  expect(s.fetchedChunks).toBe(program.size - shared.size);
  expect(sha(out)).toBe(sha(sender.files.get('ls')!));
});

test('into a store, seeded chunks are copied in and the store verifies', async () => {
  const { store } = seeded('b');
  const r = await runCli(['get', served.url, '/bin/ls', '--into', '/bin', '--store', store, '--json']);
  expect(r.code).toBe(0);
  const s = JSON.parse(r.stdout);
  expect(s.seededChunks + s.fetchedChunks).toBe(s.chunks);
  expect(slinkyfs(['verify', '--store', store]).stdout).toMatch(/no damage/);
});

test('a seeded file that changed after seeding is re-verified and not used', async () => {
  const { store, libs } = seeded('c');
  for (const l of libs) fs.writeFileSync(l, Buffer.alloc(fs.statSync(l).size));
  const out = path.join(work, 'ls-c');
  const r = await runCli(['get', served.url, '/bin/ls', '-o', out, '--store', store, '--json']);
  expect(r.code).toBe(0);
  const s = JSON.parse(r.stdout);
  expect(s.seededChunks).toBe(0);
  expect(s.fetchedChunks).toBe(s.chunks);
  expect(sha(out)).toBe(sha(sender.files.get('ls')!));
});

test('seeding again skips unchanged files', () => {
  const { store } = seeded('d');
  const r = slinkyfs(['seed', path.join(work, 'd', 'libs'), '--store', store, '--json']);
  expect(JSON.parse(r.stdout)).toMatchObject({ files: 0, unchanged: 2 });
});

test('seeding a path that does not exist is a one-line error', () => {
  const r = slinkyfs(['seed', path.join(work, 'nowhere'), '--store', path.join(work, 'e')]);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${path.join(work, 'nowhere')} does not exist`);
});

test('seeding chunks a file exactly as the store does, object boundaries included, across windows', async () => {
  const { chunkOpenFile } = await import('../../src/store/seedSource');
  const { chunkBuffer } = await import('../../src/chunking/chunker');
  // ld.so carries a page-aligned ELF header inside it; the big file puts one past the first window.
  const ld = fs.readFileSync(fs.realpathSync(LIBS[1]));
  const big = Buffer.concat([fs.readFileSync(sender.files.get('ls')!), Buffer.alloc(6 << 20, 7), fs.readFileSync(sender.files.get('ls')!)]);
  for (const [name, bytes] of [['ld.so', ld], ['big', big]] as const) {
    const file = path.join(work, `chunked-${name}`);
    fs.writeFileSync(file, bytes);
    const fh = await fs.promises.open(file, 'r');
    try {
      const got = (await chunkOpenFile(fh, 0, bytes.length)).map((c) => [c.offset, c.length, c.digest.toString('hex')]);
      const want = chunkBuffer(bytes).map((c) => [c.offset, c.length, c.digest.toString('hex')]);
      expect(got).toEqual(want);
    } finally {
      await fh.close();
    }
  }
});

test('libraries found by digest in the seeds build what chunks cannot: the peer sends only the rest', async () => {
  const { store } = seeded('f');
  const { chunkBuffer } = await import('../../src/chunking/chunker');
  const out = path.join(work, 'ls-f');
  const r = await runCli(['get', served.url, '/bin/ls', '-o', out, '--store', store, '--json']);
  expect(r.code).toBe(0);
  const s = JSON.parse(r.stdout);
  expect(sha(out)).toBe(sha(sender.files.get('ls')!));
  // Every byte of a chunk the seeds did not have came from a local object or from the peer.
  expect(s.objectBytes + s.fetchedBytes).toBe(s.chunkBytes - s.seededBytes);
  expect(s.objectBytes).toBeGreaterThan(0); // the libraries' last pages and their page digests
  // The recipe arrived compact: all protocol bytes together are less than the plain recipe.
  const plainRecipe = 20 + 37 * chunkBuffer(fs.readFileSync(sender.files.get('ls')!)).length;
  expect(s.receivedBytes - s.chunkPayloadBytes).toBeLessThan(plainRecipe);
});
