// The verified read path of published objects (no FUSE: a real LMDB store and the Filesystem
// layer). Every page served matches the page table written when the object was published; a page
// that does not (a tampered recipe whose chunks are each well-formed) is refused with EIO, counted
// and never cached, and the table survives a restart so the check does too.
import fs from 'node:fs';
import { openSlinked, readObject } from '../../src/elf/slinkedFile';
import { digestToString } from '../../src/chunking/digest';
import { OBJECTS_DIR } from '../../src/pagecache';
import { PageVerificationError } from '../../src/pagecache/reader';
import { slinkPrograms } from '../elf/slinkHelpers';
import { openRig, tamperRecipe, tempDir, writeFile, type Rig } from './helpers';

let progDir: string;
let slinkedLs: string;
let rig: Rig;
let libc: { name: string; bytes: Buffer; codePage: number };

beforeAll(async () => {
  progDir = tempDir('pc-reads');
  slinkedLs = (await slinkPrograms(['ls'], progDir)).get('ls')!;
  const file = await openSlinked(slinkedLs);
  const o = file.manifest.objects.find((x) => x.name === 'libc.so.6')!;
  libc = { name: digestToString(o.digest), bytes: await readObject(file, o), codePage: o.runs[0].firstPage + 5 };
});
afterAll(() => fs.rmSync(progDir, { recursive: true, force: true }));
beforeEach(async () => {
  rig = await openRig();
  await writeFile(rig.fs, '/ls', fs.readFileSync(slinkedLs));
  await rig.pc.idle();
});
afterEach(async () => {
  await rig.close();
  fs.rmSync(rig.dir, { recursive: true, force: true });
});

const inoOf = async (name: string) => (await rig.fs.getattr(`${OBJECTS_DIR}/${name}`)).ino;

test('reads at any offset and length return the object bytes, clipped at its end', async () => {
  const ino = await inoOf(libc.name);
  expect(rig.pc.isObject(ino)).toBe(true);
  const size = libc.bytes.length;
  for (const [off, len] of [[0, 4096], [100, 10], [4095, 2], [8192, 131072], [size - 5000, 131072], [size - 1, 1], [size, 4096], [size + 8192, 10]]) {
    const got = await rig.pc.read(ino, off, len);
    expect(got.equals(libc.bytes.subarray(off, Math.min(off + len, size)))).toBe(true);
  }
});

test('the first read of a page is a miss, the next one a hit served from the pool', async () => {
  const ino = await inoOf(libc.name);
  await rig.pc.read(ino, 0, 3 * 4096);
  const s1 = (await rig.pc.stats()).gdt;
  await rig.pc.read(ino, 4096, 4096);
  const s2 = (await rig.pc.stats()).gdt;
  expect({ misses: s1.misses, hits: s1.hits }).toEqual({ misses: 3, hits: 0 });
  expect({ misses: s2.misses, hits: s2.hits, entries: s2.entries }).toEqual({ misses: 3, hits: 1, entries: 3 });
});

test('a tampered page is refused with EIO, counted, and not cached; the pages around it still read', async () => {
  const ino = await inoOf(libc.name);
  const at = libc.codePage * 4096;
  await tamperRecipe(rig.store, rig.source, ino, at + 123);
  const err = await rig.pc.read(ino, at, 4096).then(() => undefined, (e) => e);
  expect(err).toBeInstanceOf(PageVerificationError);
  expect(err.errno).toBe(5);
  const s = (await rig.pc.stats()).gdt;
  expect(s.verificationFailures).toBe(1);
  expect(s.entries).toBe(0);
  // A read spanning it fails too; one beside it does not (unless the tampered chunk covers it).
  await expect(rig.pc.read(ino, at - 4096, 3 * 4096)).rejects.toBeInstanceOf(PageVerificationError);
  const e = rig.store.extents(ino, at, at + 1)[0];
  const clean = e.offset + e.length + 4096 <= libc.bytes.length ? Math.ceil((e.offset + e.length) / 4096) * 4096 : 0;
  expect((await rig.pc.read(ino, clean, 4096)).equals(libc.bytes.subarray(clean, clean + 4096))).toBe(true);
  expect((await rig.pc.stats()).gdt.verificationFailures).toBe(2); // the spanning read failed on it once more
});

test('after a restart the stored page table still catches a tampered page', async () => {
  const ino = await inoOf(libc.name);
  await rig.close();
  rig = await openRig(rig.dir);
  expect(rig.pc.isObject(ino)).toBe(true);
  await tamperRecipe(rig.store, rig.source, ino, libc.codePage * 4096);
  await expect(rig.pc.read(ino, libc.codePage * 4096, 4096)).rejects.toBeInstanceOf(PageVerificationError);
  expect((await rig.pc.read(ino, 0, 4096)).equals(libc.bytes.subarray(0, 4096))).toBe(true);
  expect((await rig.pc.stats()).gdt.verificationFailures).toBe(1);
});

test('a lost page table is rebuilt from the object, checked against its name', async () => {
  const ino = await inoOf(libc.name);
  await rig.close();
  rig = await openRig(rig.dir);
  // Remove the table behind the page cache's back (as a damaged store would lose it).
  const tableIno = (await rig.fs.getattr(`/.slinky/pages/${libc.name}`)).ino;
  await rig.fs.truncate(`/.slinky/pages/${libc.name}`, 10);
  expect(rig.store.getInode(tableIno)!.size).toBe(10);
  expect((await rig.pc.read(ino, 8192, 4096)).equals(libc.bytes.subarray(8192, 12288))).toBe(true);
  expect((await rig.fs.getattr(`/.slinky/pages/${libc.name}`)).size).toBeGreaterThan(10);
});

test('an object that no longer matches its name, with no table to go by, is refused whole', async () => {
  const ino = await inoOf(libc.name);
  await rig.close();
  rig = await openRig(rig.dir);
  await rig.fs.truncate(`/.slinky/pages/${libc.name}`, 0);
  await tamperRecipe(rig.store, rig.source, ino, libc.codePage * 4096);
  await expect(rig.pc.read(ino, 0, 4096)).rejects.toBeInstanceOf(PageVerificationError);
  await expect(rig.pc.read(ino, 0, 4096)).rejects.toBeInstanceOf(PageVerificationError);
  expect((await rig.pc.stats()).gdt).toMatchObject({ verificationFailures: 1, entries: 0 });
});
