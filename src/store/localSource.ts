// The local LMDB store as a ChunkSource. Chunks are verified against their digest as they are
// decoded: the store's disk is not trusted more than a peer (a flipped bit or a tampered
// database must surface as a missing chunk, never as wrong bytes handed to a program).
import { verifyDigest, type Digest } from '../chunking/digest';
import { BATCH_MISMATCH, BATCH_OK, CODEC_RAW, CODEC_ZSTD, decodeChunk, decodeVerifyBatchAsync, type BatchChunk } from '../chunking/compress';
import { CODEC_ABSENT, type ChunkRef } from './records';
import type { ChunkPart, ChunkSource } from './chunkSource';
import type { Store } from './store';

export interface SourceCounters {
  hits: number;
  misses: number;
  verifyFailures: number;
}

export class LocalChunkSource implements ChunkSource {
  readonly name = 'store';
  readonly counters: SourceCounters = { hits: 0, misses: 0, verifyFailures: 0 };
  constructor(private readonly store: Store, private readonly onCorrupt?: (digest: Digest, why: string) => void) {}

  /** One chunk: the batch path with a batch of one (decoding and hashing on the threadpool). */
  async getChunk(digest: Digest): Promise<Buffer | undefined> {
    return (await this.getChunks([digest]))[0];
  }

  /**
   * Many chunks as one decode job, each a view of one output Buffer: no Buffer, promise and
   * pool job per chunk.
   */
  async getChunks(digests: readonly Digest[]): Promise<(Buffer | undefined)[]> {
    const refs = digests.map((d) => this.store.chunkRef(d));
    const parts: ChunkPart[] = [];
    let length = 0;
    for (let i = 0; i < digests.length; i++) {
      const n = refs[i]?.length ?? 0;
      parts.push({ digest: digests[i], skip: 0, take: n, at: length });
      length += n;
    }
    const out = Buffer.allocUnsafe(length);
    const ok = await this.decodeInto(parts, refs, out);
    return parts.map((p, i) => (ok[i] ? out.subarray(p.at, p.at + p.take) : undefined));
  }

  /** Gather: the wanted parts decoded and verified straight into `out`, as one pool job. */
  readInto(parts: readonly ChunkPart[], out: Buffer): Promise<boolean[]> {
    if (parts.every((p) => p.length !== undefined)) return this.readKnownLengths(parts, out);
    return this.decodeInto(
      parts,
      parts.map((p) => this.store.chunkRef(p.digest)),
      out,
    );
  }

  /**
   * The file read path knows every chunk's length from the extents, and the store keeps a chunk
   * compressed only when that made it smaller (docs/FORMAT.md, "Stored chunk encoding"): a
   * stored value as long as the chunk is raw, a shorter one zstd. So the chunk's reference
   * record is not looked up: one B-tree search less per chunk on the event loop, and on a cold
   * store one random page less to read. The guess is only a guess: a part that does not verify
   * under it, or whose value breaks the rule or is missing, is read again the reference way.
   */
  private async readKnownLengths(parts: readonly ChunkPart[], out: Buffer): Promise<boolean[]> {
    let room = 0;
    for (const p of parts) room += p.length!;
    const input = Buffer.allocUnsafe(room);
    const rows: BatchChunk[] = [];
    const at: number[] = [];
    const slow: number[] = [];
    let inAt = 0;
    // Values are copied in one synchronous stretch: one snapshot of the store.
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      const length = p.length!;
      const got = p.skip + p.take <= length ? this.store.copyStoredChunk(p.digest, input, inAt) : -1;
      if (got < 0 || got > length) {
        slow.push(i);
        continue;
      }
      const codec = got === length ? CODEC_RAW : CODEC_ZSTD;
      rows.push({ codec, srcOffset: inAt, srcLength: got, length, digest: p.digest, outOffset: p.at, skip: p.skip, take: p.take });
      at.push(i);
      inAt += got;
    }
    const ok: boolean[] = new Array(parts.length).fill(false);
    for (const f of await this.decodeRows(input, rows, at, out, ok)) slow.push(at[f.row]);
    if (slow.length > 0) {
      const again = await this.decodeInto(
        slow.map((i) => parts[i]),
        slow.map((i) => this.store.chunkRef(parts[i].digest)),
        out,
      );
      slow.forEach((i, j) => (ok[i] = again[j]));
    }
    return ok;
  }

  // References and bytes are read in one synchronous stretch: one snapshot of the store (the
  // compactor may re-encode a chunk between event-loop turns).
  private async decodeInto(parts: readonly ChunkPart[], refs: readonly (ChunkRef | undefined)[], out: Buffer): Promise<boolean[]> {
    const ok: boolean[] = new Array(parts.length).fill(false);
    let inLength = 0;
    for (const ref of refs) if (ref && ref.codec !== CODEC_ABSENT) inLength += ref.storedLength;
    const input = Buffer.allocUnsafe(inLength);
    const rows: BatchChunk[] = [];
    const at: number[] = [];
    let inAt = 0;
    for (let i = 0; i < parts.length; i++) {
      const ref = refs[i];
      const p = parts[i];
      if (!ref || ref.codec === CODEC_ABSENT || p.skip + p.take > ref.length) {
        this.counters.misses++;
        continue;
      }
      const got = this.store.copyStoredChunk(p.digest, input, inAt);
      if (got < 0) {
        this.counters.misses++;
      } else if (got !== ref.storedLength) {
        this.counters.verifyFailures++;
        this.onCorrupt?.(p.digest, `stored ${got} bytes, its reference says ${ref.storedLength}`);
      } else {
        rows.push({ codec: ref.codec, srcOffset: inAt, srcLength: got, length: ref.length, digest: p.digest, outOffset: p.at, skip: p.skip, take: p.take });
        at.push(i);
      }
      inAt += ref.storedLength;
    }
    for (const f of await this.decodeRows(input, rows, at, out, ok)) {
      this.counters.verifyFailures++;
      this.onCorrupt?.(rows[f.row].digest, f.status === BATCH_MISMATCH ? 'bytes do not match digest' : 'corrupt encoding');
    }
    return ok;
  }

  /** Decode one batch: each verified row is counted and marked in `ok` (at its part's index);
   *  returns the rows that did not verify, with their status. */
  private async decodeRows(input: Buffer, rows: BatchChunk[], at: number[], out: Buffer, ok: boolean[]): Promise<Array<{ row: number; status: number }>> {
    const failed: Array<{ row: number; status: number }> = [];
    if (rows.length === 0) return failed;
    const status = await decodeVerifyBatchAsync(input, rows, out);
    for (let k = 0; k < rows.length; k++) {
      if (status[k] === BATCH_OK) {
        this.counters.hits++;
        ok[at[k]] = true;
      } else failed.push({ row: k, status: status[k] });
    }
    return failed;
  }

  /** Synchronous form for the FUSE read path: LMDB reads are memory-mapped, decoding is fast. */
  getChunkSync(digest: Digest): Buffer | undefined {
    const ref = this.store.chunkRef(digest);
    const stored = ref && this.store.readStoredChunk(digest);
    if (!ref || !stored) {
      this.counters.misses++;
      return undefined;
    }
    let plain: Buffer;
    try {
      plain = decodeChunk(stored.codec, stored.data, ref.length);
    } catch (err) {
      this.counters.verifyFailures++;
      this.onCorrupt?.(digest, (err as Error).message);
      return undefined;
    }
    if (!verifyDigest(digest, plain)) {
      this.counters.verifyFailures++;
      this.onCorrupt?.(digest, 'bytes do not match digest');
      return undefined;
    }
    this.counters.hits++;
    return plain;
  }
}
