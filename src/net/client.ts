// The peer client: one peer's endpoints over HTTP/1.1 keep-alive connections, with every reply
// bounded in size and time and checked before use. Chunk replies are parsed as they stream in
// and each chunk is verified against the digest that was asked for; nothing unverified is ever
// handed to a caller. Bytes on the wire are counted per socket, so callers can report exactly
// what a transfer cost.
import http from 'node:http';
import net from 'node:net';
import { decompressAsync, CorruptChunkError } from '../chunking/compress';
import { xzDecompress } from './xz';
import { type CompactRecipe, decodeCompact, encodeCompactRequest, isCompact } from './compactRecipe';
import { MAX_TIMER_MS, ReplyTimers } from './replyTimers';
import { digestToString, verifyDigest, type Digest } from '../chunking/digest';
import {
  API,
  BLOCK_HEADER,
  BLOCK_RAW,
  BLOCK_XZ,
  BLOCK_ZSTD,
  LIMITS,
  MAX_CHUNK_BYTES,
  NOT_HERE,
  PeerProtocolError,
  type Recipe,
  type TreeEntry,
  TreeChecker,
  type WireCodec,
  type ChunkRange,
  type FileLayout,
  LAYOUTS_PER_REQUEST,
  RANGES_PER_REQUEST,
  checkEntry,
  checkLayout,
  encodeRanges,
  decodeRecipe,
  fileDigest,
  maxEncoded,
  queryName,
} from './protocol';

/** The peer could not be reached, stopped answering, or went away mid-reply. */
export class PeerUnavailableError extends Error {
  override name = 'PeerUnavailableError';
  readonly exitCode = 3;
}

/** The peer answered with an error of its own (no such path, refused request). */
export class PeerRefusedError extends Error {
  override name = 'PeerRefusedError';
  readonly exitCode = 2;
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export interface PeerAddress {
  host: string;
  port: number;
  /** Path part of a peer URL (e.g. the subtree a mount mirrors); "/" when none. */
  path: string;
}

/** "host:port", "http://host:port" or "http://host:port/some/dir". */
export function parsePeer(text: string): PeerAddress {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new PeerRefusedError(`not a peer address: ${text} (use HOST:PORT or http://HOST:PORT)`, 0);
  }
  if (url.protocol !== 'http:') throw new PeerRefusedError(`unsupported peer scheme ${url.protocol} (only http)`, 0);
  const port = url.port ? Number(url.port) : writtenPort(withScheme);
  if (port === undefined) throw new PeerRefusedError(`peer address ${text} needs a port`, 0);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port, path: decodeURIComponent(url.pathname) || '/' };
}

/**
 * The port written in an address that URL has accepted. URL leaves out a port equal to the
 * scheme's default (":80" for http), yet a peer on port 80 is one the user asked for by number.
 */
