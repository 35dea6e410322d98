// Publishing embedded objects (no FUSE: a real LMDB store and the Filesystem layer, hooked as the
// daemon hooks them). A slinked file committed to the store makes each of its objects a
// read-only file /.slinky/objects/<digest> with a page table; nothing the file claims is
// believed without checking the bytes, and no manifest can make the daemon throw or hang.
import fs from 'node:fs';
import { openSlinked, readObject } from '../../src/elf/slinkedFile';
import { decodeTrailer, encodeManifest, encodeTrailer, decodeManifest, TRAILER_SIZE, type Manifest } from '../../src/elf/manifest';
import { pageDigest } from '../../src/elf/pageDigests';
import { digestToString } from '../../src/chunking/digest';
import { decodePageTable, PAGE_CODE, storeTableKey } from '../../src/pagecache/pageTable';
import { OBJECTS_DIR } from '../../src/pagecache';
import { slinkPrograms } from '../elf/slinkHelpers';
import { chunkBuffer } from '../../src/chunking/chunker';
import { encodeChunk } from '../../src/chunking/compress';
import { addNode } from '../../src/net/storeTree';
import { ROOT_INO } from '../../src/store/records';
import { names, openRig, readFile, ROOT, tempDir, writeFile, type Rig } from './helpers';

let progDir: string;
let slinked: Map<string, string>;
let rig: Rig;

beforeAll(async () => {
  progDir = tempDir('pc-progs');
  slinked = await slinkPrograms(['true', 'ls', 'cat'], progDir);
});
afterAll(() => fs.rmSync(progDir, { recursive: true, force: true }));
beforeEach(async () => {
  rig = await openRig();
});
afterEach(async () => {
  await rig.close();
  fs.rmSync(rig.dir, { recursive: true, force: true });
});

const objectsOf = async (name: string) => (await openSlinked(slinked.get(name)!)).manifest.objects;
const publishedNames = () => names(rig.fs, OBJECTS_DIR);
const stats = () => rig.pc.stats();

test('each object of a committed slinked file is published once, byte for byte, read-only and owned by the daemon', async () => {
  const file = await openSlinked(slinked.get('ls')!);
  await writeFile(rig.fs, '/ls', fs.readFileSync(file.path));
  await rig.pc.idle();
  expect(await publishedNames()).toEqual(file.manifest.objects.map((o) => digestToString(o.digest)).sort());
  for (const o of file.manifest.objects) {
    const p = `${OBJECTS_DIR}/${digestToString(o.digest)}`;
    expect((await readFile(rig.fs, p)).equals(await readObject(file, o))).toBe(true);
    const a = await rig.fs.getattr(p);
    expect({ mode: a.mode, uid: a.uid, gid: a.gid }).toEqual({ mode: 0o100444, uid: ROOT.uid, gid: ROOT.gid });
  }
  expect((await stats()).published).toMatchObject({ slinkedFiles: 1, published: 5, alreadyPublished: 0, refused: 0, malformed: 0, objects: 5 });
});

test('a second slinked file publishes only the objects not published yet', async () => {
  await writeFile(rig.fs, '/ls', fs.readFileSync(slinked.get('ls')!));
  await writeFile(rig.fs, '/cat', fs.readFileSync(slinked.get('cat')!));
  await rig.pc.idle();
  const ls = new Set((await objectsOf('ls')).map((o) => digestToString(o.digest)));
  const cat = (await objectsOf('cat')).map((o) => digestToString(o.digest));
  const fresh = cat.filter((n) => !ls.has(n));
  expect(fresh.length).toBeGreaterThan(0); // cat's own program object at least
  expect((await stats()).published).toMatchObject({ slinkedFiles: 2, published: ls.size + fresh.length, alreadyPublished: cat.length - fresh.length });
});

test("an object file shares every chunk but its last with the slinked file it came from", async () => {
  const bytes = fs.readFileSync(slinked.get('ls')!);
  const ino = await writeFile(rig.fs, '/ls', bytes);
  await rig.pc.idle();
  const fileChunks = new Set(rig.store.extents(ino).map((e) => e.digest.toString('hex')));
  for (const o of await objectsOf('ls')) {
    const objIno = (await rig.fs.getattr(`${OBJECTS_DIR}/${digestToString(o.digest)}`)).ino;
    const ext = rig.store.extents(objIno);
    expect(ext.slice(0, -1).every((e) => fileChunks.has(e.digest.toString('hex')))).toBe(true);
  }
});

