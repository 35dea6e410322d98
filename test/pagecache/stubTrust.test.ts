// How the stub decides where each object comes from (native/stub.c, mount mode). It looks for
// `.slinky/objects` at the root of the (anonymous-device) filesystem holding the slinked file and
// takes an object from there only when nobody but root or the user running the program could
// have put it there: the directory owned by one of them and writable by nobody else, the object
// owned by the same user, with no write permission at all and the size the manifest says.
// Anything else falls back to a private memfd copy, object by object. A tmpfs stands in for the
// mount here: the rule is about ownership, not about which filesystem it is.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openSlinked, readObject } from '../../src/elf/slinkedFile';
import { digestToString } from '../../src/chunking/digest';
import { slinkPrograms } from '../elf/slinkHelpers';
import { fileMappings, startAndWait, stopChild } from './mountHelpers';
import { tempDir } from './helpers';

let work: string;
let root: string; // the tmpfs
let slinkedSleep: string;
let objects: Array<{ name: string; file: string; bytes: Buffer }>;

beforeAll(async () => {
  work = tempDir('pc-trust');
  slinkedSleep = (await slinkPrograms(['sleep'], work)).get('sleep')!;
  const file = await openSlinked(slinkedSleep);
  objects = await Promise.all(file.manifest.objects.map(async (o) => ({ name: o.name, file: digestToString(o.digest), bytes: await readObject(file, o) })));
  root = path.join(work, 'tmpfs');
  fs.mkdirSync(root);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', root], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount tmpfs: ${r.stderr}`);
});
afterAll(() => {
  spawnSync('umount', ['-l', root]);
  fs.rmSync(work, { recursive: true, force: true });
});

interface Layout {
  dirOwner?: number;
  dirMode?: number;
  objectMode?: (name: string) => number;
  objectSize?: (name: string, size: number) => number;
}

/** Lays out <tmpfs>/.slinky/objects and <tmpfs>/bin/sleep, runs it, returns where each object came from. */
async function sources(layout: Layout): Promise<Record<string, 'object file' | 'memfd' | 'other'>> {
  for (const e of fs.readdirSync(root)) fs.rmSync(path.join(root, e), { recursive: true, force: true });
  const dir = path.join(root, '.slinky', 'objects');
  fs.mkdirSync(dir, { recursive: true });
  for (const o of objects) {
    const p = path.join(dir, o.file);
    const size = layout.objectSize?.(o.name, o.bytes.length) ?? o.bytes.length;
    fs.writeFileSync(p, size <= o.bytes.length ? o.bytes.subarray(0, size) : Buffer.concat([o.bytes, Buffer.alloc(size - o.bytes.length)]));
    fs.chmodSync(p, layout.objectMode?.(o.name) ?? 0o444);
    fs.chownSync(p, layout.dirOwner ?? 0, 0);
  }
  fs.chmodSync(dir, layout.dirMode ?? 0o755);
  fs.chownSync(dir, layout.dirOwner ?? 0, 0);
  fs.mkdirSync(path.join(root, 'bin'));
  fs.copyFileSync(slinkedSleep, path.join(root, 'bin', 'sleep'));
  fs.chmodSync(path.join(root, 'bin', 'sleep'), 0o755);
  const child = await startAndWait([path.join(root, 'bin', 'sleep'), '30'], (maps) => maps.some((e) => /libc/.test(e.path) || e.path.includes(objects[1].file)));
  try {
    const maps = fileMappings(child.pid!);
    const out: Record<string, 'object file' | 'memfd' | 'other'> = {};
    for (const o of objects) {
      if (o.name === 'ld-linux-x86-64.so.2') {
        // The stub maps the loader itself: from its object file, or in place from the slinked file.
        out[o.name] = maps.some((e) => e.path.endsWith(o.file)) ? 'object file' : maps.some((e) => e.path.endsWith('/bin/sleep')) ? 'memfd' : 'other';
        continue;
      }
      out[o.name] = maps.some((e) => e.path.endsWith(o.file)) ? 'object file' : maps.some((e) => e.path.startsWith(`/memfd:${o.name} `)) ? 'memfd' : 'other';
    }
    return out;
  } finally {
    await stopChild(child);
  }
}

const all = (v: string) => Object.fromEntries(objects.map((o) => [o.name, v]));

test('objects owned by root in a root-owned directory nobody else can write are used', async () => {
  expect(await sources({})).toEqual(all('object file'));
});

test("a directory owned by another user is not trusted", async () => {
  expect(await sources({ dirOwner: 65534 })).toEqual(all('memfd'));
});

test('a directory others can write to is not trusted', async () => {
  expect(await sources({ dirMode: 0o777 })).toEqual(all('memfd'));
  expect(await sources({ dirMode: 0o775 })).toEqual(all('memfd'));
});

test('an object that can be written, or has the wrong size, is copied instead; the others still come from the directory', async () => {
  const writable = await sources({ objectMode: (n) => (n === 'libc.so.6' ? 0o644 : 0o444) });
  expect(writable).toEqual({ ...all('object file'), 'libc.so.6': 'memfd' });
  const short = await sources({ objectSize: (n, s) => (n === 'libc.so.6' ? s - 1 : s) });
  expect(short).toEqual({ ...all('object file'), 'libc.so.6': 'memfd' });
});