function writtenPort(withScheme: string): number | undefined {
  const m = /^[^:]+:\/\/[^/?#]*?:(\d+)(?=[/?#]|$)/.exec(withScheme);
  return m ? Number(m[1]) : undefined;
}

export interface ClientOptions {
  /** Milliseconds to wait for a connection. */
  connectTimeoutMs?: number;
  /** Milliseconds a reply may go without a single byte arriving. */
  idleTimeoutMs?: number;
  /** Slowest acceptable transfer rate (bytes/s): sets each request's overall deadline. */
  minBytesPerSecond?: number;
  /** Requests in flight at once (one connection each). */
  maxConnections?: number;
  /** Chunks one recipe may have. */
  maxRecipeChunks?: number;
  /** Entries one tree listing may have. */
  maxTreeEntries?: number;
}

export interface ChunkWanted {
  digest: Digest;
  /** Plaintext length when known (from a recipe): a reply claiming another length is rejected. */
  length?: number;
}

/** A chunk as it arrived: verified plaintext, plus its zstd form when the block held only it. */
export interface ArrivedChunk {
  index: number;
  plain: Buffer;
  /** The compressed bytes the peer sent for this chunk alone (storable as they are). */
  zstd?: Buffer;
}

export interface ChunkRequestOptions {
  /** Compressor the server packs blocks with (default zstd). */
  codec?: WireCodec;
  /** Its level (zstd 1..19, xz 1..9); 0 = chunks in the server's stored form. */
  level?: number;
  /** Plaintext bytes per block (default 8 MiB). */
  blockBytes?: number;
}

/** Requests and verified chunks of one client, and its failed requests by kind. */
export interface PeerCounters {
  requests: number;
  /** Chunks received and verified, and their plaintext bytes. */
  chunks: number;
  chunkBytes: number;
  /** Chunks whose bytes did not match their digest (each fails its request). */
  badChunks: number;
  /** Failed requests: no answer in time or no connection; an error status; a reply that broke the protocol. */
  unavailable: number;
  refused: number;
  protocol: number;
}

export interface PeerInfo {
  protocol: number;
  hash: string;
  chunker: { name: string; windowSize: number; minSize: number; maxSize: number; maskBits: number; polynomial: string };
  limits: Partial<typeof LIMITS>;
}

/** An Agent that remembers its sockets so the bytes they carried can be counted. */
class CountingAgent extends http.Agent {
  private readonly live = new Set<net.Socket>();
  private closedIn = 0;
  private closedOut = 0;

  constructor(maxSockets: number, private readonly connectTimeoutMs: number) {
    super({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  override createConnection(options: net.NetConnectOpts, cb?: (err: Error | null, socket: net.Socket) => void): net.Socket {
    const socket = net.createConnection(options);
    socket.setNoDelay(true);
    this.live.add(socket);
    const timer = setTimeout(() => socket.destroy(new PeerUnavailableError(`connection timed out after ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => {
      clearTimeout(timer);
      this.closedIn += socket.bytesRead;
      this.closedOut += socket.bytesWritten;
      this.live.delete(socket);
    });
    void cb;
    return socket;
  }

  bytesIn(): number {
    let n = this.closedIn;
    for (const s of this.live) n += s.bytesRead;
    return n;
  }

  bytesOut(): number {
    let n = this.closedOut;
    for (const s of this.live) n += s.bytesWritten;
    return n;
  }
}

interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  body?: Buffer;
  /** Bytes the reply may carry at most: the cap for buffered replies. */
  maxBytes: number;
  /** Bytes the reply is expected to carry: with minBytesPerSecond, sets the deadline (default maxBytes). */
  expectBytes?: number;
}

export class PeerClient {
  readonly name: string;
  readonly address: PeerAddress;
  /** Bytes of chunk data (block payloads, compressed as sent) received so far. */
  chunkPayloadIn = 0;
  /** What this client has seen since it was made (`slinkyfs stats --net` of a mount with peers). */
  readonly counters: PeerCounters = { requests: 0, chunks: 0, chunkBytes: 0, badChunks: 0, unavailable: 0, refused: 0, protocol: 0 };
  /** The last failed request's error, for the same report. */
  lastError: string | undefined;
  private readonly agent: CountingAgent;
  private readonly opts: Required<ClientOptions>;

  constructor(peer: string | PeerAddress, options: ClientOptions = {}) {
    this.address = typeof peer === 'string' ? parsePeer(peer) : peer;
    this.name = `peer ${this.address.host.includes(':') ? `[${this.address.host}]` : this.address.host}:${this.address.port}`;
    this.opts = {
      connectTimeoutMs: Math.min(options.connectTimeoutMs ?? 10_000, MAX_TIMER_MS),
      idleTimeoutMs: Math.min(options.idleTimeoutMs ?? 30_000, MAX_TIMER_MS),
      minBytesPerSecond: options.minBytesPerSecond ?? 64 << 10,
      maxConnections: options.maxConnections ?? 4,
      maxRecipeChunks: options.maxRecipeChunks ?? LIMITS.recipeChunks,
      maxTreeEntries: options.maxTreeEntries ?? 1 << 20,
    };
    this.agent = new CountingAgent(this.opts.maxConnections, this.opts.connectTimeoutMs);
  }

  /** Bytes received from the peer so far (HTTP headers and bodies, as counted on the sockets). */
  bytesIn(): number {
    return this.agent.bytesIn();
  }
  bytesOut(): number {
    return this.agent.bytesOut();
  }

  private closed = false;

  /** Drop every connection; requests in flight and later ones fail. */
  close(): void {
    this.closed = true;
    this.agent.destroy();
  }

  // ---- transport -----------------------------------------------------------------------------

  /**
   * One request; `consume` gets the body as it streams in (async iteration, so a slow consumer
   * pauses the socket). Fails on no bytes for idleTimeoutMs, on missing the deadline that
   * maxBytes and minBytesPerSecond give, and on a reply that ends before `consume` is done.
   */
  private async request<T>(spec: RequestSpec, consume: (body: AsyncIterable<Buffer>) => Promise<T>): Promise<T> {
    if (this.closed) throw new PeerUnavailableError(`connection to ${this.name} closed`);
    this.counters.requests++;
    const { idleTimeoutMs, minBytesPerSecond } = this.opts;
    // A deadline too far off to keep (a slow rate over a large reply) is no deadline at all.
    const deadlineMs = Math.min(idleTimeoutMs + Math.ceil(((spec.expectBytes ?? spec.maxBytes) / minBytesPerSecond) * 1000), MAX_TIMER_MS);
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | undefined, value?: T) => {
        if (settled) return;
        settled = true;
        timers.stop();
        if (err) {
          req.destroy();
          this.countFailure(err);
          reject(err);
        } else resolve(value as T);
      };
      const fail = (err: Error) => finish(err);
      const timers = new ReplyTimers(
        idleTimeoutMs,
        deadlineMs,
        () => fail(new PeerUnavailableError(`${this.name} sent nothing for ${seconds(idleTimeoutMs)} s`)),
        () => fail(new PeerUnavailableError(`${this.name} did not finish a reply within ${seconds(deadlineMs)} s`)),
      );
      const req = http.request(
        {
          host: this.address.host,
          port: this.address.port,
          method: spec.method,
          path: API + spec.path,
          agent: this.agent,
          headers: spec.body ? { 'content-type': 'application/octet-stream', 'content-length': spec.body.length } : {},
        },
        (res) => {
          timers.byte();
          if (res.statusCode !== 200) {
            void readLimited(res, 64 << 10).then(
              (b) => {
                const text = errorText(b);
                // `slinkyfs serve` words every error it sends: a bare status comes from some other server.
                const why = text ? `${this.name}: ${text}` : `${this.name} answered HTTP ${res.statusCode}, which is not a slinkyfs reply (is \`slinkyfs serve\` running there?)`;
                fail(new PeerRefusedError(why, res.statusCode ?? 0));
              },
              () => fail(new PeerUnavailableError(`${this.name} answered HTTP ${res.statusCode} and went away`)),
            );
            return;
          }
          let ended = false;
          res.on('end', () => (ended = true));
          res.on('aborted', () => fail(new PeerUnavailableError(`${this.name} disconnected mid-reply`)));
          res.on('error', (e) => fail(disconnected(this.name, e)));
          const body = (async function* () {
            for await (const c of res as AsyncIterable<Buffer>) {
              timers.byte();
              timers.hold();
              yield c;
              timers.resume();
            }
            if (!ended) throw new PeerUnavailableError('disconnected mid-reply');
          })();
          consume(body).then(
            (v) => finish(undefined, v),
            (e: Error) => fail(e instanceof PeerUnavailableError || e instanceof PeerProtocolError ? e : disconnected(this.name, e)),
          );
        },
      );
      req.on('error', (e) => fail(disconnected(this.name, e)));
      req.end(spec.body);
    });
  }

  private countFailure(err: Error): void {
    if (err instanceof PeerRefusedError) this.counters.refused++;
    else if (err instanceof PeerProtocolError) this.counters.protocol++;
    else this.counters.unavailable++;
    this.lastError = err.message;
  }

  private async buffered(spec: RequestSpec): Promise<Buffer> {
    return this.request(spec, async (body) => {
      const parts: Buffer[] = [];
      let n = 0;
      for await (const c of body) {
        n += c.length;
        if (n > spec.maxBytes) throw new PeerProtocolError(`${this.name} sent a reply larger than ${spec.maxBytes} bytes`);
        parts.push(c);
      }
      return Buffer.concat(parts);
    });
  }

  private async getJson(path: string): Promise<unknown> {
    return this.parseJson(await this.buffered({ method: 'GET', path, maxBytes: LIMITS.jsonBytes, expectBytes: 1 << 20 }));
  }

  private parseJson(b: Buffer): unknown {
    try {
      return JSON.parse(b.toString('utf8'));
    } catch {
      throw new PeerProtocolError(`${this.name} sent malformed JSON`);
    }
  }

  // ---- endpoints -----------------------------------------------------------------------------

  async info(): Promise<PeerInfo> {
    const v = (await this.getJson('/info')) as PeerInfo;
    if (!v || typeof v !== 'object' || v.protocol !== 1) throw new PeerProtocolError(`${this.name} does not speak slinkyfs protocol 1`);
    return v;
  }

  /** What `path` is on the peer. The entry's name is the path's base name ("" for the root). */
  async stat(path: string): Promise<TreeEntry> {
    const v = (await this.getJson(`/stat?path=${queryName(path)}`)) as Record<string, unknown>;
    const e = checkEntry({ ...v, name: 'x' });
    const base = path.split('/').filter(Boolean).pop() ?? '';
    return { ...e, name: base };
  }

  /** Every entry below directory `path`, checked one by one and as a tree (see TreeChecker). */
  async *list(path: string): AsyncGenerator<TreeEntry> {
    const checker = new TreeChecker(this.opts.maxTreeEntries);
    let after: string | undefined;
    for (;;) {
      const q = `/tree?z=1&path=${queryName(path)}${after ? `&after=${queryName(after)}` : ''}`;
      const page = this.parseJson(await this.packedReply(q, undefined, LIMITS.jsonBytes, 1 << 20)) as { entries?: unknown; next?: unknown };
      if (!page || !Array.isArray(page.entries)) throw new PeerProtocolError(`${this.name} sent a malformed listing`);
      if (page.entries.length > LIMITS.treePage) throw new PeerProtocolError(`${this.name} sent a listing page of ${page.entries.length} entries`);
      let last: string | undefined;
      for (const raw of page.entries) {
        const e = checkEntry(raw);
        checker.add(e);
        last = e.name;
        yield e;
      }
      if (page.next === undefined || page.next === null) return;
      if (typeof page.next !== 'string' || page.next !== last) throw new PeerProtocolError(`${this.name} sent a bad listing cursor`);
      after = page.next;
    }
  }

  /**
   * Recipes of the files named by `digests`, each checked to hash to its digest (so the peer
   * cannot substitute one); undefined where the peer does not have the file.
   */
  async recipes(digests: readonly Digest[], sizes?: readonly number[]): Promise<(Recipe | undefined)[]> {
    const out: (Recipe | undefined)[] = [];
    for (let i = 0; i < digests.length; i += LIMITS.recipesPerRequest) {
      const batch = digests.slice(i, i + LIMITS.recipesPerRequest);
      out.push(...(await this.recipeBatch(batch, sizes?.slice(i, i + LIMITS.recipesPerRequest))));
    }
    return out;
  }

  private async recipeBatch(digests: readonly Digest[], sizes?: readonly number[]): Promise<(Recipe | undefined)[]> {
    const maxOne = 20 + this.opts.maxRecipeChunks * 37;
    // With sizes (from a listing) the reply size is known closely: chunks are at least minSize
    // bytes except the last, so a file of n bytes has at most n / 2048 + 1 of them.
    const expect = sizes ? sizes.reduce((n, sz) => n + 24 + (Math.floor(sz / 2048) + 1) * 37, 0) : undefined;
    const maxBytes = expect ?? Math.min(digests.length * (4 + maxOne), 1 << 30);
    const raw = await this.packedReply('/recipes?z=1', Buffer.concat(digests), maxBytes, expect);
    const reader = new ByteReader(
      (async function* () {
        yield raw;
      })(),
      this.name,
    );
    const out: (Recipe | undefined)[] = [];
    for (const d of digests) {
      const len = (await reader.take(4)).readUInt32LE(0);
      if (len === NOT_HERE) {
        out.push(undefined);
        continue;
      }
      if (len < 20) throw new PeerProtocolError(`${this.name} sent a malformed recipe`);
      // Check the claimed count before reading (and buffering) the rest.
      const head = await reader.take(20);
      const count = head.readUInt32LE(16);
      if (count > this.opts.maxRecipeChunks) {
        throw new PeerProtocolError(`${this.name} sent a recipe with ${count} chunks, more than the limit of ${this.opts.maxRecipeChunks}`);
      }
      if (len > maxOne) throw new PeerProtocolError(`${this.name} sent a recipe of ${len} bytes for ${count} chunks`);
      const bytes = Buffer.concat([head, await reader.take(len - 20)]);
      if (!fileDigest(bytes).equals(d)) throw new PeerProtocolError(`${this.name} sent a recipe that does not match ${digestToString(d)}`);
      out.push(decodeRecipe(bytes, this.opts.maxRecipeChunks));
    }
    await reader.expectEnd();
    return out;
  }

  /**
   * Recipes asked for compact (see compactRecipe.ts): each answer is a canonical recipe already
   * checked against its digest, a compact recipe the caller must expand and check, or undefined.
   */
  async compactRecipes(
    items: ReadonlyArray<{ digest: Digest; bitmap: Buffer; size: number; objects: number }>,
  ): Promise<Array<Recipe | CompactRecipe | undefined>> {
    const out: Array<Recipe | CompactRecipe | undefined> = [];
    for (let i = 0; i < items.length; i += LIMITS.recipesPerRequest) {
      const part = items.slice(i, i + LIMITS.recipesPerRequest);
      const expect = part.reduce((n, it) => n + 24 + (Math.floor(it.size / 2048) + 1) * 37, 0);
      const raw = await this.packedReply('/recipes?z=1&compact=1', encodeCompactRequest(part), expect, expect);
      let o = 0;
      for (const it of part) {
        if (o + 4 > raw.length) throw new PeerProtocolError(`${this.name} sent a truncated reply`);
        const len = raw.readUInt32LE(o);
        o += 4;
        if (len === NOT_HERE) {
          out.push(undefined);
          continue;
        }
        if (o + len > raw.length) throw new PeerProtocolError(`${this.name} sent a truncated reply`);
        const bytes = raw.subarray(o, o + len);
        o += len;
        if (isCompact(bytes)) {
          out.push(decodeCompact(bytes, this.opts.maxRecipeChunks, it.objects));
          continue;
        }
        if (!fileDigest(bytes).equals(it.digest)) throw new PeerProtocolError(`${this.name} sent a recipe that does not match ${digestToString(it.digest)}`);
        out.push(decodeRecipe(bytes, this.opts.maxRecipeChunks));
      }
      if (o !== raw.length) throw new PeerProtocolError(`${this.name} sent more than was asked for`);
    }
    return out;
  }

  /**
   * Ask for chunks; `onChunk` receives each one verified, in request order, and may be async
   * (the reply is paused meanwhile). Returns the indices the peer does not have. Throws
   * PeerProtocolError on the first byte that does not check out, PeerUnavailableError on
   * timeouts and disconnects; chunks delivered before that were verified and stay valid.
   */
  async chunks(wanted: readonly ChunkWanted[], opts: ChunkRequestOptions, onChunk: (c: ArrivedChunk) => void | Promise<void>): Promise<number[]> {
    if (wanted.length > LIMITS.batchChunks) throw new RangeError(`at most ${LIMITS.batchChunks} chunks per request`);
    const body = Buffer.concat(wanted.map((w) => w.digest));
    return this.blocks('/chunks', body, wanted.length, (i) => wanted[i].length, opts, async (i, piece, single) => {
      const w = wanted[i];
      if (!verifyDigest(w.digest, piece)) {
        this.counters.badChunks++;
        throw new PeerProtocolError(`${this.name} sent bytes that do not match chunk ${digestToString(w.digest)}`);
      }
      this.counters.chunks++;
      this.counters.chunkBytes += piece.length;
      await onChunk({ index: i, plain: piece, zstd: single });
    });
  }

  /**
   * Byte ranges of chunks. The pieces cannot be verified on their own: `onPiece` must only use
   * them to build a chunk that it then verifies. Returns the indices the peer does not have.
   */
  async ranges(wanted: readonly ChunkRange[], opts: ChunkRequestOptions, onPiece: (index: number, bytes: Buffer) => void | Promise<void>): Promise<number[]> {
    if (wanted.length > RANGES_PER_REQUEST) throw new RangeError(`at most ${RANGES_PER_REQUEST} ranges per request`);
    return this.blocks('/ranges', encodeRanges(wanted), wanted.length, (i) => wanted[i].length, opts, (i, piece) => onPiece(i, piece));
  }

  /** Layouts of slinked files by file digest (undefined for other files), checked against their sizes. */
  async layouts(digests: readonly Digest[], sizes: readonly number[]): Promise<(FileLayout | undefined)[]> {
    const out: (FileLayout | undefined)[] = [];
    for (let i = 0; i < digests.length; i += LAYOUTS_PER_REQUEST) {
      const part = digests.slice(i, i + LAYOUTS_PER_REQUEST);
      const raw = await this.packedReply('/layouts', Buffer.concat(part), part.length * (256 << 10));
      let v: unknown;
      try {
        v = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new PeerProtocolError(`${this.name} sent a malformed layouts reply`);
      }
      if (!Array.isArray(v) || v.length !== part.length) throw new PeerProtocolError(`${this.name} sent a malformed layouts reply`);
      v.forEach((l, k) => out.push(l === null ? undefined : checkLayout(l, sizes[i + k])));
    }
    return out;
  }

  /** A reply sent as its plain length (u32) and one zstd frame, at most `maxPlain` bytes unpacked. */
  private async packedReply(path: string, body: Buffer | undefined, maxPlain: number, expectBytes?: number): Promise<Buffer> {
    const method = body ? 'POST' : 'GET';
    return this.request({ method, path, body, maxBytes: maxEncoded(maxPlain) + 4, expectBytes }, async (stream) => {
      const packed = new ByteReader(stream, this.name);
      const rawLength = (await packed.take(4)).readUInt32LE(0);
      if (rawLength > maxPlain) throw new PeerProtocolError(`${this.name} sent a reply larger than ${maxPlain} bytes`);
      const frame = await packed.rest(maxEncoded(rawLength));
      try {
        return await decompressAsync(frame, rawLength);
      } catch (e) {
        if (e instanceof CorruptChunkError) throw new PeerProtocolError(`${this.name} sent an undecodable reply: ${e.message}`);
        throw e;
      }
    });
  }

  /**
   * A request answered by blocks covering `count` pieces in order (chunks, or ranges of chunks).
   * Every length and size is checked against what was asked before any byte is decoded;
   * `deliver` gets each piece, plus the compressed bytes when a zstd block held only that piece.
   */
  private async blocks(
    endpoint: string,
    body: Buffer,
    count: number,
    expected: (i: number) => number | undefined,
    opts: ChunkRequestOptions,
    deliver: (i: number, piece: Buffer, single?: Buffer) => void | Promise<void>,
  ): Promise<number[]> {
    if (count === 0) return [];
    const level = opts.level ?? 0;
    const codecName = opts.codec ?? 'zstd';
    const blockBytes = Math.max(MAX_CHUNK_BYTES, Math.min(opts.blockBytes ?? 8 << 20, LIMITS.blockBytes));
    let plainMax = 0;
    for (let i = 0; i < count; i++) plainMax += expected(i) ?? MAX_CHUNK_BYTES;
    const maxBytes = maxEncoded(plainMax) + count * (BLOCK_HEADER + 4);
    const path = `${endpoint}?codec=${codecName}&level=${level}&block=${blockBytes}`;
    return this.request({ method: 'POST', path, body, maxBytes }, async (stream) => {
      const reader = new ByteReader(stream, this.name);
      const missing: number[] = [];
      let next = 0;
      while (next < count) {
        const head = await reader.take(BLOCK_HEADER);
        const codec = head[0];
        const n = head.readUInt32LE(1);
        const encodedLength = head.readUInt32LE(5);
        if (codec !== BLOCK_RAW && codec !== BLOCK_ZSTD && codec !== BLOCK_XZ) throw new PeerProtocolError(`${this.name} sent a block with unknown codec ${codec}`);
        // An empty raw block is a keep-alive while the server packs (the deadline still holds).
        if (n === 0 && codec === BLOCK_RAW && encodedLength === 0) continue;
        if (n === 0 || n > count - next) throw new PeerProtocolError(`${this.name} sent a block of ${n} chunks where ${count - next} were left`);
        const lengthsRaw = await reader.take(4 * n);
        const lengths: number[] = new Array(n);
        let plainTotal = 0;
        for (let i = 0; i < n; i++) {
          const len = lengthsRaw.readUInt32LE(4 * i);
          const want = expected(next + i);
          if (len !== NOT_HERE) {
            if (len === 0 || len > MAX_CHUNK_BYTES) throw new PeerProtocolError(`${this.name} claims a chunk of ${len} bytes`);
            if (want !== undefined && len !== want) throw new PeerProtocolError(`${this.name} sent ${len} bytes where ${want} were asked for`);
            plainTotal += len;
          }
          lengths[i] = len;
        }
        if (plainTotal > blockBytes) throw new PeerProtocolError(`${this.name} sent a block of ${plainTotal} bytes (asked for at most ${blockBytes})`);
        const encodedOk = codec === BLOCK_RAW ? encodedLength === plainTotal : encodedLength > 0 && encodedLength <= maxEncoded(plainTotal);
        if (!encodedOk || (plainTotal === 0 && encodedLength !== 0)) {
          throw new PeerProtocolError(`${this.name} sent a block of ${encodedLength} bytes for ${plainTotal} bytes of chunks`);
        }
        const data = await reader.take(encodedLength);
        this.chunkPayloadIn += encodedLength;
        let plain: Buffer;
        try {
          plain = codec === BLOCK_RAW ? data : codec === BLOCK_ZSTD ? await decompressAsync(data, plainTotal) : await xzDecompress(data, plainTotal);
        } catch (e) {
          if (e instanceof CorruptChunkError) throw new PeerProtocolError(`${this.name} sent an undecodable block: ${e.message}`);
          throw e;
        }
        const single = n === 1 && codec === BLOCK_ZSTD ? data : undefined;
        let o = 0;
        for (let i = 0; i < n; i++, next++) {
          const len = lengths[i];
          if (len === NOT_HERE) {
            missing.push(next);
            continue;
          }
          // A view of a large block would pin the whole block in memory: copy unless it is alone.
          const piece = n === 1 ? plain : Buffer.from(plain.subarray(o, o + len));
          o += len;
          await deliver(next, piece, single);
        }
      }
      await reader.expectEnd();
      return missing;
    });
  }
}

/** Exact-length reads from a streamed body, buffering no more than one read asks for. */
class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private have = 0;

  constructor(body: AsyncIterable<Buffer>, private readonly peer: string) {
    this.it = body[Symbol.asyncIterator]();
  }

  async take(n: number): Promise<Buffer> {
    while (this.have < n) {
      const r = await this.it.next();
      if (r.done) throw new PeerProtocolError(`${this.peer} sent a truncated reply`);
      this.pending.push(r.value);
      this.have += r.value.length;
    }
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }

  /** Everything left (at most `max` bytes, else the reply is refused). */
  async rest(max: number): Promise<Buffer> {
    for (;;) {
      if (this.have > max) throw new PeerProtocolError(`${this.peer} sent a reply larger than asked for`);
      const r = await this.it.next();
      if (r.done) break;
      this.pending.push(r.value);
      this.have += r.value.length;
    }
    const all = Buffer.concat(this.pending);
    this.pending = [];
    this.have = 0;
    return all;
  }

  async expectEnd(): Promise<void> {
    if (this.have > 0) throw new PeerProtocolError(`${this.peer} sent more than was asked for`);
    const r = await this.it.next();
    if (!r.done && r.value.length > 0) throw new PeerProtocolError(`${this.peer} sent more than was asked for`);
    if (!r.done) await this.expectEnd();
  }
}

async function readLimited(res: http.IncomingMessage, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) break;
    parts.push(c);
  }
  return Buffer.concat(parts);
}

function errorText(b: Buffer): string | undefined {
  try {
    const v = JSON.parse(b.toString('utf8')) as { error?: unknown };
    return typeof v.error === 'string' ? v.error.slice(0, 300) : undefined;
  } catch {
    return undefined;
  }
}

function disconnected(peer: string, e: Error): Error {
  if (e instanceof PeerUnavailableError || e instanceof PeerProtocolError || e instanceof PeerRefusedError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return new PeerUnavailableError(`${peer} refused the connection (is \`slinkyfs serve\` running there?)`);
  if (code === 'ECONNRESET' || code === 'EPIPE') return new PeerUnavailableError(`${peer} disconnected mid-reply`);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new PeerUnavailableError(`${peer}: host not found`);
  return new PeerUnavailableError(`${peer}: ${e.message}`);
}

/** Seconds for messages: whole above 10, else to a tenth. */
function seconds(ms: number): string {
  return ms >= 10_000 ? String(Math.round(ms / 1000)) : String(Math.round(ms / 100) / 10);
}