test('publishing stores nothing new but the last chunk of each object and the page tables', async () => {
  const plain = await openRig(undefined, { hook: false });
  try {
    const ino = await writeFile(plain.fs, '/ls', fs.readFileSync(slinked.get('ls')!));
    const hex = (d: Buffer) => d.toString('hex');
    const before = new Set([...plain.store.allChunkRefs()].map((c) => hex(c.digest)));
    await plain.pc.onContentCommitted(ino);
    await plain.pc.idle();
    const added = [...plain.store.allChunkRefs()].map((c) => hex(c.digest)).filter((d) => !before.has(d));
    const allowed = new Set<string>();
    for (const o of await objectsOf('ls')) {
      const name = digestToString(o.digest);
      const objectExtents = plain.store.extents((await plain.fs.getattr(`${OBJECTS_DIR}/${name}`)).ino);
      allowed.add(hex(objectExtents[objectExtents.length - 1].digest));
      for (const e of plain.store.extents((await plain.fs.getattr(`/.slinky/pages/${name}`)).ino)) allowed.add(hex(e.digest));
    }
    expect(added.length).toBeGreaterThan(0);
    expect(added.filter((d) => !allowed.has(d))).toEqual([]);
  } finally {
    await plain.close();
    fs.rmSync(plain.dir, { recursive: true, force: true });
  }
});

test("the page table holds every page's digest, and its code pages are the slinked file's digest table", async () => {
  const file = await openSlinked(slinked.get('true')!);
  await writeFile(rig.fs, '/true', fs.readFileSync(file.path));
  await rig.pc.idle();
  for (const o of file.manifest.objects) {
    const name = digestToString(o.digest);
    const table = decodePageTable(await readFile(rig.fs, `/.slinky/pages/${name}`), o.digest, storeTableKey(rig.dir));
    const bytes = await readObject(file, o);
    expect(table.pageCount).toBe(Math.ceil(o.size / 4096));
    for (let p = 0; p < table.pageCount; p++) {
      expect(table.hashes.subarray(p * 32, p * 32 + 32).equals(pageDigest(bytes, p, 'sha256').subarray(1))).toBe(true);
    }
    const code = o.runs.flatMap((r) => r.digests.map((_, i) => r.firstPage + i));
    expect([...table.flags].flatMap((f, p) => (f === PAGE_CODE ? [p] : []))).toEqual(code);
  }
});

/** A copy of slinked file `name` with `edit` applied to its bytes (manifest left as it was). */
function edited(name: string, edit: (b: Buffer, m: Manifest) => void): Buffer {
  const b = Buffer.from(fs.readFileSync(slinked.get(name)!));
  const t = decodeTrailer(b.subarray(b.length - TRAILER_SIZE), b.length)!;
  edit(b, decodeManifest(b.subarray(t.manifestOffset, t.manifestOffset + t.manifestLength), t.manifestOffset));
  return b;
}

test('an object whose bytes do not match its digest in the manifest is not published', async () => {
  let libc = '';
  const bytes = edited('true', (b, m) => {
    const o = m.objects.find((x) => x.name === 'libc.so.6')!;
    libc = digestToString(o.digest);
    b[o.offset + o.runs[0].firstPage * 4096 + 100] ^= 1; // a code byte
  });
  await writeFile(rig.fs, '/true', bytes);
  await rig.pc.idle();
  expect((await publishedNames()).includes(libc)).toBe(false);
  expect((await publishedNames()).length).toBe(2);
  expect((await stats()).published).toMatchObject({ published: 2, refused: 1 });
  expect(await names(rig.fs, '/.slinky/tmp')).toEqual([]);
});

test('an object whose manifest code-page digest is wrong is not published', async () => {
  const file = await openSlinked(slinked.get('true')!);
  const m = file.manifest;
  const libc = m.objects.findIndex((x) => x.name === 'libc.so.6');
  const wrong: Manifest = {
    ...m,
    objects: m.objects.map((o, i) =>
      i !== libc ? o : { ...o, runs: o.runs.map((r, ri) => (ri ? r : { ...r, digests: r.digests.map((d, di) => (di === 3 ? (Buffer.from(d).fill(7, 1) as typeof d) : d)) })) },
    ),
  };
  const original = fs.readFileSync(file.path);
  const manifest = encodeManifest(wrong);
  const bytes = Buffer.concat([original.subarray(0, file.trailer.manifestOffset), manifest, encodeTrailer({ manifestOffset: file.trailer.manifestOffset, manifestLength: manifest.length })]);
  await writeFile(rig.fs, '/true', bytes);
  await rig.pc.idle();
  expect((await publishedNames()).includes(digestToString(m.objects[libc].digest))).toBe(false);
  expect((await stats()).published).toMatchObject({ published: 2, refused: 1 });
});

