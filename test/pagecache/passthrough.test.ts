// Objects identical to this machine's own files, which some process maps, pass through to them
// (FUSE passthrough, kernel 6.9+): a slinked program run from the mount then maps the very
// physical pages of libc.so.6 that dynamic programs map. With --no-passthrough the daemon serves every object page itself.
// Real mounts (daemon in its own process), real programs slinked from /usr/bin.
import fs from 'node:fs';
import path from 'node:path';
import { openSlinked } from '../../src/elf/slinkedFile';
import { digestToString } from '../../src/chunking/digest';
import type { ManifestObject } from '../../src/elf/manifest';
import { startMount, type TestMount } from '../helpers/mount';
import { sh, slinkyfs } from '../helpers/cli';
import { slinkPrograms } from '../elf/slinkHelpers';
import { pageStats, startAndWait, stopChild, waitPublished } from './mountHelpers';
import { tempDir } from './helpers';

const PAGE = 4096;
let progDir: string;
let objects: readonly ManifestObject[];
let through: TestMount;
let served: TestMount;

async function twinsSettled(m: TestMount): Promise<void> {
  const deadline = Date.now() + 30000;
  while (pageStats(m.store).twins.pending > 0) {
    if (Date.now() > deadline) throw new Error('the daemon did not finish looking for twins');
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  progDir = tempDir('pc-passthrough');
  const slinked = (await slinkPrograms(['cat'], progDir)).get('cat')!;
  objects = (await openSlinked(slinked)).manifest.objects;
  const refs = objects.map((o) => ({ name: o.name, file: digestToString(o.digest) }));
  through = startMount();
  served = startMount(['--no-passthrough']);
  for (const m of [through, served]) {
    expect(sh(`cp -p '${slinked}' '${m.mountpoint}/cat'`).status).toBe(0);
    waitPublished(m.mountpoint, refs);
  }
  await twinsSettled(through);
});
afterAll(() => {
  through?.cleanup();
  served?.cleanup();
  fs.rmSync(progDir, { recursive: true, force: true });
});

/** Page number within the file -> physical frame, for the present code pages (r-xp: never
 *  written, so never a private copy) `pid` maps of files whose mapped path satisfies `which`. */
function framesOf(pid: number, which: (file: string) => boolean): Map<number, number> {
  const out = new Map<number, number>();
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) r-xp ([0-9a-f]+) \S+ \d+\s+(\S.*)$/.exec(line);
      if (!m || !which(m[4])) continue;
      const lo = parseInt(m[1], 16);
      const pages = (parseInt(m[2], 16) - lo) / PAGE;
      const firstFilePage = parseInt(m[3], 16) / PAGE;
      const buf = Buffer.alloc(pages * 8);
      fs.readSync(fd, buf, 0, buf.length, (lo / PAGE) * 8);
      for (let i = 0; i < pages; i++) {
        const e = buf.readBigUInt64LE(i * 8);
        if (e >> 63n) out.set(firstFilePage + i, Number(e & ((1n << 55n) - 1n)));
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Of the libc code pages both processes have present: how many, and how many are the same
 *  physical frame. */
async function libcFramesShared(mountpoint: string): Promise<{ both: number; same: number }> {
  const libc = objects.find((o) => o.name === 'libc.so.6')!;
  const object = path.join(mountpoint, '.slinky', 'objects', digestToString(libc.digest));
  const dynamicLibc = fs.realpathSync(libc.path);
  const waitFor = (file: string) => (maps: { path: string }[]) => maps.some((e) => e.path === file);
  const slinked = await startAndWait([path.join(mountpoint, 'cat')], waitFor(object));
  const dynamic = await startAndWait(['/usr/bin/cat'], waitFor(dynamicLibc));
  try {
    const a = framesOf(slinked.pid!, (f) => f === object);
    const b = framesOf(dynamic.pid!, (f) => fs.existsSync(f) && fs.realpathSync(f) === dynamicLibc);
    let both = 0;
    let same = 0;
    for (const [page, frame] of a) {
      if (!b.has(page)) continue;
      both++;
      if (b.get(page) === frame) same++;
    }
    return { both, same };
  } finally {
    await stopChild(slinked);
    await stopChild(dynamic);
  }
}

test('libc and the loader, which every dynamic process maps, pass through to the files the program was slinked with', () => {
  const stats = pageStats(through.store);
  expect(stats.fastPath.passthrough).toBe(true);
  const twinOf = new Map(stats.objects.map((o) => [o.name, o.twin]));
  const sameFile = (a: string | undefined, b: string) => !!a && fs.realpathSync(a) === fs.realpathSync(b);
  for (const name of ['libc.so.6', 'ld-linux-x86-64.so.2']) {
    const o = objects.find((x) => x.name === name)!;
    expect(sameFile(twinOf.get(digestToString(o.digest)), o.path)).toBe(true);
  }
  // Any other twin is the object's own source too; the rest had none in use.
  for (const o of objects) {
    const twin = twinOf.get(digestToString(o.digest));
    if (twin) expect(sameFile(twin, o.path)).toBe(true);
  }
  expect(stats.twins.pending).toBe(0);
  expect(stats.twins.objects + stats.twins.unused).toBe(objects.length);
});

test('the slinked program runs from the mount and maps the same physical libc pages as a dynamic one', async () => {
  expect(sh(`echo through | '${through.mountpoint}/cat'`).stdout).toBe('through\n');
  const { both, same } = await libcFramesShared(through.mountpoint);
  expect(both).toBeGreaterThan(50);
  expect(same).toBe(both);
  // The daemon read no page of an object that passes through: at most the pages of the others.
  const stats = pageStats(through.store);
  const servedPages = stats.objects.filter((o: { twin?: string }) => !o.twin).reduce((n: number, o: { pages: number }) => n + o.pages, 0);
  expect(stats.gdt.misses).toBeLessThanOrEqual(servedPages);
});

test('with --no-passthrough no object passes through, and the daemon serves the pages: none is the dynamic one', async () => {
  expect(sh(`echo served | '${served.mountpoint}/cat'`).stdout).toBe('served\n');
  const stats = pageStats(served.store);
  expect(stats.twins).toEqual({ objects: 0, pending: 0, unused: 0 });
  expect(stats.fastPath.passthroughOpens).toBe(0);
  const { both, same } = await libcFramesShared(served.mountpoint);
  expect(both).toBeGreaterThan(50);
  expect(same).toBe(0);
  expect(pageStats(served.store).gdt.misses).toBeGreaterThan(0);
});

test('stats --pages names the file an object passes through to', async () => {
  const slinked = await startAndWait([path.join(through.mountpoint, 'cat')], (maps) => maps.some((e) => e.path.includes('.slinky/objects/')) && maps.length > 5);
  try {
    const r = slinkyfs(['stats', through.mountpoint, '--pages']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/objects passing through to system files\s+\d+; \d+ whose twin no process maps; \d+ opens/);
    expect(r.stdout).toMatch(/libc\.so\.6/);
  } finally {
    await stopChild(slinked);
  }
});
