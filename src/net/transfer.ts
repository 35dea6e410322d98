// Getting files from a peer, the parts every destination shares: what to fetch (a file by path
// or by digest, or a whole tree, with every recipe checked against its digest), which chunks
// that takes, and fetching a list of chunks in batches with several requests in flight.
import { digestFromString, digestToString, type Digest } from '../chunking/digest';
import { DigestFormatError } from '../chunking/digest';
import { type ArrivedChunk, type ChunkWanted, PeerClient, PeerRefusedError } from './client';
import { type FileLayout, LIMITS, PeerProtocolError, type Recipe, type TreeEntry, type WireCodec, fileDigest } from './protocol';
import { type LocalObjects, expandCompact, objectBitmap } from './localObjects';

export interface Plan {
  /** What was asked for: a file (by path or digest) or a directory tree. */
  kind: 'file' | 'dir';
  /** The file or directory itself; its name is the base name (or the digest for a digest). */
  root: TreeEntry;
  /** Everything below a directory, in pre-order; empty for a file. */
  entries: TreeEntry[];
  /** Recipes by file digest (text form). */
  recipes: Map<string, Recipe>;
  /** Layouts of the slinked files among them (asked for only when there are local objects). */
  layouts: Map<string, FileLayout>;
}

/** Files smaller than this are not asked about layouts: a slinked file carries a whole loader. */
const LAYOUT_MIN_SIZE = 64 << 10;

export function isDigestName(what: string): boolean {
  try {
    digestFromString(what);
    return true;
  } catch (e) {
    if (e instanceof DigestFormatError) return false;
    throw e;
  }
}

/**
 * Work out what `what` (a path on the peer, or sha256-<hex>) is and fetch its listing and
 * recipes. Named by digest, nothing the peer says is trusted: the recipe must hash to the name.
 */
export async function planFromPeer(client: PeerClient, what: string, allowDir: boolean, objects?: LocalObjects): Promise<Plan> {
  if (isDigestName(what)) {
    const digest = digestFromString(what);
    const [recipe] = await client.recipes([digest]);
    if (!recipe) throw new PeerRefusedError(`${client.name} does not have ${what}`, 404);
    const root: TreeEntry = { name: what, type: 'file', mode: recipe.mode & 0o7777, mtime: Date.now(), size: recipe.size, digest: what };
    const layouts = new Map<string, FileLayout>();
    if (objects) await fetchLayouts(client, [root], layouts);
    return { kind: 'file', root, entries: [], recipes: new Map([[what, recipe]]), layouts };
  }
  const root = await client.stat(what);
  if (root.type === 'symlink') throw new PeerRefusedError(`${what} is a symbolic link on ${client.name} (to ${root.target})`, 409);
  const layouts = new Map<string, FileLayout>();
  if (root.type === 'file') {
    const recipes = await fetchRecipes(client, [root], objects, layouts);
    return { kind: 'file', root, entries: [], recipes, layouts };
  }
  if (!allowDir) throw new PeerRefusedError(`${what} is a directory on ${client.name}: use --dir`, 409);
  const entries: TreeEntry[] = [];
  for await (const e of client.list(what)) entries.push(e);
  return { kind: 'dir', root, entries, recipes: await fetchRecipes(client, entries, objects, layouts), layouts };
}

/** Layouts of the files that may be slinked (large enough), into `layouts`. */
async function fetchLayouts(client: PeerClient, files: readonly TreeEntry[], layouts: Map<string, FileLayout>): Promise<void> {
  const big = new Map<string, number>();
  for (const f of files) if (f.type === 'file' && f.digest && f.size >= LAYOUT_MIN_SIZE) big.set(f.digest, f.size);
  const names = Array.from(big.keys());
  if (names.length === 0) return;
  const got = await client.layouts(
    names.map((n) => digestFromString(n)),
    names.map((n) => big.get(n)!),
  );
  names.forEach((n, i) => got[i] && layouts.set(n, got[i]!));
}

/**
 * Recipes of the listed files, each checked against its digest. With local objects, slinked
 * files' recipes are asked for compact and expanded here; one that does not expand to its
 * digest is asked for again in full.
 */
