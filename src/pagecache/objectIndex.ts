// What the daemon knows about published objects: inode <-> name, each object's page table
// (loaded on first use), and the inodes nobody may change through the mount.
import type { Digest } from '../chunking/digest';
import type { PageTable } from './pageTable';

export interface ObjectEntry {
  readonly name: string;
  readonly digest: Digest;
  readonly ino: number;
  readonly size: number;
  table?: PageTable;
  loading?: Promise<PageTable>;
  /** Set when the object's bytes do not match its name: every read fails at once. */
  broken?: string;
  /** The verified identical file its opens pass through to (twins.ts). */
  twin?: string;
}

export class ObjectIndex {
  private readonly byIno = new Map<number, ObjectEntry>();
  private readonly byName = new Map<string, ObjectEntry>();
  private readonly protectedInos = new Set<number>();
  /** Inodes of /.slinky and /.slinky/objects once they exist. */
  slinkyDir: number | undefined;
  objectsDir: number | undefined;

  /** Told when an inode becomes or stops being a published object (the FUSE fast path). */
  private listener: ((ino: number, isObject: boolean) => void) | undefined;

  add(e: ObjectEntry): void {
    const old = this.byName.get(e.name);
    if (old) this.byIno.delete(old.ino);
    this.byIno.set(e.ino, e);
    this.byName.set(e.name, e);
    this.protectedInos.add(e.ino);
    if (old && old.ino !== e.ino) this.listener?.(old.ino, false);
    this.listener?.(e.ino, true);
  }

  /** Call `fn` for every object now and for every change from now on. */
  watch(fn: (ino: number, isObject: boolean) => void): void {
    this.listener = fn;
    for (const ino of this.byIno.keys()) fn(ino, true);
  }

  get(ino: number): ObjectEntry | undefined {
    return this.byIno.get(ino);
  }

  named(name: string): ObjectEntry | undefined {
    return this.byName.get(name);
  }

  /** Objects that pass through to a twin. */
  twinCount(): number {
    let n = 0;
    for (const e of this.byIno.values()) if (e.twin) n++;
    return n;
  }

  isObject(ino: number): boolean {
    return this.byIno.has(ino);
  }

  protect(ino: number): void {
    this.protectedInos.add(ino);
  }

  /** The .slinky directories, the objects, their page tables and objects being written. */
  isProtected(ino: number): boolean {
    return this.protectedInos.has(ino);
  }

  get size(): number {
    return this.byIno.size;
  }

  all(): IterableIterator<ObjectEntry> {
    return this.byIno.values();
  }
}
