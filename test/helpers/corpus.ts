// Real executables from this machine's /usr/bin: regular, readable ELF files, taken in name order
// so every run on the same machine picks the same set.
import fs from 'node:fs';
import path from 'node:path';

export function realExecutables(count: number, maxBytes = 4 << 20, dir = '/usr/bin'): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue;
    }
    if (!st.isFile() || st.size > maxBytes || st.size < 1024 || (st.mode & 0o6000) !== 0) continue;
    const fd = fs.openSync(p, 'r');
    const magic = Buffer.alloc(4);
    fs.readSync(fd, magic, 0, 4, 0);
    fs.closeSync(fd);
    if (!magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) continue;
    out.push(p);
    if (out.length === count) break;
  }
  return out;
}
