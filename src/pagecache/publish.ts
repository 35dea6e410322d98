// Publishing: when a slinked file is committed to the mount, each embedded object it carries is
// written once as a read-only file of its own, /.slinky/objects/<algorithm>-<hex>, named by its
// whole-object digest. The store chunks an embedded object exactly like the object as a file
// (docs/FORMAT.md, "Object boundaries"), so all its chunks but the last are already stored and
// publishing costs one new chunk per object. Nothing from the slinked file is trusted: the bytes
// must hash to the digest the manifest names them by, and the manifest's code-page digests must
// match the bytes, before the object and its page table appear (written under /.slinky/tmp and
// renamed into place). A malformed or lying manifest is counted and skipped.
import { createHash } from 'node:crypto';
import { algorithmOf, type HashAlgorithm, DEFAULT_ALGORITHM } from '../chunking/digest';
import { ExistsError, NotFoundError } from '../store/errors';
import { PAGE_SIZE, TRAILER_SIZE, type ManifestObject } from '../elf/manifest';
import { codePageSpans, type SegmentHeader } from '../elf/pageDigests';
import type { Caller, Filesystem } from '../fs/filesystem';
import { hasTrailer, readManifest } from './manifestReader';
import type { ObjectIndex } from './objectIndex';
import {
  DIR_MODE,
  OBJECTS_DIR,
  OBJECT_MODE,
  PAGES_DIR,
  SLINKY_DIR,
  TMP_DIR,
  TMP_DIR_MODE,
  objectName,
  objectPath,
  pageTablePath,
} from './layout';
import { MAX_OBJECT_SIZE, PAGE_CODE, encodePageTable, hashPage, pageCountOf, type PageTable } from './pageTable';
import type { RawRead } from './reader';

const WINDOW = 1 << 20;

export interface PublishCounters {
  /** Committed files whose last bytes were read back to look for a slinky trailer. */
  examined: number;
  /** Committed files recognised as slinked files. */
  slinkedFiles: number;
  /** Objects written to /.slinky/objects, and their bytes. */
  published: number;
  publishedBytes: number;
  /** Embedded objects found already published. */
  alreadyPublished: number;
  /** Objects whose bytes did not match the manifest's digests (or too big to publish). */
  refused: number;
  /** Files with a slinky trailer whose trailer or manifest did not parse. */
  malformed: number;
}

export interface PublishDeps {
  fs: Filesystem;
  raw: RawRead;
  /** Size of a regular file's committed content, or undefined. */
  sizeOf: (ino: number) => number | undefined;
  /** True when every chunk of the file is in the local store: files still arriving from a peer
   *  are not fetched just to be published (the next start-up looks again). */
  isLocal: (ino: number, from: number, to: number) => boolean;
  /** The store's examination mark of a file, taken before it is looked at (Store.examinationMark). */
  markOf: (ino: number) => number;
  /** The file was looked at and its content decided (no need to look again until it changes). */
  looked: (ino: number, mark: number) => void;
  owner: Caller;
  index: ObjectIndex;
  /** The store's page table key (pageTable.ts). */
  key: Buffer;
  log: (line: string) => void;
}

/** Program headers from the first bytes of an ELF64 object, when they lie within them. */
export function programHeaders(head: Buffer): SegmentHeader[] {
  if (head.length < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return [];
  const phoff = Number(head.readBigUInt64LE(32));
  const phentsize = head.readUInt16LE(54);
  const phnum = head.readUInt16LE(56);
  if (phentsize !== 56 || phoff + phnum * 56 > head.length) return [];
  const out: SegmentHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * 56;
    out.push({ type: head.readUInt32LE(at), flags: head.readUInt32LE(at + 4), offset: Number(head.readBigUInt64LE(at + 8)), filesz: Number(head.readBigUInt64LE(at + 32)) });
  }
  return out;
}

/** Hashes an object window by window: its whole-object digest and the hash of every page. */
export class TableBuilder {
  private readonly whole;
  private readonly hashes: Buffer;
  private readonly flags: Buffer;
  private done = 0;
  private headers: SegmentHeader[] | undefined;

  constructor(
    readonly size: number,
    private readonly objectAlgorithm: HashAlgorithm,
    private readonly pageAlgorithm: HashAlgorithm = DEFAULT_ALGORITHM,
  ) {
    this.whole = createHash(objectAlgorithm);
    const pages = pageCountOf(size);
    this.hashes = Buffer.alloc(pages * 32);
    this.flags = Buffer.alloc(pages);
  }

