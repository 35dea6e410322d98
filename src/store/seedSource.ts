// Seeds: files already on this machine (e.g. /usr/lib) indexed as chunk sources without copying
// them, the way ckget rebuilt packages from what was installed. The index lives in its own LMDB
// environment next to the store (<store>/seeds), so seeding never contends with a mounted store,
// and maps each chunk digest to one (file, offset, length). The files can change at any time:
// SeedSource re-reads and re-verifies a seeded chunk every time it is used.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { LBFS_PARAMS, nextFileCut, OBJECT_MAGIC_BYTES } from '../chunking/chunker';
import { asDigest, digestOf, verifyDigest, type Digest } from '../chunking/digest';
import type { ChunkSource } from './chunkSource';
import { makeDirs } from './dirs';

export interface SeedLocation {
  path: string;
  offset: number;
  length: number;
}

interface SeedFile {
  path: string;
  size: number;
  mtimeMs: number;
  ino: number;
}

export interface SeedReport {
  files: number;
  unchanged: number;
  bytes: number;
  chunks: number;
  skipped: number;
}

/**
 * Index layout version: 2 added whole-file digests, 3 the object-boundary chunking rule (files
 * seeded by an older version are read again).
 */
const INDEX_VERSION = 3;

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

export function seedDir(storeDir: string): string {
  return path.join(storeDir, 'seeds');
}

const WINDOW = 8 << 20;

/**
 * The chunks of bytes [start, start + length) of an open file, chunked from `start` with the
 * store's rule (Rabin cuts plus object boundaries at the bytes' own file offsets), a window at a
 * time. The last chunk ends at start + length. `onBytes` sees every byte once, in order.
 */
export async function chunkOpenFile(
  fh: fs.promises.FileHandle,
  start: number,
  length: number,
  onBytes?: (b: Buffer) => void,
): Promise<Array<{ offset: number; length: number; digest: Digest }>> {
  const out: Array<{ offset: number; length: number; digest: Digest }> = [];
  // A window holds whole chunks plus the bytes that tell whether a page starts an object.
  const buf = Buffer.allocUnsafe(Math.min(WINDOW, length) + LBFS_PARAMS.maxSize + OBJECT_MAGIC_BYTES);
  let pos = 0; // relative to start
  while (pos < length) {
    const want = Math.min(buf.length, length - pos + OBJECT_MAGIC_BYTES);
    const { bytesRead } = await fh.read(buf, 0, want, start + pos);
    const inRange = Math.min(bytesRead, length - pos);
    if (inRange < Math.min(want, length - pos)) throw new Error('file shorter than expected');
    const isFinal = pos + inRange >= length;
    const view = buf.subarray(0, bytesRead);
    let from = 0;
    for (;;) {
      if (from >= inRange) break;
      // Without the final bytes in the window, stop where a chunk could still reach past it.
      if (!isFinal && inRange - from < LBFS_PARAMS.maxSize + OBJECT_MAGIC_BYTES) break;
      const len = nextFileCut(view, from, inRange, isFinal, start + pos);
      if (len <= 0) break;
      out.push({ offset: start + pos + from, length: len, digest: digestOf(view.subarray(from, from + len)) });
      from += len;
    }
    if (from === 0 && !isFinal) throw new Error('window smaller than a chunk');
    onBytes?.(view.subarray(0, from));
    pos += from;
    if (isFinal && from >= inRange) break;
  }
  return out;
}

export class SeedIndex {
  private constructor(
    private readonly env: RootDatabase<Buffer, Buffer>,
    private readonly files: Database<Buffer, Buffer>,
    private readonly paths: Database<Buffer, string>,
    private readonly chunks: Database<Buffer, Buffer>,
    private readonly wholes: Database<Buffer, Buffer>,
    private readonly meta: Database<Buffer, string>,
  ) {}

  /** The seed index of a store; undefined when opening read-only and nothing was ever seeded. */
  static async open(storeDir: string, opts: { readOnly?: boolean } = {}): Promise<SeedIndex | undefined> {
    const dir = seedDir(storeDir);
    if (opts.readOnly && !fs.existsSync(path.join(dir, 'data.mdb'))) return undefined;
    await makeDirs(dir);
    const env = openLmdb<Buffer, Buffer>({ path: dir, maxDbs: 8, readOnly: opts.readOnly ?? false, encoding: 'binary', keyEncoding: 'binary', cache: false });
    const db = (name: string) => env.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary', cache: false });
    const paths = env.openDB<Buffer, string>({ name: 'paths', encoding: 'binary', keyEncoding: 'ordered-binary', cache: false });
    const meta = env.openDB<Buffer, string>({ name: 'meta', encoding: 'binary', keyEncoding: 'ordered-binary', cache: false });
    return new SeedIndex(env, db('files'), paths, db('chunks'), db('wholes'), meta);
  }

  async close(): Promise<void> {
    await this.env.close();
  }

  /** Where a chunk with this digest was seen, or undefined. */
  lookup(digest: Digest): SeedLocation | undefined {
    const v = this.chunks.getBinary(digest);
    if (!v || v.length !== 16) return undefined;
    const file = this.file(v.readUInt32BE(0));
    if (!file) return undefined;
    return { path: file.path, offset: Number(v.readBigUInt64BE(4)), length: v.readUInt32BE(12) };
  }

