// What mapping a file costs when its pages come from a slinkyfs mount rather than ext4, all of
// them already in the kernel's page cache: the floor under a program start from the mount
// (bench/startupMount.ts, "objects from mount"). For published objects of real programs, and
// the same bytes copied to ext4, a child process maps the file, reads one byte of every page
// and unmaps it; best of many tries, the two files alternating. Prints milliseconds, µs per
// page and the ratio; asserts nothing.
//
//   make build && node dist/bench/mapCost.js [tries=40]
import fs from 'node:fs';
import path from 'node:path';
import { openSlinked } from '../src/elf/slinkedFile';
import { digestToString } from '../src/chunking/digest';
import { benchMount, machine, printTable, run } from './slinkedMount';

// One child per file: map, touch each page, unmap, `tries` times; print the best in seconds.
const TOUCH = `
import mmap, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
best = 1e9
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    s = 0
    for off in range(0, size, 4096):
        s += m[off]
    m.close()
    best = min(best, time.perf_counter() - t)
print(best)
`;

const touch = (file: string, tries: number) => Number(run('python3', ['-c', TOUCH, file, String(tries)]).trim());

async function main(): Promise<void> {
  const tries = Number(process.argv[2] ?? 40);
  const m = await benchMount('mapcost');
  try {
    await m.add({ python3: 'python3', ls: 'ls' });
    const rows: string[][] = [];
    for (const prog of ['python3', 'ls']) {
      const file = await openSlinked(m.standalone(prog));
      for (const o of file.manifest.objects) {
        const onMount = path.join(m.mountpoint, '.slinky', 'objects', digestToString(o.digest));
        const onExt4 = path.join(m.dir, `ext4-${digestToString(o.digest)}`);
        if (!fs.existsSync(onExt4)) fs.copyFileSync(onMount, onExt4);
        // Both in the page cache before timing.
        fs.readFileSync(onMount);
        fs.readFileSync(onExt4);
        let mount = Infinity;
        let ext4 = Infinity;
        for (let round = 0; round < 3; round++) {
          mount = Math.min(mount, touch(onMount, tries));
          ext4 = Math.min(ext4, touch(onExt4, tries));
        }
        const pages = Math.ceil(fs.statSync(onExt4).size / 4096);
        rows.push([
          `${prog}: ${o.name}`,
          String(pages),
          (mount * 1e3).toFixed(3),
          (ext4 * 1e3).toFixed(3),
          ((mount / pages) * 1e6).toFixed(3),
          ((ext4 / pages) * 1e6).toFixed(3),
          `${(mount / ext4).toFixed(2)}x`,
        ]);
      }
    }
    console.log(`mapping every page of a file already in the page cache, best of ${3 * tries}; ${machine()}`);
    printTable(['object', 'pages', 'mount ms', 'ext4 ms', 'mount µs/page', 'ext4 µs/page', 'mount/ext4'], rows);
  } finally {
    m.cleanup();
  }
}

main().catch((err) => {
  console.error(`mapCost: ${(err as Error).message}`);
  process.exit(1);
});
