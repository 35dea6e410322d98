// The read path of published objects: every page is served from the pool (GDT) when its digest
// is there, else read from the store and verified against the object's page table before it is
// cached or handed to the kernel. A page that does not match is never cached and the read fails
// with EIO: the process faulting it gets SIGBUS or EIO, never different code.
import { PAGE_SIZE } from '../elf/manifest';
import type { Digest, HashAlgorithm } from '../chunking/digest';
import { algorithmOf } from '../chunking/digest';
import { hashPage, pageHash, pageKey, type PageTable } from './pageTable';
import type { PagePool } from './pool';

/** A page's bytes did not match its digest (the store or the object file was tampered with). */
export class PageVerificationError extends Error {
  override name = 'PageVerificationError';
  readonly errno = 5; // EIO at the FUSE boundary
}

export interface ObjectToRead {
  readonly name: string;
  readonly ino: number;
  readonly table: PageTable;
}

/** Reads committed bytes of an inode: [offset, offset + target.length) into target. */
export type RawRead = (ino: number, offset: number, target: Buffer) => Promise<void>;

export class VerifiedReader {
  constructor(
    private readonly pool: PagePool,
    private readonly raw: RawRead,
    private readonly onFailure: (object: string, page: number) => void,
  ) {}

  /** Bytes [offset, offset + size) of the object, clipped to its end. */
  async read(o: ObjectToRead, offset: number, size: number): Promise<Buffer> {
    const t = o.table;
    const end = Math.min(offset + size, t.objectSize);
    if (offset >= end) return Buffer.alloc(0);
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.ceil(end / PAGE_SIZE); // exclusive
    const out = Buffer.allocUnsafe((last - first) * PAGE_SIZE);
    const algorithm = algorithmOf(Buffer.from([t.algorithmId]) as Digest);
    let runStart = -1;
    for (let p = first; p <= last; p++) {
      const cached = p < last ? this.pool.get(pageKey(t, p)) : undefined;
      if (cached) cached.copy(out, (p - first) * PAGE_SIZE);
      if (p < last && !cached) {
        if (runStart < 0) runStart = p;
        continue;
      }
      if (runStart >= 0) {
        await this.fill(o, algorithm, runStart, p, out.subarray((runStart - first) * PAGE_SIZE, (p - first) * PAGE_SIZE));
        runStart = -1;
      }
    }
    return out.subarray(offset - first * PAGE_SIZE, end - first * PAGE_SIZE);
  }

  /** Pages [from, to) from the store into `into`, each verified, then offered to the pool. */
  private async fill(o: ObjectToRead, algorithm: HashAlgorithm, from: number, to: number, into: Buffer): Promise<void> {
    const t = o.table;
    const bytes = Math.min(to * PAGE_SIZE, t.objectSize) - from * PAGE_SIZE;
    into.fill(0); // whatever the store lacks reads as zeros, and then fails verification
    await this.raw(o.ino, from * PAGE_SIZE, into.subarray(0, bytes));
    for (let p = from; p < to; p++) {
      this.pool.counters.misses++;
      const page = into.subarray((p - from) * PAGE_SIZE, (p - from + 1) * PAGE_SIZE);
      const valid = Math.min(PAGE_SIZE, t.objectSize - p * PAGE_SIZE);
      if (!hashPage(page.subarray(0, valid), algorithm).equals(pageHash(t, p))) {
        this.pool.counters.verificationFailures++;
        this.onFailure(o.name, p);
        throw new PageVerificationError(`page ${p} of object ${o.name} does not match its digest`);
      }
      this.pool.put(pageKey(t, p), Buffer.from(page));
    }
  }
}
