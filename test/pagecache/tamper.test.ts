// A tampered page on a real mount: the store is changed behind the daemon's back so that an
// object file's recipe points at a different, self-consistent chunk (chunk checks pass; only the
// page digests can tell). The page is refused with EIO, the failure counted, the process that
// needed it gets an error instead of the code, and the daemon keeps serving everything else.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store } from '../../src/store/store';
import { LocalChunkSource } from '../../src/store/localSource';
import { openSlinked } from '../../src/elf/slinkedFile';
import { startMount, type TestMount } from '../helpers/mount';
import { sh } from '../helpers/cli';
import { slinkPrograms } from '../elf/slinkHelpers';
import { objectsOf, pageStats, waitPublished, type ObjectRef } from './mountHelpers';
import { tamperRecipe, tempDir } from './helpers';

let m: TestMount;
let progDir: string;
let objects: ObjectRef[];
let libcCodePage: number;

beforeAll(async () => {
  progDir = tempDir('pc-tamper');
  const slinked = (await slinkPrograms(['true'], progDir)).get('true')!;
  objects = await objectsOf(slinked);
  const libc = (await openSlinked(slinked)).manifest.objects.find((o) => o.name === 'libc.so.6')!;
  libcCodePage = libc.runs[0].firstPage + 10;
  // The objects of a program slinked here are byte for byte this machine's libraries: with
  // passthrough the kernel would read those and never the tampered store. This is a test of the
  // daemon's own verification, so passthrough is off (passthrough.test.ts covers it).
  m = startMount(['--no-passthrough']);
  expect(sh(`cp '${slinked}' '${m.mountpoint}/true'`).status).toBe(0);
  waitPublished(m.mountpoint, objects);
  m.unmount();
  const store = await Store.open(m.store);
  try {
    const source = new LocalChunkSource(store);
    const inoOf = (file: string) => {
      const slinky = store.lookup(1, '.slinky')!;
      return store.lookup(store.lookup(slinky, 'objects')!, file)!;
    };
    const ld = objects.find((o) => o.name === 'ld-linux-x86-64.so.2')!;
    const libcRef = objects.find((o) => o.name === 'libc.so.6')!;
    await tamperRecipe(store, source, inoOf(ld.file), 64); // inside the loader's ELF header page
    await tamperRecipe(store, source, inoOf(libcRef.file), libcCodePage * 4096 + 7);
  } finally {
    await store.close();
  }
  m.remount();
});
afterAll(() => {
  m?.cleanup();
  fs.rmSync(progDir, { recursive: true, force: true });
});

const failures = () => pageStats(m.store).gdt.verificationFailures;
const objectFile = (name: string) => path.join(m.mountpoint, '.slinky', 'objects', objects.find((o) => o.name === name)!.file);

test('reading a tampered code page fails with an I/O error and is counted', () => {
  const before = failures();
  const r = sh(`dd if='${objectFile('libc.so.6')}' of=/dev/null bs=4096 skip=${libcCodePage} count=1 2>&1`);
  expect(r.status).not.toBe(0);
  expect(r.stdout).toMatch(/Input\/output error/);
  expect(failures()).toBeGreaterThan(before);
});

test('the pages around it still read correctly', () => {
  const r = sh(`dd if='${objectFile('libc.so.6')}' bs=4096 count=4 status=none | cmp - <(head -c 16384 /lib/x86_64-linux-gnu/libc.so.6) && echo same`);
  expect(r.stdout.trim()).toBe('same');
});

test('a program whose loader page was tampered with gets an error, not the code, and the daemon keeps serving', () => {
  const before = failures();
  const r = spawnSync(path.join(m.mountpoint, 'true'), { encoding: 'utf8' });
  expect(r.status).toBe(127);
  expect(r.stderr).toMatch(/slinky stub: cannot read the loader's ELF header \(errno 5\)/);
  expect(failures()).toBeGreaterThan(before);
  expect(fs.readdirSync(m.mountpoint).sort()).toEqual(['.slinky', 'true']);
});