  /** The next bytes of the object; every window but the last is a multiple of 4096 bytes. */
  update(bytes: Buffer): void {
    if (this.done === 0) this.headers = programHeaders(bytes);
    this.whole.update(bytes);
    for (let at = 0; at < bytes.length; at += PAGE_SIZE) {
      const page = (this.done + at) / PAGE_SIZE;
      hashPage(bytes.subarray(at, at + PAGE_SIZE), this.pageAlgorithm).copy(this.hashes, page * 32);
    }
    this.done += bytes.length;
  }

  /** The whole-object digest (tagged) and the table; call after the last byte. */
  finish(): { digest: Buffer; table: Omit<PageTable, 'object'> } {
    const digest = Buffer.concat([Buffer.from([algorithmId(this.objectAlgorithm)]), this.whole.digest()]);
    for (const s of codePageSpans(this.headers ?? [])) {
      for (let p = s.firstPage; p < s.firstPage + s.pageCount && p < this.flags.length; p++) this.flags[p] = PAGE_CODE;
    }
    return {
      digest,
      table: { objectSize: this.size, algorithmId: algorithmId(this.pageAlgorithm), hashLength: 32, pageCount: this.flags.length, flags: this.flags, hashes: this.hashes },
    };
  }
}

function algorithmId(a: HashAlgorithm): number {
  if (a !== 'sha256') throw new Error(`no algorithm id for ${a}`);
  return 1;
}

export class Publisher {
  readonly counters: PublishCounters = { examined: 0, slinkedFiles: 0, published: 0, publishedBytes: 0, alreadyPublished: 0, refused: 0, malformed: 0 };
  private readonly queue = new Set<number>();
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private seq = 0;
  private dirsReady = false;
  private stopping = false;

  constructor(private readonly d: PublishDeps) {}

  /** Queue a committed file for a look (cheap: the commit path must not wait for us). */
  enqueue(ino: number): void {
    if (this.stopping || this.d.index.isProtected(ino)) return;
    this.queue.add(ino);
    if (!this.draining) {
      this.draining = true;
      this.drained = this.drain();
    }
  }