async function fetchRecipes(client: PeerClient, entries: readonly TreeEntry[], objects: LocalObjects | undefined, layouts: Map<string, FileLayout>): Promise<Map<string, Recipe>> {
  const sizes = new Map<string, number>();
  for (const e of entries) if (e.type === 'file' && e.digest) sizes.set(e.digest, e.size);
  const out = new Map<string, Recipe>();
  let full = Array.from(sizes.keys());
  if (objects) {
    await fetchLayouts(client, entries, layouts);
    const compact = full
      .map((n) => ({ n, layout: layouts.get(n) }))
      .filter((x) => x.layout)
      .map((x) => ({ ...x, bitmap: objectBitmap(objects, x.layout!) }))
      .filter((x) => x.bitmap.some((b) => b !== 0));
    const got = await client.compactRecipes(
      compact.map((x) => ({ digest: digestFromString(x.n), bitmap: x.bitmap, size: sizes.get(x.n)!, objects: x.layout!.objects.length })),
    );
    for (let i = 0; i < compact.length; i++) {
      const { n, layout } = compact[i];
      const g = got[i];
      if (g && 'chunks' in g) out.set(n, g); // sent in full (checked by the client)
      else if (g) {
        const r = await expandCompact(g, layout!, objects);
        if (r && fileDigest(r).equals(digestFromString(n))) out.set(n, r);
      }
    }
    full = full.filter((n) => !out.has(n));
  }
  const got = await client.recipes(
    full.map((n) => digestFromString(n)),
    full.map((n) => sizes.get(n)!),
  );
  full.forEach((n, i) => {
    const r = got[i];
    if (!r) throw new PeerProtocolError(`${client.name} listed ${n} but does not have its recipe`);
    out.set(n, r);
  });
  for (const [n, r] of out) {
    if (r.size !== sizes.get(n)) throw new PeerProtocolError(`${client.name} listed ${n} with size ${sizes.get(n)}, its recipe says ${r.size}`);
  }
  return out;
}

/** Files of a plan in order: the root itself for a file plan. */
export function planFiles(plan: Plan): TreeEntry[] {
  return plan.kind === 'file' ? [plan.root] : plan.entries.filter((e) => e.type === 'file');
}

/** Unique chunks of a plan, in order of first use (so a batch holds neighbouring chunks). */
export function uniqueChunks(plan: Plan): Map<string, ChunkWanted & { length: number }> {
  const out = new Map<string, ChunkWanted & { length: number }>();
  for (const f of planFiles(plan)) {
    for (const c of plan.recipes.get(f.digest!)!.chunks) {
      const k = c.digest.toString('latin1');
      if (!out.has(k)) out.set(k, { digest: c.digest, length: c.length });
    }
  }
  return out;
}

export function logicalBytes(plan: Plan): number {
  return planFiles(plan).reduce((n, f) => n + f.size, 0);
}

export interface FetchOptions {
  /** Compressor the server packs blocks with. */
  codec: WireCodec;
  /** Its level (0: chunks as the server stores them). */
  level: number;
  /** Plaintext bytes per request. */
  batchBytes: number;
  /** Requests in flight at once. */
  parallel: number;
}

/**
 * zstd 3, not 19: the server compresses every batch as it is asked for, and level 19 runs at a
 * few MB/s. Measured over loopback, `get --dir` of /usr/bin's 259 MiB of chunks: level 19 sent
 * 82 MiB in 103 s, level 3 95 MiB in 5.2 s, level 0 (chunks as stored) 114 MiB in 4.0 s; 19
 * only pays below ~0.2 MB/s. xz 9 (--codec xz) is there for when bytes matter more than time.
 */
export const DEFAULT_FETCH: FetchOptions = { codec: 'zstd', level: 3, batchBytes: 8 << 20, parallel: 3 };

/** Split chunks into requests of at most `batchBytes` plaintext and the protocol's count limit. */
export function batches<T extends { length: number }>(items: readonly T[], batchBytes: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const it of items) {
    if (cur.length && (bytes + it.length > batchBytes || cur.length >= LIMITS.batchChunks)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(it);
    bytes += it.length;
  }
  if (cur.length) out.push(cur);
  return out;
}

/**
 * Fetch `wanted` from `client`, `parallel` requests at a time; `onChunk` gets each verified chunk.
 * Chunks the peer does not have make it fail once everything else has arrived.
 */
export async function fetchChunks(
  client: PeerClient,
  wanted: readonly (ChunkWanted & { length: number })[],
  opts: FetchOptions,
  onChunk: (w: ChunkWanted, c: ArrivedChunk) => void | Promise<void>,
): Promise<void> {
  const missing: Digest[] = [];
  await runPool(batches(wanted, opts.batchBytes), opts.parallel, async (batch) => {
    const lost = await client.chunks(batch, { codec: opts.codec, level: opts.level, blockBytes: opts.batchBytes }, (c) => onChunk(batch[c.index], c));
    for (const i of lost) missing.push(batch[i].digest);
  });
  if (missing.length) {
    throw new PeerRefusedError(`${client.name} does not have ${missing.length} of the chunks (first: ${digestToString(missing[0])})`, 404);
  }
}

/** Run `fn` over `items`, `parallel` at a time; the first failure stops new work and is thrown. */
export async function runPool<T>(items: readonly T[], parallel: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failed) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  if (failed) throw failed.error;
}
