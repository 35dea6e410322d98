// `get` as a library: fetch a file or tree from a peer into a store (StoreSink) or onto the file
// system (FileSink), taking chunks from the local store and from seeds first and from the peer
// only when no local source has them. The CLI (src/cli/get.ts) parses options and prints.
import type { Digest } from '../chunking/digest';
import { Assembler, type LocalObjects } from './assemble';
import type { ChunkSource } from '../store/chunkSource';
import type { Store } from '../store/store';
import { PeerClient } from './client';
import { FileSink } from './fileSink';
import { StoreSink } from './storeSink';
import { type FetchOptions, type Plan, logicalBytes, planFiles, planFromPeer, uniqueChunks } from './transfer';
import { processOwner } from './storeTree';

export interface GetSummary {
  peer: string;
  what: string;
  kind: 'file' | 'dir';
  /** File digest when a single file was fetched. */
  digest?: string;
  files: number;
  dirs: number;
  symlinks: number;
  /** Logical bytes of the files. */
  bytes: number;
  /** Unique chunks of all the recipes, and their plaintext bytes. */
  chunks: number;
  chunkBytes: number;
  /** Unique chunks already in the local store (or, for files, found locally). */
  localChunks: number;
  localBytes: number;
  /** Unique chunks taken from seeded files. */
  seededChunks: number;
  seededBytes: number;
  /** Unique chunks that needed bytes from the peer, and the plaintext bytes the peer supplied. */
  fetchedChunks: number;
  fetchedBytes: number;
  /** Chunks built entirely from local objects (slinked files' libraries found in the seeds), and
   *  bytes of chunks taken from local objects (including chunks only partly built from them). */
  objectChunks: number;
  objectBytes: number;
  /** Bytes received from the peer on the wire (HTTP headers, listings, recipes, chunk blocks). */
  receivedBytes: number;
  /** The part of receivedBytes that was chunk data (as sent: compressed). */
  chunkPayloadBytes: number;
  /** Bytes sent to the peer (requests). */
  sentBytes: number;
  resumed: boolean;
  seconds: number;
}

export interface GetCommon {
  client: PeerClient;
  what: string;
  allowDir: boolean;
  fetch: FetchOptions;
  seeds?: ChunkSource;
  /** Local files by whole-content digest: objects of slinked files are built from them. */
  objects?: LocalObjects;
  /** Called with chunk plaintext bytes as they arrive, after `needed` once it is known. */
  progress?: { needed(bytes: number): void; add(bytes: number): void };
}

