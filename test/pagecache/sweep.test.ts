// `slinkyfs gc` removes published objects that no slinked file embeds any more (and so frees
// their chunks), and keeps every object some slinked file still names.
import fs from 'node:fs';
import path from 'node:path';
import { startMount, type TestMount } from '../helpers/mount';
import { sh, slinkyfs } from '../helpers/cli';
import { slinkPrograms } from '../elf/slinkHelpers';
import { objectsOf, waitPublished, type ObjectRef } from './mountHelpers';
import { names, openRig, tempDir, writeFile } from './helpers';
import { sweepObjects } from '../../src/pagecache/sweep';
import { OBJECTS_DIR } from '../../src/pagecache/layout';

let m: TestMount;
let progDir: string;
const objects = new Map<string, ObjectRef[]>();
const published = () => fs.readdirSync(path.join(m.mountpoint, '.slinky', 'objects')).sort();

beforeAll(async () => {
  progDir = tempDir('pc-sweep');
  const slinked = await slinkPrograms(['sleep', 'cat'], progDir);
  m = startMount();
  for (const [name, file] of slinked) {
    objects.set(name, await objectsOf(file));
    expect(sh(`cp '${file}' '${m.mountpoint}/${name}'`).status).toBe(0);
  }
  for (const o of objects.values()) waitPublished(m.mountpoint, o);
});
afterAll(() => {
  m?.cleanup();
  fs.rmSync(progDir, { recursive: true, force: true });
});

function gc(): string {
  m.unmount();
  const r = slinkyfs(['gc', '--store', m.store]);
  m.remount();
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

test('gc keeps every object a slinked file embeds', () => {
  const before = published();
  expect(gc()).toMatch(/^removed 0 published objects no slinked file embeds \(kept \d+\)$/m);
  expect(published()).toEqual(before);
});

test('gc removes the objects of a deleted slinked file that no other file embeds, and frees their chunks', () => {
  const sleepObjects = new Set(objects.get('sleep')!.map((o) => o.file));
  const onlyCat = objects.get('cat')!.filter((o) => !sleepObjects.has(o.file)).map((o) => o.file);
  expect(onlyCat.length).toBeGreaterThan(0); // cat's own program object at least
  const uniqueBefore = m.stats().uniqueBytes;
  fs.unlinkSync(path.join(m.mountpoint, 'cat'));
  const out = gc();
  expect(out).toMatch(new RegExp(`^removed ${onlyCat.length} published objects`, 'm'));
  expect(published()).toEqual([...sleepObjects].sort());
  expect(m.stats().uniqueBytes).toBeLessThan(uniqueBefore);
  expect(fs.readdirSync(path.join(m.mountpoint, '.slinky', 'pages')).sort()).toEqual([...sleepObjects].sort());
});

describe('on a store where a file cannot be read', () => {
  test('the sweep removes nothing: that file might embed any object', async () => {
    const dir = tempDir('pc-sweep-unreadable');
    const rig = await openRig(dir);
    try {
      const slinked = await slinkPrograms(['true', 'sleep'], dir);
      await writeFile(rig.fs, '/true', fs.readFileSync(slinked.get('true')!));
      await writeFile(rig.fs, '/sleep', fs.readFileSync(slinked.get('sleep')!));
      await rig.pc.idle();
      const before = await names(rig.fs, OBJECTS_DIR);
      await rig.fs.unlink('/sleep');
      // Free the chunk holding /true's trailer while its recipe still names it.
      const ino = (await rig.fs.getattr('/true')).ino;
      const size = rig.store.getInode(ino)!.size;
      const last = rig.store.extents(ino, size - 1, size)[0];
      await rig.store.txn(() => rig.store.unrefChunk(last.digest));
      const r = await sweepObjects(rig.fs, rig.store, rig.source, () => undefined);
      expect(r.unreadable).toBe(1);
      expect(r.removed).toEqual([]);
      expect(await names(rig.fs, OBJECTS_DIR)).toEqual(before);
    } finally {
      await rig.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