  /**
   * A seeded file whose whole content had this digest when it was seeded (a slinked file's
   * manifest names its libraries by such digests). Callers verify what they read from it.
   */
  lookupFile(digest: Digest): { path: string; size: number } | undefined {
    const v = this.wholes.getBinary(digest);
    if (!v || v.length !== 4) return undefined;
    const f = this.file(v.readUInt32BE(0));
    return f && { path: f.path, size: f.size };
  }

  private file(id: number): SeedFile | undefined {
    const raw = this.files.getBinary(u32(id));
    return raw ? (JSON.parse(raw.toString('utf8')) as SeedFile) : undefined;
  }

  get chunkCount(): number {
    return (this.chunks.getStats() as { entryCount: number }).entryCount;
  }

  /** Index every regular file below `roots` (symlinks are not followed); unchanged files are skipped. */
  async seed(roots: readonly string[], onFile?: (p: string, done: number) => void): Promise<SeedReport> {
    const report: SeedReport = { files: 0, unchanged: 0, bytes: 0, chunks: 0, skipped: 0 };
    for (const root of roots) {
      for await (const file of walkFiles(path.resolve(root), () => report.skipped++)) {
        await this.seedFile(file, report);
        onFile?.(file, report.files + report.unchanged);
      }
    }
    await this.env.transaction(() => this.meta.put('version', u32(INDEX_VERSION)));
    await this.env.flushed;
    return report;
  }

  private async seedFile(file: string, report: SeedReport): Promise<void> {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(file);
    } catch {
      report.skipped++;
      return;
    }
    if (!st.isFile() || st.size === 0) return;
    if (Buffer.byteLength(file) > 1900) {
      report.skipped++; // longer than an LMDB key
      return;
    }
    const known = this.paths.getBinary(file);
    if (known && this.version() >= INDEX_VERSION) {
      const f = this.file(known.readUInt32BE(0));
      if (f && f.size === st.size && f.mtimeMs === st.mtimeMs && f.ino === st.ino) {
        report.unchanged++;
        return;
      }
    }
    let found: Array<{ digest: Digest; offset: number; length: number }>;
    const whole = createHash('sha256');
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch {
      report.skipped++;
      return;
    }
    try {
      found = await chunkOpenFile(fh, 0, st.size, (b) => whole.update(b));
    } catch {
      report.skipped++;
      return;
    } finally {
      await fh.close();
    }
    const record: SeedFile = { path: file, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
    const wholeDigest = asDigest(Buffer.concat([Buffer.from([1]), whole.digest()]));
    await this.env.transaction(() => {
      const id = known ? known.readUInt32BE(0) : this.nextId();
      this.files.put(u32(id), Buffer.from(JSON.stringify(record)));
      this.paths.put(file, u32(id));
      this.wholes.put(wholeDigest, u32(id));
      for (const c of found) {
        const v = Buffer.allocUnsafe(16);
        v.writeUInt32BE(id, 0);
        v.writeBigUInt64BE(BigInt(c.offset), 4);
        v.writeUInt32BE(c.length, 12);
        // The newest sighting wins: an older file may have changed or gone since.
        this.chunks.put(c.digest, v);
      }
    });
    report.files++;
    report.bytes += st.size;
    report.chunks += found.length;
  }

  private version(): number {
    const raw = this.meta.getBinary('version');
    return raw ? raw.readUInt32BE(0) : 1;
  }

  /** A fresh file id (inside a transaction). */
  private nextId(): number {
    const raw = this.meta.getBinary('nextId');
    const id = raw ? raw.readUInt32BE(0) : 1;
    this.meta.put('nextId', u32(id + 1));
    return id;
  }
}

async function* walkFiles(root: string, onError: () => void): AsyncGenerator<string> {
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(root);
  } catch {
    onError();
    return;
  }
  if (st.isFile()) {
    yield root;
    return;
  }
  if (!st.isDirectory()) return;
  let names: string[];
  try {
    names = (await fs.promises.readdir(root)).sort();
  } catch {
    onError();
    return;
  }
  for (const n of names) yield* walkFiles(path.join(root, n), onError);
}

/** Seeded files as a ChunkSource: every chunk is read from its file and verified before use. */
export class SeedSource implements ChunkSource {
  readonly name = 'seeds';
  readonly counters = { hits: 0, misses: 0, stale: 0 };

  constructor(private readonly index: SeedIndex) {}

  async getChunk(digest: Digest): Promise<Buffer | undefined> {
    const loc = this.index.lookup(digest);
    if (!loc) {
      this.counters.misses++;
      return undefined;
    }
    const buf = Buffer.allocUnsafe(loc.length);
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(loc.path, 'r');
      const { bytesRead } = await fh.read(buf, 0, loc.length, loc.offset);
      if (bytesRead === loc.length && verifyDigest(digest, buf)) {
        this.counters.hits++;
        return buf;
      }
    } catch {
      /* gone or unreadable: the same as changed */
    } finally {
      await fh?.close();
    }
    this.counters.stale++;
    return undefined;
  }
}