function summarise(c: GetCommon, plan: Plan, t0: number): GetSummary {
  const u = uniqueChunks(plan);
  let chunkBytes = 0;
  for (const w of u.values()) chunkBytes += w.length;
  return {
    peer: c.client.name,
    what: c.what,
    kind: plan.kind,
    digest: plan.kind === 'file' ? plan.root.digest : undefined,
    files: planFiles(plan).length,
    dirs: plan.entries.filter((e) => e.type === 'dir').length + (plan.kind === 'dir' ? 1 : 0),
    symlinks: plan.entries.filter((e) => e.type === 'symlink').length,
    bytes: logicalBytes(plan),
    chunks: u.size,
    chunkBytes,
    localChunks: 0,
    localBytes: 0,
    seededChunks: 0,
    seededBytes: 0,
    fetchedChunks: 0,
    fetchedBytes: 0,
    objectChunks: 0,
    objectBytes: 0,
    receivedBytes: 0,
    chunkPayloadBytes: 0,
    sentBytes: 0,
    resumed: false,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Take chunks from seeds; returns those the seeds did not have. */
async function fromSeeds<T extends { digest: Digest; length: number }>(
  seeds: ChunkSource | undefined,
  wanted: T[],
  onChunk: (w: T, plain: Buffer) => Promise<void>,
): Promise<T[]> {
  if (!seeds || wanted.length === 0) return wanted;
  const rest: T[] = [];
  let next = 0;
  const worker = async () => {
    while (next < wanted.length) {
      const w = wanted[next++];
      const plain = await seeds.getChunk(w.digest);
      if (plain && plain.length === w.length) await onChunk(w, plain);
      else rest.push(w);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  // Keep plan order for the peer: neighbouring chunks compress together.
  const order = new Map(wanted.map((w, i) => [w, i]));
  return rest.sort((a, b) => order.get(a)! - order.get(b)!);
}

export interface GetIntoStoreOptions extends GetCommon {
  store: Store;
  /** Directory in the store (components) the file or tree goes into. */
  into: string[];
  /** Name to give it there (default: its name on the peer). */
  name?: string;
}

export async function getIntoStore(o: GetIntoStoreOptions): Promise<GetSummary> {
  const t0 = Date.now();
  const plan = await planFromPeer(o.client, o.what, o.allowDir, o.objects);
  const name = o.name ?? (plan.root.name || 'root');
  const sink = new StoreSink(o.store, o.into, name, processOwner());
  const absent = await sink.stage(plan);
  const s = summarise(o, plan, t0);
  s.resumed = sink.resumed;
  const absentBytes = absent.reduce((n, w) => n + w.length, 0);
  s.localChunks = s.chunks - absent.length;
  s.localBytes = s.chunkBytes - absentBytes;
  o.progress?.needed(absentBytes);
  const remote = await fromSeeds(o.seeds, absent, async (w, plain) => {
    s.seededChunks++;
    s.seededBytes += plain.length;
    o.progress?.add(plain.length);
    await sink.fill(w.digest, plain);
  });
  try {
    const assembler = await assemblerFor(o, plan, remote);
    await assembler.fetch(o.client, remote, o.fetch, async (w, plain, zstd) => {
      o.progress?.add(plain.length);
      await sink.fill(w.digest, plain, zstd);
    }, s);
  } finally {
    // What arrived verified is kept even when the transfer fails: the next attempt resumes.
    await sink.flush();
  }
  const left = sink.stillAbsent(plan);
  if (left) throw new Error(`${left} chunks are still missing after the transfer`);
  await sink.finish();
  return finishSummary(s, o.client, t0);
}

export interface GetToFilesOptions extends GetCommon {
  /** Where the file or tree goes: a path on the file system (on a slinkyfs mount or not). */
  output: string;
  /** The local store (read-only) as a source of chunks, if there is one. */
  local?: ChunkSource & { has?(d: Digest): boolean };
}

export async function getToFiles(o: GetToFilesOptions): Promise<GetSummary> {
  const t0 = Date.now();
  const plan = await planFromPeer(o.client, o.what, o.allowDir, o.objects);
  const sink = new FileSink(o.output, plan, o.local, o.seeds);
  const s = summarise(o, plan, t0);
  await sink.prepare();
  s.resumed = sink.resumed;
  const need = sink.needed();
  const needBytes = need.reduce((n, w) => n + w.length, 0);
  s.localChunks = sink.tally.localChunks;
  s.localBytes = sink.tally.localBytes;
  s.seededChunks = sink.tally.seededChunks;
  s.seededBytes = sink.tally.seededBytes;
  o.progress?.needed(needBytes);
  const assembler = await assemblerFor(o, plan, need);
  await sink.write(async (wanted, onChunk) => {
    await assembler.fetch(o.client, wanted, o.fetch, async (w, plain) => {
      o.progress?.add(plain.length);
      await onChunk(w.digest, plain);
    }, s);
  });
  return finishSummary(s, o.client, t0);
}

/**
 * An assembler that knows the layouts of the plan's slinked files, when there are local objects
 * to build chunks from (seeds); otherwise one that fetches every chunk whole.
 */
async function assemblerFor(o: GetCommon, plan: Plan, missing: ReadonlyArray<{ digest: Digest }>): Promise<Assembler> {
  const assembler = new Assembler(o.objects ?? { lookupFile: () => undefined });
  if (!o.objects || missing.length === 0) return assembler;
  for (const [name, layout] of plan.layouts) assembler.addFile(plan.recipes.get(name)!, layout);
  return assembler;
}

function finishSummary(s: GetSummary, client: PeerClient, t0: number): GetSummary {
  s.receivedBytes = client.bytesIn();
  s.sentBytes = client.bytesOut();
  s.chunkPayloadBytes = client.chunkPayloadIn;
  s.seconds = (Date.now() - t0) / 1000;
  return s;
}