  /** Stop taking files; an object being written is abandoned (its temporary file removed). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.queue.clear();
    await this.idle();
  }

  /** Settles when everything queued so far has been looked at. */
  async idle(): Promise<void> {
    while (this.draining) await this.drained;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.size) {
        const ino: number = this.queue.values().next().value!;
        this.queue.delete(ino);
        const mark = this.d.markOf(ino);
        try {
          if (await this.publishFrom(ino)) this.d.looked(ino, mark);
        } catch (err) {
          this.d.log(`page cache: publishing objects of inode ${ino} failed: ${(err as Error).message}`);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async read(ino: number, offset: number, length: number): Promise<Buffer> {
    const b = Buffer.alloc(length);
    await this.d.raw(ino, offset, b);
    return b;
  }

  /**
   * Publishes the objects of file `ino` if it is a slinked file. False when that could not be
   * decided: some of its chunks are not here yet.
   */
  async publishFrom(ino: number): Promise<boolean> {
    if (this.d.index.isProtected(ino)) return true;
    const size = this.d.sizeOf(ino);
    if (size === undefined || size < TRAILER_SIZE) return true;
    if (!this.d.isLocal(ino, size - TRAILER_SIZE, size)) return false;
    this.counters.examined++;
    const tail = await this.read(ino, size - TRAILER_SIZE, TRAILER_SIZE);
    if (!hasTrailer(tail)) return true;
    if (!this.d.isLocal(ino, 0, size)) return false;
    let objects: readonly ManifestObject[];
    let pageAlgorithm: HashAlgorithm | null;
    try {
      const m = await readManifest((at, n) => this.read(ino, at, n), size, tail);
      if (!m) return true;
      objects = m.objects;
      pageAlgorithm = m.pageDigestAlgorithm;
    } catch (err) {
      this.counters.malformed++;
      this.d.log(`page cache: inode ${ino} has a slinky trailer but ${(err as Error).message}`);
      return true;
    }
    this.counters.slinkedFiles++;
    for (const o of objects) {
      const name = objectName(o.digest);
      if (this.d.index.named(name)) {
        this.counters.alreadyPublished++;
        continue;
      }
      if (o.size > MAX_OBJECT_SIZE) {
        this.counters.refused++;
        continue;
      }
      await this.publishObject(ino, o, name, pageAlgorithm);
    }
    return true;
  }

  private async ensureDirs(): Promise<void> {
    if (this.dirsReady) return;
    for (const [dir, mode] of [[SLINKY_DIR, DIR_MODE], [OBJECTS_DIR, DIR_MODE], [PAGES_DIR, DIR_MODE], [TMP_DIR, TMP_DIR_MODE]] as const) {
      try {
        await this.d.fs.mkdir(dir, mode, this.d.owner);
      } catch (err) {
        if (!(err instanceof ExistsError)) throw err;
      }
      const ino = (await this.d.fs.getattr(dir)).ino;
      this.d.index.protect(ino);
      if (dir === OBJECTS_DIR) this.d.index.objectsDir = ino;
      if (dir === SLINKY_DIR) this.d.index.slinkyDir = ino;
    }
    this.dirsReady = true;
  }

  /** Writes (or replaces) the page table of object `name`, authenticated with the store's key. */
  async writeTable(name: string, table: PageTable): Promise<void> {
    await this.ensureDirs();
    const encoded = encodePageTable(table, this.d.key);
    const tmp = `${TMP_DIR}/${name}.${this.seq++}.pages`;
    try {
      await this.writeFile(tmp, (write) => write(encoded, 0));
      await this.d.fs.rename(tmp, pageTablePath(name));
    } catch (err) {
      await this.discard(tmp);
      throw err;
    }
    this.d.index.protect((await this.d.fs.getattr(pageTablePath(name))).ino);
  }

  /** Writes `bytes` as a new file at `path` (the caller renames it into place). */
  private async writeFile(path: string, produce: (write: (b: Buffer, at: number) => Promise<void>) => Promise<void>): Promise<number> {
    const fh = await this.d.fs.create(path, OBJECT_MODE, this.d.owner);
    const ino = (await this.d.fs.getattr(path)).ino;
    this.d.index.protect(ino);
    try {
      await produce(async (b, at) => {
        await this.d.fs.write(fh, b, b.length, at);
      });
      await this.d.fs.flush(fh);
    } finally {
      await this.d.fs.release(fh);
    }
    return ino;
  }

  private async discard(path: string): Promise<void> {
    await this.d.fs.unlink(path).catch((err) => {
      if (!(err instanceof NotFoundError)) this.d.log(`page cache: cannot remove ${path}: ${(err as Error).message}`);
    });
  }

  private async publishObject(fileIno: number, o: ManifestObject, name: string, pageAlgorithm: HashAlgorithm | null): Promise<void> {
    await this.ensureDirs();
    const seq = this.seq++;
    const tmpObject = `${TMP_DIR}/${name}.${seq}`;
    const builder = new TableBuilder(o.size, algorithmOf(o.digest));
    try {
      await this.writeFile(tmpObject, async (write) => {
        for (let at = 0; at < o.size; at += WINDOW) {
          if (this.stopping) throw new Error('the daemon is stopping');
          const bytes = await this.read(fileIno, o.offset + at, Math.min(WINDOW, o.size - at));
          builder.update(bytes);
          await write(bytes, at);
        }
      });
      const { digest, table } = builder.finish();
      const why = digest.equals(o.digest) ? mismatchedCodePage(o, table, pageAlgorithm) : 'its bytes do not match its digest';
      if (why) {
        this.counters.refused++;
        this.d.log(`page cache: not publishing ${o.name} (${name}) from inode ${fileIno}: ${why}`);
        await this.discard(tmpObject);
        return;
      }
      const full: PageTable = { ...table, object: o.digest };
      await this.writeTable(name, full);
      await this.d.fs.rename(tmpObject, objectPath(name));
      const ino = (await this.d.fs.getattr(objectPath(name))).ino;
      this.d.index.add({ name, digest: o.digest, ino, size: o.size, table: full });
      this.counters.published++;
      this.counters.publishedBytes += o.size;
    } catch (err) {
      await this.discard(tmpObject);
      throw err;
    }
  }
}

/** Why the manifest's code-page digests disagree with the bytes, or null when they agree. */
function mismatchedCodePage(o: ManifestObject, table: Omit<PageTable, 'object'>, pageAlgorithm: HashAlgorithm | null): string | null {
  if (!pageAlgorithm) return null;
  if (pageAlgorithm !== 'sha256') return `page digests use ${pageAlgorithm}`;
  for (const run of o.runs) {
    for (let i = 0; i < run.digests.length; i++) {
      const p = run.firstPage + i;
      const d = run.digests[i];
      if (p >= table.pageCount || !d.subarray(1).equals(table.hashes.subarray(p * 32, (p + 1) * 32))) {
        return `code page ${p} does not match the digest table`;
      }
    }
  }
  return null;
}