test('files that are not slinked are left alone', async () => {
  await writeFile(rig.fs, '/plain', Buffer.from('hello'));
  await writeFile(rig.fs, '/ls-dynamic', fs.readFileSync('/usr/bin/ls'));
  await rig.pc.idle();
  expect(await names(rig.fs, '/')).toEqual(['ls-dynamic', 'plain']);
  expect((await stats()).published).toMatchObject({ slinkedFiles: 0, malformed: 0, objects: 0 });
});

test('a committed file whose last chunk shows no trailer is not read back', async () => {
  await writeFile(rig.fs, '/ls-dynamic', fs.readFileSync('/usr/bin/ls'));
  await rig.pc.idle();
  expect((await stats()).published).toMatchObject({ examined: 0, slinkedFiles: 0 });
  await writeFile(rig.fs, '/ls', fs.readFileSync(slinked.get('ls')!));
  await rig.pc.idle();
  expect((await stats()).published).toMatchObject({ examined: 1, slinkedFiles: 1 });
});

test('a file whose trailer arrives in a later commit is published then', async () => {
  const bytes = fs.readFileSync(slinked.get('true')!);
  const trailer = bytes.subarray(bytes.length - TRAILER_SIZE);
  const ino = await writeFile(rig.fs, '/true', Buffer.concat([bytes.subarray(0, bytes.length - TRAILER_SIZE), Buffer.alloc(TRAILER_SIZE)]));
  await rig.pc.idle();
  expect((await stats()).published).toMatchObject({ examined: 0, objects: 0 });
  const fh = await rig.fs.openIno(ino, 2);
  await rig.fs.write(fh, trailer, TRAILER_SIZE, bytes.length - TRAILER_SIZE);
  await rig.fs.release(fh);
  await rig.pc.idle();
  expect(await publishedNames()).toEqual((await objectsOf('true')).map((o) => digestToString(o.digest)).sort());
});

test('a slinked file already in the store when the daemon starts is published then', async () => {
  const plain = await openRig(undefined, { hook: false });
  await writeFile(plain.fs, '/true', fs.readFileSync(slinked.get('true')!));
  await plain.pc.idle();
  await plain.close();
  const again = await openRig(plain.dir);
  try {
    await again.pc.idle();
    const expected = (await objectsOf('true')).map((o) => digestToString(o.digest)).sort();
    expect(await names(again.fs, OBJECTS_DIR)).toEqual(expected);
    expect((await again.pc.stats()).published).toMatchObject({ slinkedFiles: 1, published: 3 });
  } finally {
    await again.close();
    fs.rmSync(plain.dir, { recursive: true, force: true });
  }
});

test('files looked at once are not looked at again when the daemon starts next', async () => {
  await writeFile(rig.fs, '/ls', fs.readFileSync(slinked.get('ls')!));
  await writeFile(rig.fs, '/ls-dynamic', fs.readFileSync('/usr/bin/ls'));
  await rig.pc.idle();
  expect(rig.store.unexaminedInodes()).toEqual([]);
  await rig.close();
  const again = await openRig(rig.dir);
  try {
    await again.pc.idle();
    expect((await again.pc.stats()).published).toMatchObject({ examined: 0, slinkedFiles: 0, objects: 5 });
  } finally {
    rig = again; // afterEach closes it
  }
});

test('a file whose chunks are not all here stays listed, and is published once they are', async () => {
  const bytes = fs.readFileSync(slinked.get('true')!);
  const chunks = chunkBuffer(bytes);
  // As `get --lazy` leaves a file mirrored from a peer: its recipe is here, its chunks are not.
  const ino = await rig.store.txn(() =>
    addNode(rig.store, ROOT_INO, 'true', { type: 'file', name: 'true', mode: 0o755, size: bytes.length, mtime: 0 }, { mode: 0o755, size: bytes.length, chunks }, ROOT),
  );
  rig.pc.lookAgain();
  await rig.pc.idle();
  expect(rig.store.unexaminedInodes()).toEqual([ino]);
  expect((await stats()).published).toMatchObject({ examined: 0, objects: 0 });
  await rig.store.txn(() => {
    for (const c of chunks) rig.store.fillChunk(c.digest, encodeChunk(bytes.subarray(c.offset, c.offset + c.length)));
  });
  rig.pc.lookAgain();
  await rig.pc.idle();
  expect(rig.store.unexaminedInodes()).toEqual([]);
  expect(await publishedNames()).toEqual((await objectsOf('true')).map((o) => digestToString(o.digest)).sort());
});
