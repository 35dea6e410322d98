// Getting into a store directly (no mount): the file or tree is created first under a staging
// name with its full recipe, chunks the store lacks as absent references, and chunks are filled
// in as they arrive verified, a transaction per few MiB. Once nothing is absent the staging name
// is renamed to the real one. An interrupted transfer leaves the staging tree with what arrived;
// the next attempt builds a fresh staging tree (taking references on those chunks) before it
// drops the old one, so nothing that arrived is fetched again.
import { encodeChunkAsync, CODEC_RAW, CODEC_ZSTD } from '../chunking/compress';
import type { Digest } from '../chunking/digest';
import { ExistsError } from '../store/errors';
import type { Ino } from '../store/records';
import type { Store, StoredChunk } from '../store/store';
import type { ChunkWanted } from './client';
import { addNode, createEntries, ensureDir, type Owner, removeTree, renameEntry } from './storeTree';
import { type Plan, uniqueChunks } from './transfer';

const FLUSH_BYTES = 4 << 20;
const FLUSH_CHUNKS = 1024;

export class StoreSink {
  private parent: Ino | undefined;
  private pending: Promise<{ digest: Digest; enc: StoredChunk }>[] = [];
  private pendingBytes = 0;
  /** True when a staging tree from an earlier, interrupted attempt was found. */
  resumed = false;

  constructor(
    private readonly store: Store,
    private readonly destDir: readonly string[],
    readonly name: string,
    private readonly owner: Owner,
  ) {}

  get stagingName(): string {
    return `.${this.name}.slinkyfs-part`;
  }
  private get staleName(): string {
    return `.${this.name}.slinkyfs-stale`;
  }

  /** Create the staging tree; returns the chunks still absent, in plan order. */
  async stage(plan: Plan): Promise<Array<ChunkWanted & { length: number }>> {
    const store = this.store;
    const parent = await store.txn(() => {
      const p = ensureDir(store, this.destDir, this.owner);
      if (store.lookup(p, this.name) !== undefined) throw new ExistsError(`/${[...this.destDir, this.name].join('/')} exists in the store`);
      if (store.lookup(p, this.stagingName) !== undefined) {
        removeTree(store, p, this.staleName);
        renameEntry(store, p, this.stagingName, this.staleName);
        this.resumed = true;
      }
      return p;
    });
    this.parent = parent;
    if (plan.kind === 'file') {
      await store.txn(() => addNode(store, parent, this.stagingName, plan.root, plan.recipes.get(plan.root.digest!), this.owner));
    } else {
      const top = await store.txn(() => addNode(store, parent, this.stagingName, plan.root, undefined, this.owner));
      await createEntries(store, top, plan.entries, plan.recipes, this.owner);
    }
    if (this.resumed) await store.txn(() => removeTree(store, parent, this.staleName));
    return Array.from(uniqueChunks(plan).values()).filter((c) => store.isChunkAbsent(c.digest));
  }

  /**
   * Take a verified chunk; `zstd` is its compressed form as it arrived, stored as it is when it
   * is shorter (the store keeps a chunk compressed only then: docs/FORMAT.md), else raw.
   */
  async fill(digest: Digest, plain: Buffer, zstd?: Buffer): Promise<void> {
    const enc = zstd ? (zstd.length < plain.length ? { codec: CODEC_ZSTD, data: zstd } : { codec: CODEC_RAW, data: plain }) : undefined;
    this.pending.push(enc ? Promise.resolve({ digest, enc }) : encodeChunkAsync(plain).then((e) => ({ digest, enc: e })));
    this.pendingBytes += plain.length;
    if (this.pendingBytes >= FLUSH_BYTES || this.pending.length >= FLUSH_CHUNKS) await this.flush();
  }

  /** Commit the chunks taken so far. */
  async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (batch.length === 0) return;
    const items = await Promise.all(batch);
    const bytes = items.reduce((n, it) => n + it.enc.data.length + 64, 0);
    await this.store.txn(() => {
      for (const it of items) this.store.fillChunk(it.digest, it.enc);
    }, bytes);
  }

  /** Chunks of the plan still absent (after flush). */
  stillAbsent(plan: Plan): number {
    let n = 0;
    for (const c of uniqueChunks(plan).values()) if (this.store.isChunkAbsent(c.digest)) n++;
    return n;
  }

  /** Give the staged tree its real name. */
  async finish(): Promise<void> {
    await this.flush();
    const parent = this.parent!;
    await this.store.txn(() => renameEntry(this.store, parent, this.stagingName, this.name));
  }
}
