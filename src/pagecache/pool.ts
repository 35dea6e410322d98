// The global digest table (GDT): verified pages keyed by page digest, shared by every object and
// every process that needs the same bytes. A page enters only after its bytes matched its digest
// (reader.ts); afterwards a hit is served without touching the store or hashing again.
//
// Memory is bounded. Each entry carries a reference count: the number of live processes that
// map a page with this digest (procMaps.ts builds those per-process tables). Unreferenced
// entries are evicted least recently used first; referenced ones stay, and when the bound is
// taken entirely by referenced pages a new page is served without being cached ("bypassed").
// The kernel page cache of each object file already shares mapped pages between processes: this
// pool is what a page costs the daemon to produce again (no decompression, no re-verification)
// and what pages identical across different objects share.

export const DEFAULT_POOL_BYTES = 4 << 20;
const PAGE = 4096;

export interface PoolCounters {
  /** Pages served from the pool. */
  hits: number;
  /** Pages that had to come from the store (then verified). */
  misses: number;
  /** Pages whose bytes did not match their digest: refused, never cached. */
  verificationFailures: number;
  evictions: number;
  /** Verified pages not cached because every entry was referenced and the pool was full. */
  bypassed: number;
}

interface Entry {
  page: Buffer;
  refs: number;
}

export class PagePool {
  readonly counters: PoolCounters = { hits: 0, misses: 0, verificationFailures: 0, evictions: 0, bypassed: 0 };
  /** Unreferenced entries in least-recently-used-first order (Map iteration order). */
  private readonly idle = new Map<string, Entry>();
  private readonly held = new Map<string, Entry>();
  /** Latest reference count per key, including keys that are not (yet) in the pool. */
  private refs = new Map<string, number>();

  constructor(readonly limitBytes = DEFAULT_POOL_BYTES) {}

  get entries(): number {
    return this.idle.size + this.held.size;
  }
  get bytes(): number {
    return this.entries * PAGE;
  }
  get referencedEntries(): number {
    return this.held.size;
  }

  has(key: string): boolean {
    return this.idle.has(key) || this.held.has(key);
  }

  /** The page for `key` (counted as a hit), or undefined. Do not modify the returned bytes. */
  get(key: string): Buffer | undefined {
    const held = this.held.get(key);
    if (held) {
      this.counters.hits++;
      return held.page;
    }
    const e = this.idle.get(key);
    if (!e) return undefined;
    this.idle.delete(key);
    this.idle.set(key, e);
    this.counters.hits++;
    return e.page;
  }

  /** Add a page whose bytes were verified against `key`. Returns false when it was bypassed. */
  put(key: string, page: Buffer): boolean {
    if (this.has(key)) return true;
    if (page.length !== PAGE) throw new RangeError('pool pages are 4096 bytes');
    if (this.bytes + PAGE > this.limitBytes && !this.evictOne()) {
      this.counters.bypassed++;
      return false;
    }
    const refs = this.refs.get(key) ?? 0;
    (refs > 0 ? this.held : this.idle).set(key, { page, refs });
    return true;
  }

  private evictOne(): boolean {
    for (const key of this.idle.keys()) {
      this.idle.delete(key);
      this.counters.evictions++;
      return true;
    }
    return false;
  }

  /** Replace every reference count (from a fresh scan of the processes' mappings). */
  setReferences(refs: Map<string, number>): void {
    this.refs = refs;
    for (const [key, e] of this.held) {
      e.refs = refs.get(key) ?? 0;
      if (e.refs === 0) {
        this.held.delete(key);
        this.idle.set(key, e);
      }
    }
    for (const [key, e] of this.idle) {
      const n = refs.get(key) ?? 0;
      if (n > 0) {
        e.refs = n;
        this.idle.delete(key);
        this.held.set(key, e);
      }
    }
  }

  /** Drop unreferenced entries until the pool is within `bytes`. */
  trimTo(bytes: number): void {
    while (this.bytes > bytes && this.evictOne());
  }
}
