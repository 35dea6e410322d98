// Per-process digest tables (PDT), from /proc. Which processes map which published objects,
// and which pages of them, is read from /proc/PID/maps: each line names the device and inode of
// the mapped file, so a mapping of an object file is recognised by the mount's device and the
// object's inode number (whatever path or mount namespace the process used). A process that
// exits simply disappears from the next scan, and its references with it: no protocol in the
// stub, nothing to clean up after a crash, and programs that never tell us anything (they are
// plain ld.so mappings) are still counted.
import fs from 'node:fs';
import { deviceAt } from '../fs/mountTable';

export interface Mapping {
  readonly ino: number;
  /** First page of the object mapped, and the number of pages. */
  readonly firstPage: number;
  readonly pages: number;
}

const PAGE = 4096;

/** Parses /proc/PID/maps text and keeps the file mappings on device `dev` ("00:2d" as printed). */
export function mappingsOnDevice(text: string, dev: string, wanted: (ino: number) => boolean): Mapping[] {
  const out: Mapping[] = [];
  const needle = ` ${dev} `;
  let at = text.indexOf(needle);
  while (at >= 0) {
    const lineStart = text.lastIndexOf('\n', at) + 1;
    let lineEnd = text.indexOf('\n', at);
    if (lineEnd < 0) lineEnd = text.length;
    const m = parseLine(text.slice(lineStart, lineEnd));
    if (m && m.dev === dev && wanted(m.ino)) out.push({ ino: m.ino, firstPage: Math.floor(m.offset / PAGE), pages: Math.ceil((m.end - m.start) / PAGE) });
    at = text.indexOf(needle, lineEnd);
  }
  return out;
}

interface MapsLine {
  start: number;
  end: number;
  offset: number;
  dev: string;
  ino: number;
}

const LINE = /^([0-9a-f]+)-([0-9a-f]+) \S{4} ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)/;

export function parseLine(line: string): MapsLine | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  return { start: parseInt(m[1], 16), end: parseInt(m[2], 16), offset: parseInt(m[3], 16), dev: m[4], ino: Number(m[5]) };
}

/** A device as /proc/PID/maps prints it ("fe:00"). */
function mapsNotation(major: number, minor: number): string {
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
}

/** The device of the filesystem mounted at `mountpoint`, formatted as /proc/PID/maps prints it. */
export function mapsDeviceOf(mountinfo: string, mountpoint: string): string | undefined {
  const [major, minor] = (deviceAt(mountinfo, mountpoint) ?? '').split(':').map(Number);
  if (!Number.isInteger(major) || !Number.isInteger(minor)) return undefined;
  return mapsNotation(major, minor);
}

/** A device number (stat's st_dev) as /proc/PID/maps prints it. */
export function mapsDevice(stDev: number | bigint): string {
  const d = BigInt(stDev);
  // Linux's encoding: 12 bits of major at bit 8, minor in bits 0-7 and 20-31.
  return mapsNotation(Number((d >> 8n) & 0xfffn), Number((d & 0xffn) | ((d >> 12n) & 0xfff00n)));
}

/** Calls `each` with the maps text of every process but this one, eight reads at a time. */
async function eachProcessMaps(each: (pid: number, text: string) => void): Promise<void> {
  const pids = (await fs.promises.readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
  let next = 0;
  const worker = async () => {
    while (next < pids.length) {
      const pid = pids[next++];
      if (pid === process.pid) continue;
      let text: string;
      try {
        text = await fs.promises.readFile(`/proc/${pid}/maps`, 'latin1');
      } catch {
        continue; // exited meanwhile, or not ours to read
      }
      each(pid, text);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** Every file some process maps, as "dev:ino" keys in maps' notation: this process's too. */
export async function mappedFiles(): Promise<Set<string>> {
  const out = new Set<string>();
  const add = (text: string) => {
    for (const line of text.split('\n')) {
      const m = parseLine(line);
      if (m && m.ino !== 0) out.add(`${m.dev}:${m.ino}`);
    }
  };
  add(await fs.promises.readFile('/proc/self/maps', 'latin1'));
  await eachProcessMaps((_pid, text) => add(text));
  return out;
}

/** Every process's mappings of wanted inodes on `dev` (the scanning process excluded). */
export async function scanProcesses(dev: string, wanted: (ino: number) => boolean): Promise<Map<number, Mapping[]>> {
  const out = new Map<number, Mapping[]>();
  await eachProcessMaps((pid, text) => {
    const maps = mappingsOnDevice(text, dev, wanted);
    if (maps.length) out.set(pid, maps);
  });
  return out;
}
