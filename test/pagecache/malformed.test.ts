// Slinked files are written by anyone who can write to the mount, and the daemon reads their
// manifests: no trailer, manifest or digest table, however broken or hostile, may make it throw,
// hang or publish something that is not what its name says.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { openSlinked } from '../../src/elf/slinkedFile';
import { encodeTrailer } from '../../src/elf/manifest';
import { OBJECTS_DIR } from '../../src/pagecache';
import { prng } from '../helpers/prng';
import { slinkPrograms } from '../elf/slinkHelpers';
import { names, openRig, tempDir, writeFile, type Rig } from './helpers';

let progDir: string;
let slinkedTrue: string;
let rig: Rig;

beforeAll(async () => {
  progDir = tempDir('pc-malformed');
  slinkedTrue = (await slinkPrograms(['true'], progDir)).get('true')!;
});
afterAll(() => fs.rmSync(progDir, { recursive: true, force: true }));
beforeEach(async () => {
  rig = await openRig();
});
afterEach(async () => {
  await rig.close();
  fs.rmSync(rig.dir, { recursive: true, force: true });
});

test('300 files with random damage in the manifest or trailer: nothing thrown, each counted, clean files still published', async () => {
  const file = await openSlinked(slinkedTrue);
  const original = fs.readFileSync(slinkedTrue);
  const next = prng(4);
  const from = file.trailer.manifestOffset;
  for (let i = 0; i < 300; i++) {
    const b = Buffer.from(original);
    const flips = 1 + (next() % 8);
    for (let f = 0; f < flips; f++) b[from + (next() % (b.length - from))] ^= 1 << (next() % 8);
    await writeFile(rig.fs, `/v${i}`, b);
  }
  await rig.pc.idle();
  const s = (await rig.pc.stats()).published;
  // Every damaged file either failed to parse, or parsed (damage outside what is checked, e.g. a
  // path string) and then had its objects published, recognised as published, or refused.
  expect(s.malformed + s.slinkedFiles).toBe(300);
  expect(s.malformed).toBeGreaterThan(0);
  expect(s.refused).toBeGreaterThan(0); // a damaged digest table disagrees with the code pages
  // What was published is exactly what the names say.
  for (const name of await names(rig.fs, OBJECTS_DIR)) {
    const { ino, size } = await rig.fs.getattr(`${OBJECTS_DIR}/${name}`);
    const bytes = await rig.pc.read(ino, 0, size);
    expect(`sha256-${createHash('sha256').update(bytes).digest('hex')}`).toBe(name);
  }
  await writeFile(rig.fs, '/clean', original);
  await rig.pc.idle();
  const names3 = file.manifest.objects.map((o) => `sha256-${o.digest.subarray(1).toString('hex')}`);
  const published = await names(rig.fs, OBJECTS_DIR);
  expect(names3.every((n) => published.includes(n))).toBe(true);
});

test('a manifest whose 1024 objects all reference every run of a huge digest table is refused at once', async () => {
  // 64-byte header, 1024 object records, 4096 runs of 4096 pages each over one digest table.
  const objects = 1024;
  const runs = 4096;
  const digests = 4096;
  const objectsAt = 64;
  const runsAt = objectsAt + objects * 128;
  const digestsAt = runsAt + runs * 16;
  const stringsAt = digestsAt + digests * 32;
  const m = Buffer.alloc(stringsAt + 8);
  m.write('SLINKYMF', 0, 'latin1');
  m.writeUInt32LE(1, 8);
  m.writeUInt32LE(64, 12);
  m.writeUInt32LE(objects, 16);
  m.writeUInt32LE(128, 20);
  m.writeUInt32LE(objectsAt, 24);
  m.writeUInt32LE(stringsAt, 28);
  m.writeUInt32LE(8, 32);
  m.writeUInt32LE(runsAt, 36);
  m.writeUInt32LE(runs, 40);
  m.writeUInt32LE(16, 44);
  m.writeUInt32LE(digestsAt, 48);
  m.writeUInt32LE(digests, 52);
  m.writeUInt8(1, 56);
  m.writeUInt8(32, 57);
  m.writeUInt16LE(12, 58);
  for (let i = 0; i < objects; i++) {
    const at = objectsAt + i * 128;
    m.writeUInt32LE(i === 0 ? 1 : i === 1 ? 3 : 2, at + 16);
    m.writeUInt32LE(0, at + 32);
    m.writeUInt32LE(runs, at + 36);
  }
  for (let r = 0; r < runs; r++) m.writeUInt32LE(digests, runsAt + r * 16 + 8);
  const trailer = encodeTrailer({ manifestOffset: 0, manifestLength: m.length });
  const started = Date.now();
  await writeFile(rig.fs, '/hostile', Buffer.concat([m, trailer]));
  await rig.pc.idle();
  expect(Date.now() - started).toBeLessThan(5000);
  expect((await rig.pc.stats()).published).toMatchObject({ malformed: 1, slinkedFiles: 0 });
});

test('a trailer pointing outside the file and a trailer alone are counted as malformed', async () => {
  const outside = encodeTrailer({ manifestOffset: 1 << 30, manifestLength: 4096 });
  await writeFile(rig.fs, '/outside', Buffer.concat([Buffer.alloc(100), outside]));
  await writeFile(rig.fs, '/alone', encodeTrailer({ manifestOffset: 0, manifestLength: 0 }));
  await rig.pc.idle();
  expect((await rig.pc.stats()).published).toMatchObject({ malformed: 2, slinkedFiles: 0, objects: 0 });
});
