// The peer server: serves a store (or a subtree of it) read-only over HTTP/1.1. Every request is
// bounded: request bodies, digests per request, plaintext per reply, entries per listing page,
// compression level, concurrent heavy requests, and idle time on both directions. Paths are
// resolved only below the served root and never through symlinks.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeChunk, compressAsync } from '../chunking/compress';
import { xzAvailable, xzCompress } from './xz';
import type { Digest } from '../chunking/digest';
import { CODEC_ABSENT, type InodeRecord, isDir } from '../store/records';
import { compactRecipe, decodeCompactRequest } from './compactRecipe';
import type { Store } from '../store/store';
import { BusyError, Limiter } from './limiter';
import {
  API,
  BLOCK_RAW,
  BLOCK_XZ,
  BLOCK_ZSTD,
  LIMITS,
  RECIPES_LEVEL,
  type WireCodec,
  NOT_HERE,
  PROTOCOL_VERSION,
  type ChunkRange,
  type FileLayout,
  LAYOUTS_PER_REQUEST,
  RANGES_PER_REQUEST,
  type TreeEntry,
  type TreePage,
  decodeDigestList,
  decodeRanges,
  encodeBlockHeader,
  nameComponents,
  nameParam,
  requestPathComponents,
} from './protocol';
import { NotServedError, StoreView } from './storeView';
import { slinkedLayout } from './layout';
import { LocalChunkSource } from '../store/localSource';

