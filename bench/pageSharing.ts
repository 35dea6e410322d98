// Would a page-granular pool share more than one inode per object does? One file per unique
// object already shares every page of that object between all processes (the kernel page cache
// of its inode). A pool keyed by page digest could in addition share identical pages of
// *different* objects. This measures how much that could be: over every ELF object of this
// machine (programs in /usr/bin and shared libraries in /usr/lib/x86_64-linux-gnu, each file
// once), the 4096-byte pages, and the code pages (executable, read-only PT_LOAD: the pages the
// manifest's digest table covers), whose digest also occurs in another object.
//
//   make build && node dist/bench/pageSharing.js
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { programHeaders } from '../src/pagecache/publish';
import { codePageSpans } from '../src/elf/pageDigests';
import { printTable } from './slinkedMount';

const DIRS = ['/usr/bin', '/usr/sbin', '/usr/lib/x86_64-linux-gnu'];
const PAGE = 4096;
const ZERO = createHash('sha256').update(Buffer.alloc(PAGE)).digest('base64');

function objects(): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const dir of DIRS) {
    for (const name of fs.readdirSync(dir)) {
      let real: string;
      try {
        real = fs.realpathSync(path.join(dir, name));
        if (!fs.statSync(real).isFile() || seen.has(real)) continue;
      } catch {
        continue;
      }
      seen.add(real);
      const fd = fs.openSync(real, 'r');
      const head = Buffer.alloc(4);
      fs.readSync(fd, head, 0, 4, 0);
      fs.closeSync(fd);
      if (head.readUInt32BE(0) === 0x7f454c46) out.push(real);
    }
  }
  return out;
}

function main() {
  const files = objects();
  // digest -> [first file index, files containing it > 1]
  const owner = new Map<string, number>();
  const shared = new Set<string>();
  let pages = 0;
  let codePages = 0;
  const codeKeys: string[][] = [];
  files.forEach((f, fi) => {
    const b = fs.readFileSync(f);
    const code = new Set<number>();
    for (const s of codePageSpans(programHeaders(b.subarray(0, Math.min(b.length, 65536))))) for (let p = s.firstPage; p < s.firstPage + s.pageCount; p++) code.add(p);
    const mine = new Set<string>();
    const myCode: string[] = [];
    for (let p = 0; p * PAGE < b.length; p++) {
      const page = b.subarray(p * PAGE, (p + 1) * PAGE);
      const h = createHash('sha256').update(page);
      if (page.length < PAGE) h.update(Buffer.alloc(PAGE - page.length));
      const k = h.digest('base64');
      pages++;
      if (code.has(p)) (codePages++, myCode.push(k));
      if (mine.has(k)) continue;
      mine.add(k);
      const o = owner.get(k);
      if (o === undefined) owner.set(k, fi);
      else if (o !== fi) shared.add(k);
    }
    codeKeys.push(myCode);
  });
  let sharedPages = 0;
  let sharedCode = 0;
  let zeroPages = 0;
  // Count pages (with multiplicity) whose digest occurs in another object, and the saving a
  // cross-object pool would add: every occurrence beyond the first object's.
  const firstSeen = new Set<string>();
  let extraSaving = 0;
  files.forEach((f, fi) => {
    const b = fs.readFileSync(f);
    const mine = new Set<string>();
    for (let p = 0; p * PAGE < b.length; p++) {
      const page = b.subarray(p * PAGE, (p + 1) * PAGE);
      const h = createHash('sha256').update(page);
      if (page.length < PAGE) h.update(Buffer.alloc(PAGE - page.length));
      const k = h.digest('base64');
      if (k === ZERO) zeroPages++;
      if (!shared.has(k)) continue;
      sharedPages++;
      if (mine.has(k)) continue;
      mine.add(k);
      if (firstSeen.has(k)) extraSaving++;
      else firstSeen.add(k);
    }
    for (const k of codeKeys[fi]) if (shared.has(k)) sharedCode++;
  });
  console.log(`${files.length} ELF objects in ${DIRS.join(', ')}`);
  printTable(
    ['pages', 'count', 'share'],
    [
      ['all pages', String(pages), '100%'],
      ['pages whose digest is in another object', String(sharedPages), `${((100 * sharedPages) / pages).toFixed(2)}%`],
      ['  of which all-zero pages', String(zeroPages), `${((100 * zeroPages) / pages).toFixed(2)}%`],
      ['code pages', String(codePages), '100%'],
      ['code pages whose digest is in another object', String(sharedCode), `${((100 * sharedCode) / codePages).toFixed(2)}%`],
      ['pages a cross-object pool could save (all resident)', String(extraSaving), `${((100 * extraSaving) / pages).toFixed(2)}%`],
    ],
  );
}

main();
