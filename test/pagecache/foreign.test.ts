// A /.slinky tree this store's daemon did not write (fetched from a peer, copied from another
// store) gets no trust: its page tables carry no valid authentication under this store's key, so
// each object is checked whole against its name before any page of it is served, and an object
// file that appears while the daemon runs is served through the same verified path.
import fs from 'node:fs';
import { openSlinked, readObject } from '../../src/elf/slinkedFile';
import { digestToString } from '../../src/chunking/digest';
import { makeLowLevelOps } from '../../src/fs/fuseOps';
import { OBJECTS_DIR } from '../../src/pagecache';
import { encodePageTable, hashPage, type PageTable } from '../../src/pagecache/pageTable';
import { PageVerificationError } from '../../src/pagecache/reader';
import type { RequestContext } from '../../src/fs/lowlevel';
import { slinkPrograms } from '../elf/slinkHelpers';
import { openRig, readFile, tamperRecipe, tempDir, writeFile, type Rig } from './helpers';

let progDir: string;
let libc: { name: string; bytes: Buffer; codePage: number };
let slinkedTrue: string;
let rig: Rig;
const req: RequestContext = { uid: 0, gid: 0, pid: 1, umask: 0o22 };

beforeAll(async () => {
  progDir = tempDir('pc-foreign');
  slinkedTrue = (await slinkPrograms(['true'], progDir)).get('true')!;
  const file = await openSlinked(slinkedTrue);
  const o = file.manifest.objects.find((x) => x.name === 'libc.so.6')!;
  libc = { name: digestToString(o.digest), bytes: await readObject(file, o), codePage: o.runs[0].firstPage + 3 };
});
afterAll(() => fs.rmSync(progDir, { recursive: true, force: true }));
beforeEach(async () => {
  rig = await openRig();
});
afterEach(async () => {
  await rig.close();
  fs.rmSync(rig.dir, { recursive: true, force: true });
});

/** A table for `bytes` as another store (another key) would have written it. */
function foreignTable(bytes: Buffer, digest: Buffer): Buffer {
  const pages = Math.ceil(bytes.length / 4096);
  const hashes = Buffer.concat(Array.from({ length: pages }, (_, p) => hashPage(bytes.subarray(p * 4096, (p + 1) * 4096), 'sha256')));
  const t: PageTable = { object: digest as PageTable['object'], objectSize: bytes.length, algorithmId: 1, hashLength: 32, pageCount: pages, flags: Buffer.alloc(pages), hashes };
  return encodePageTable(t, Buffer.alloc(32, 7));
}

test('a table from another store that vouches for tampered bytes is not believed: the object is refused whole', async () => {
  await writeFile(rig.fs, '/true', fs.readFileSync(slinkedTrue));
  await rig.pc.idle();
  const ino = (await rig.fs.getattr(`${OBJECTS_DIR}/${libc.name}`)).ino;
  await rig.close();
  rig = await openRig(rig.dir);
  // The object's recipe is changed, and its table replaced by one that matches the new bytes.
  await tamperRecipe(rig.store, rig.source, ino, libc.codePage * 4096);
  const tampered = await readFile(rig.fs, `${OBJECTS_DIR}/${libc.name}`);
  await rig.fs.unlink(`/.slinky/pages/${libc.name}`);
  const digest = Buffer.concat([Buffer.from([1]), Buffer.from(libc.name.slice(7), 'hex')]);
  await writeFile(rig.fs, `/.slinky/pages/${libc.name}`, foreignTable(tampered, digest), 0o444);
  await expect(rig.pc.read(ino, libc.codePage * 4096, 4096)).rejects.toBeInstanceOf(PageVerificationError);
  await expect(rig.pc.read(ino, 0, 4096)).rejects.toBeInstanceOf(PageVerificationError);
});

test('an object file with a foreign table but the right bytes is served, after its table is rebuilt', async () => {
  await writeFile(rig.fs, '/true', fs.readFileSync(slinkedTrue));
  await rig.pc.idle();
  const ino = (await rig.fs.getattr(`${OBJECTS_DIR}/${libc.name}`)).ino;
  await rig.close();
  rig = await openRig(rig.dir);
  await rig.fs.unlink(`/.slinky/pages/${libc.name}`);
  const digest = Buffer.concat([Buffer.from([1]), Buffer.from(libc.name.slice(7), 'hex')]);
  await writeFile(rig.fs, `/.slinky/pages/${libc.name}`, foreignTable(libc.bytes, digest), 0o444);
  const before = (await rig.fs.getattr(`/.slinky/pages/${libc.name}`)).ino;
  expect((await rig.pc.read(ino, 8192, 4096)).equals(libc.bytes.subarray(8192, 12288))).toBe(true);
  expect((await rig.fs.getattr(`/.slinky/pages/${libc.name}`)).ino).not.toBe(before);
});

test('an object file that appears in /.slinky/objects while the daemon runs is served through the verified path', async () => {
  // Another slinked file's publishing made the directory; then a file arrives there behind the
  // page cache's back, as a tree from a peer would: the right name, tampered content.
  await writeFile(rig.fs, '/true', fs.readFileSync(slinkedTrue));
  await rig.pc.idle();
  const fake = Buffer.from(libc.bytes);
  fake[libc.codePage * 4096 + 5] ^= 1;
  const name = `sha256-${'ab'.repeat(32)}`; // a name no object was published under
  await writeFile(rig.fs, `${OBJECTS_DIR}/${name}`, fake, 0o444);
  const ops = rig.pc.wrapOps(makeLowLevelOps(rig.fs, { statfs: async () => ({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 }) }));
  const objectsDir = (await rig.fs.getattr(OBJECTS_DIR)).ino;
  const entry = await ops.lookup!(req, objectsDir, name);
  expect(rig.pc.isObject(entry.attr.ino)).toBe(true);
  const open = await ops.open!(req, entry.attr.ino, 0);
  await expect(Promise.resolve(ops.read!(req, entry.attr.ino, open.fh ?? 0, 0, 4096))).rejects.toBeInstanceOf(PageVerificationError);
});

test('a whole /.slinky tree that appears while the daemon runs, before anything was published, is found by lookups and verified', async () => {
  await rig.fs.mkdir('/.slinky', 0o755, { uid: 0, gid: 0 });
  await rig.fs.mkdir('/.slinky/objects', 0o755, { uid: 0, gid: 0 });
  const fake = Buffer.from(libc.bytes);
  fake[libc.codePage * 4096 + 5] ^= 1;
  await writeFile(rig.fs, `${OBJECTS_DIR}/${libc.name}`, fake, 0o444);
  const ops = rig.pc.wrapOps(makeLowLevelOps(rig.fs, { statfs: async () => ({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 }) }));
  const slinky = await ops.lookup!(req, 1, '.slinky');
  const objects = await ops.lookup!(req, slinky.attr.ino, 'objects');
  const entry = await ops.lookup!(req, objects.attr.ino, libc.name);
  expect(rig.pc.isObject(entry.attr.ino)).toBe(true);
  expect(rig.pc.isProtected(objects.attr.ino)).toBe(true);
  await expect(Promise.resolve(ops.read!(req, entry.attr.ino, 0, 0, 4096))).rejects.toBeInstanceOf(PageVerificationError);
  expect(() => ops.unlink!(req, objects.attr.ino, libc.name)).toThrow(/read-only/);
});