export interface ServerOptions {
  store: Store;
  /** Subtree of the store to serve ("/" by default). */
  root?: string;
  host?: string;
  port?: number;
  log?: (line: string) => void;
  /** Heavy requests (chunks, recipes) processed at once; more wait in a bounded queue. */
  concurrency?: number;
  /** Milliseconds a connection may stay silent in either direction before it is dropped. */
  idleTimeoutMs?: number;
  /** Milliseconds between keep-alive blocks while a block is being packed. */
  keepAliveMs?: number;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class PeerServer {
  private readonly server: http.Server;
  private view: StoreView;
  private readonly local: LocalChunkSource;
  private readonly layoutCache = new Map<string, FileLayout | null>();
  private readonly limiter: Limiter;
  /** xz at a high preset takes ~10x a block's size in memory: at most two at a time. */
  private readonly xzJobs = new Limiter(2, 1024);
  private readonly log: (line: string) => void;
  /** Bytes of chunk payload and of whole replies sent, for the log and for tests. */
  readonly counters = { requests: 0, chunksSent: 0, replyBytes: 0 };

  constructor(private readonly opts: ServerOptions) {
    const root = requestPathComponents(opts.root ?? '/');
    if (typeof root === 'string') throw new NotServedError(`bad root ${opts.root}: ${root}`);
    this.view = StoreView.at(opts.store, root);
    this.local = new LocalChunkSource(opts.store);
    this.limiter = new Limiter(opts.concurrency ?? 4, 64);
    this.log = opts.log ?? (() => undefined);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    const idle = opts.idleTimeoutMs ?? 60_000;
    this.server.headersTimeout = Math.min(idle, 30_000);
    this.server.requestTimeout = idle;
    this.server.keepAliveTimeout = 5_000;
    this.server.maxHeadersCount = 50;
    this.server.on('connection', (socket) => {
      socket.setTimeout(idle, () => socket.destroy());
      socket.setNoDelay(true);
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 7070, this.opts.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---- request dispatch ----------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.counters.requests++;
    try {
      const url = new URL(req.url ?? '/', 'http://peer');
      if (!url.pathname.startsWith(API + '/')) throw new HttpError(404, 'unknown endpoint');
      const what = url.pathname.slice(API.length + 1);
      if (req.method === 'GET' && what === 'info') return this.json(res, this.info());
      if (req.method === 'GET' && what === 'stat') return this.json(res, this.stat(url));
      if (req.method === 'GET' && what === 'tree') {
        const page = this.tree(url);
        if (intParam(url, 'z', 0, 0, 1) === 1) return await this.packed(res, Buffer.from(JSON.stringify(page)), true);
        return this.json(res, page);
      }
      if (req.method === 'POST' && what === 'recipes') {
        const z = intParam(url, 'z', 0, 0, 1) === 1;
        if (intParam(url, 'compact', 0, 0, 1) === 1) {
          const items = decodeCompactRequest(await readBody(req, LIMITS.recipesPerRequest * 195), LIMITS.recipesPerRequest);
          return await this.limiter.run(() => this.recipes(res, items, z));
        }
        const digests = decodeDigestList(await readBody(req, LIMITS.recipesPerRequest * 65), LIMITS.recipesPerRequest);
        return await this.limiter.run(() => this.recipes(res, digests.map((digest) => ({ digest })), z));
      }
      if (req.method === 'POST' && what === 'layouts') {
        const digests = decodeDigestList(await readBody(req, LAYOUTS_PER_REQUEST * 65), LAYOUTS_PER_REQUEST);
        return await this.limiter.run(() => this.layouts(res, digests));
      }
      if (req.method === 'POST' && what === 'ranges') {
        const ranges = decodeRanges(await readBody(req, RANGES_PER_REQUEST * 73), RANGES_PER_REQUEST);
        const { codec, level, block } = this.packing(url);
        return await this.limiter.run(() => this.ranges(res, ranges, codec, level, block));
      }
      if (req.method === 'POST' && what === 'chunks') {
        const digests = decodeDigestList(await readBody(req, LIMITS.batchChunks * 65), LIMITS.batchChunks);
        const { codec, level, block } = this.packing(url);
        return await this.limiter.run(() => this.chunks(res, digests, codec, level, block));
      }
      throw new HttpError(404, 'unknown endpoint');
    } catch (err) {
      this.fail(res, err);
    }
  }

  private packing(url: URL): { codec: WireCodec; level: number; block: number } {
    const codec = url.searchParams.get('codec') ?? 'zstd';
    if (codec !== 'zstd' && codec !== 'xz') throw new HttpError(400, `unknown codec ${codec}`);
    if (codec === 'xz' && !xzAvailable()) throw new HttpError(400, 'this server cannot compress with xz');
    const level = intParam(url, 'level', 0, 0, codec === 'xz' ? LIMITS.maxXzLevel : LIMITS.maxLevel);
    const block = intParam(url, 'block', 8 << 20, 64 << 10, LIMITS.blockBytes);
    return { codec, level, block };
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    let status = 500;
    if (err instanceof HttpError) status = err.status;
    else if (err instanceof NotServedError) status = 404;
    else if (err instanceof BusyError) status = 503;
    else if ((err as Error).name === 'PeerProtocolError') status = 400;
    else this.log(`server error: ${(err as Error).message}`);
    if (res.headersSent) {
      res.destroy(); // mid-reply: the client sees a truncated reply, which it rejects
      return;
    }
    const body = Buffer.from(JSON.stringify({ error: (err as Error).message }));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  }

  private json(res: http.ServerResponse, value: unknown): void {
    const body = Buffer.from(JSON.stringify(value));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
    this.counters.replyBytes += body.length;
  }

  private path(url: URL): string[] {
    const p = nameParam(url, 'path') ?? '/';
    const parts = requestPathComponents(p);
    if (typeof parts === 'string') throw new HttpError(400, `refused path ${JSON.stringify(p)}: ${parts}`);
    return parts;
  }

  // ---- endpoints -----------------------------------------------------------------------------

  private info(): object {
    const f = this.opts.store.format;
    const codecs = xzAvailable() ? ['zstd', 'xz'] : ['zstd'];
    return { protocol: PROTOCOL_VERSION, hash: f.hashAlgorithm, chunker: f.chunker, codecs, limits: LIMITS };
  }

  private stat(url: URL): TreeEntry {
    const parts = this.path(url);
    const rec = this.view.resolve(parts);
    const e = this.view.entry(rec, parts[parts.length - 1] ?? '');
    if (!e) throw new HttpError(409, 'file is damaged, has too many chunks for a recipe, or is of an unsupported type');
    return e;
  }

  private tree(url: URL): TreePage {
    const parts = this.path(url);
    const dir = this.view.resolve(parts);
    if (!isDir(dir)) throw new HttpError(409, 'not a directory');
    const afterText = nameParam(url, 'after');
    let after: string[] = [];
    if (afterText) {
      const a = nameComponents(afterText);
      if (typeof a === 'string') throw new HttpError(400, `bad cursor: ${a}`);
      after = a;
    }
    const limit = intParam(url, 'limit', LIMITS.treePage, 1, LIMITS.treePage);
    const entries: TreeEntry[] = [];
    let chunkBudget = LIMITS.treePageChunks;
    let last: string | undefined;
    let more = false;
    for (const { name, rec } of this.view.walk(dir.ino, '', after)) {
      if (entries.length >= limit || chunkBudget <= 0) {
        more = true;
        break;
      }
      last = name;
      const e = this.view.entry(rec, name);
      if (!e) continue; // damaged files are left out rather than failing the whole listing
      if (e.type === 'file') chunkBudget -= Math.ceil(e.size / 2048);
      entries.push(e);
    }
    return more && last ? { entries, next: last } : { entries };
  }

  /**
   * Recipes by file digest. With a bitmap of the objects (of the file's layout) the client has,
   * a slinked file's recipe is sent compact (compactRecipe.ts).
   */
  private async recipes(res: http.ServerResponse, items: Array<{ digest: Digest; bitmap?: Buffer }>, z: boolean): Promise<void> {
    const parts: Buffer[] = [];
    for (const it of items) {
      const f = this.view.fileByDigest(it.digest);
      let r = f?.recipe;
      if (f && it.bitmap && it.bitmap.some((x) => x !== 0)) {
        const layout = await this.layoutOf(it.digest, f.rec);
        const recipe = layout && this.view.recipe(f.rec);
        if (layout && recipe) r = compactRecipe(recipe, layout, it.bitmap);
      }
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32LE(r ? r.length : NOT_HERE);
      parts.push(len);
      if (r) parts.push(r);
    }
    await this.packed(res, Buffer.concat(parts), z);
  }

  /** A slinked file's layout, remembered for the files asked about most recently. */
  private async layoutOf(digest: Digest, rec: InodeRecord): Promise<FileLayout | undefined> {
    const key = digest.toString('latin1');
    if (this.layoutCache.has(key)) {
      const hit = this.layoutCache.get(key)!;
      this.layoutCache.delete(key);
      this.layoutCache.set(key, hit);
      return hit ?? undefined;
    }
    const l = (await slinkedLayout(this.opts.store, this.local, rec)) ?? null;
    this.layoutCache.set(key, l);
    if (this.layoutCache.size > 256) this.layoutCache.delete(this.layoutCache.keys().next().value!);
    return l ?? undefined;
  }

  /** A reply as it is, or (z) as its plain length and one zstd frame. */
  private async packed(res: http.ServerResponse, plain: Buffer, z: boolean): Promise<void> {
    let body = plain;
    if (z) {
      const head = Buffer.allocUnsafe(4);
      head.writeUInt32LE(plain.length);
      body = Buffer.concat([head, await compressAsync(plain, RECIPES_LEVEL)]);
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
    this.counters.replyBytes += body.length;
  }

  /** Layouts of slinked files by file digest: JSON (null for other files), zstd-packed. */
  private async layouts(res: http.ServerResponse, digests: Digest[]): Promise<void> {
    const out: Array<FileLayout | null> = [];
    for (const d of digests) {
      const f = this.view.fileByDigest(d);
      out.push((f && (await this.layoutOf(d, f.rec))) ?? null);
    }
    await this.packed(res, Buffer.from(JSON.stringify(out)), true);
  }

  /** Byte ranges of chunks, packed in blocks like chunks (level 0: raw). */
  private async ranges(res: http.ServerResponse, ranges: ChunkRange[], codec: WireCodec, level: number, blockBytes: number): Promise<void> {
    let total = 0;
    for (const r of ranges) total += r.length;
    if (total > LIMITS.batchBytes) throw new HttpError(413, `request asks for ${total} bytes, limit ${LIMITS.batchBytes}`);
    res.writeHead(200, { 'content-type': 'application/x-slinkyfs-blocks' });
    const piece = (r: ChunkRange): Buffer | undefined => {
      const plain = this.plainChunk(r.digest);
      if (!plain || r.length === 0 || r.start + r.length > plain.length) return undefined;
      return plain.subarray(r.start, r.start + r.length);
    };
    await this.sendBlocks(res, ranges.map((r) => ({ length: r.length, get: () => piece(r) })), codec, level || 0, blockBytes);
  }

  /** A chunk's plaintext from the store, or undefined when absent or undecodable here. */
  private plainChunk(d: Digest): Buffer | undefined {
    const store = this.opts.store;
    const ref = store.chunkRef(d);
    const stored = ref && ref.codec !== CODEC_ABSENT ? store.readStoredChunk(d) : undefined;
    if (!ref || !stored) return undefined;
    try {
      return decodeChunk(stored.codec, stored.data, ref.length);
    } catch {
      return undefined; // damaged here: say so rather than send bytes that cannot verify
    }
  }

  /**
   * Chunk reply: blocks covering the requested digests in order. Level 0 sends each chunk in its
   * stored form (no work beyond a read); a level above 0 packs chunks into blocks of up to
   * `blockBytes` plaintext compressed as one zstd frame, so similar chunks compress together.
   */
  private async chunks(res: http.ServerResponse, digests: Digest[], codec: WireCodec, level: number, blockBytes: number): Promise<void> {
    const store = this.opts.store;
    let plainTotal = 0;
    for (const d of digests) plainTotal += store.chunkRef(d)?.length ?? 0;
    if (plainTotal > LIMITS.batchBytes) throw new HttpError(413, `request asks for ${plainTotal} bytes, limit ${LIMITS.batchBytes}`);
    res.writeHead(200, { 'content-type': 'application/x-slinkyfs-blocks' });
    const send = (b: Buffer) => this.write(res, b);
    if (level === 0) {
      for (const d of digests) {
        const ref = store.chunkRef(d);
        const stored = ref && ref.codec !== CODEC_ABSENT ? store.readStoredChunk(d) : undefined;
        if (!ref || !stored || (stored.codec !== BLOCK_RAW && stored.codec !== BLOCK_ZSTD)) {
          await send(encodeBlockHeader(BLOCK_RAW, [NOT_HERE], 0));
          continue;
        }
        await send(Buffer.concat([encodeBlockHeader(stored.codec, [ref.length], stored.data.length), stored.data]));
        this.counters.chunksSent++;
      }
      res.end();
      return;
    }
    await this.sendBlocks(
      res,
      digests.map((d) => ({ length: store.chunkRef(d)?.length ?? 0, get: () => this.plainChunk(d) })),
      codec,
      level,
      blockBytes,
    );
  }

  /**
   * Pieces (chunks or ranges of chunks) in blocks of up to `blockBytes` plaintext, each compressed
   * as one frame at `level` (level 0: raw). The next block is packed while one is being sent.
   */
  private async sendBlocks(
    res: http.ServerResponse,
    pieces: Array<{ length: number; get: () => Buffer | undefined }>,
    codec: WireCodec,
    level: number,
    blockBytes: number,
  ): Promise<void> {
    const groups: Array<typeof pieces> = [];
    let cur: typeof pieces = [];
    let curBytes = 0;
    for (const p of pieces) {
      if (cur.length && curBytes + p.length > blockBytes) {
        groups.push(cur);
        cur = [];
        curBytes = 0;
      }
      cur.push(p);
      curBytes += p.length;
    }
    if (cur.length) groups.push(cur);
    let next = groups.length ? this.packBlock(groups[0], codec, level) : undefined;
    for (let i = 0; i < groups.length; i++) {
      const block = await this.keepAliveWhile(res, next!);
      next = i + 1 < groups.length ? this.packBlock(groups[i + 1], codec, level) : undefined;
      await this.write(res, block);
    }
    res.end();
  }

  /**
   * Packing a large block at a high level takes long (xz -9: seconds per MiB) and may wait for a
   * compression slot: meanwhile an empty block every few seconds tells the client we are alive.
   */
  private async keepAliveWhile<T>(res: http.ServerResponse, work: Promise<T>): Promise<T> {
    const timer = setInterval(() => {
      if (!res.destroyed) res.write(encodeBlockHeader(BLOCK_RAW, [], 0));
    }, this.opts.keepAliveMs ?? 5_000);
    try {
      return await work;
    } finally {
      clearInterval(timer);
    }
  }

  private async packBlock(pieces: Array<{ get: () => Buffer | undefined }>, codec: WireCodec, level: number): Promise<Buffer> {
    const lengths: number[] = [];
    const plains: Buffer[] = [];
    for (const p of pieces) {
      const b = p.get();
      lengths.push(b ? b.length : NOT_HERE);
      if (b) plains.push(b);
    }
    const plain = Buffer.concat(plains);
    this.counters.chunksSent += plains.length;
    if (plain.length === 0) return encodeBlockHeader(BLOCK_RAW, lengths, 0);
    if (level > 0) {
      const packed = codec === 'xz' ? await this.xzJobs.run(() => xzCompress(plain, level)) : await compressAsync(plain, level);
      const id = codec === 'xz' ? BLOCK_XZ : BLOCK_ZSTD;
      if (packed.length < plain.length) return Buffer.concat([encodeBlockHeader(id, lengths, packed.length), packed]);
    }
    return Buffer.concat([encodeBlockHeader(BLOCK_RAW, lengths, plain.length), plain]);
  }

  /** Write with backpressure: a slow reader holds up this request, not the server's memory. */
  private write(res: http.ServerResponse, b: Buffer): Promise<void> {
    this.counters.replyBytes += b.length;
    if (res.destroyed) return Promise.reject(new Error('client went away'));
    if (res.write(b)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        res.off('drain', onDrain);
        res.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(new Error('client went away'));
      res.on('drain', onDrain);
      res.on('close', onClose);
    });
  }
}

function intParam(url: URL, name: string, dflt: number, min: number, max: number): number {
  const v = url.searchParams.get(name);
  if (v === null) return dflt;
  if (!/^\d+$/.test(v)) throw new HttpError(400, `bad ${name}`);
  const n = Number(v);
  if (n < min || n > max) throw new HttpError(400, `${name} must be between ${min} and ${max}`);
  return n;
}

async function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > max) {
    req.resume();
    throw new HttpError(413, `request body larger than ${max} bytes`);
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new HttpError(413, `request body larger than ${max} bytes`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}
