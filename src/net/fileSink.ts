// Getting onto the file system: plain files (-o FILE), or files on a slinkyfs mount (--into
// MOUNTPOINT/DIR, where the daemon stores the chunks). The file or tree is written under a
// staging name next to the output and renamed at the end. Each chunk comes from the first
// place that has it, verified: the local store, a partial file of an interrupted attempt (so a
// resumed transfer fetches only what never arrived), a file written earlier in this run, the
// seeds, and only then the peer. Files are written a window at a time, so memory stays bounded
// whatever the file sizes. A chunk of zeros is not written where the file had no bytes yet when
// it was opened: that stretch stays a hole (it reads as zeros), so a sparse file stays sparse.
import fs from 'node:fs';
import path from 'node:path';
import { verifyDigest, type Digest } from '../chunking/digest';
import { isHoleChunk, isZeros, zeroBytes } from '../chunking/zeros';
import type { ChunkSource } from '../store/chunkSource';
import { encodeName } from '../store/names';
import type { ChunkWanted } from './client';
import type { TreeEntry } from './protocol';
import { PEER_MODE_MASK } from './storeTree';
import { type Plan, planFiles, uniqueChunks } from './transfer';
import { makeDirs } from '../store/dirs';

/** Remote chunk bytes asked for at once while a file is being written. */
const WINDOW_BYTES = 32 << 20;

interface Place {
  file: string;
  offset: number;
  length: number;
}

type Fetch = (wanted: Array<ChunkWanted & { length: number }>, onChunk: (d: Digest, plain: Buffer) => Promise<void>) => Promise<void>;

export class OutputExistsError extends Error {
  override name = 'OutputExistsError';
  readonly exitCode = 2;
}

export class FileSink {
  readonly tally = { localChunks: 0, localBytes: 0, seededChunks: 0, seededBytes: 0 };
  resumed = false;
  private readonly staging: string;
  /** Chunks found in partial files of an earlier attempt, at their place. */
  private readonly partial = new Map<string, Place>();
  /** Where each chunk went in this run (read back, verified, when needed again). */
  private readonly written = new Map<string, Place>();
  private readonly provider = new Map<string, 'local' | 'seed' | 'partial' | 'remote'>();
  /** Chunks known to be all zeros: their bytes need no read, and past a file's old end no write. */
  private readonly zeros = new Set<string>();

  constructor(
    private readonly output: string,
    private readonly plan: Plan,
    private readonly local?: ChunkSource & { has?(d: Digest): boolean },
    private readonly seeds?: ChunkSource,
  ) {
    this.output = path.resolve(output);
    this.staging = path.join(path.dirname(this.output), `.${path.basename(this.output)}.slinkyfs-part`);
  }

  private target(e: TreeEntry | undefined): string {
    return e && this.plan.kind === 'dir' ? path.join(this.staging, e.name) : this.staging;
  }

  /** Check the output, set up the staging tree and find a local source for every chunk. */
  async prepare(): Promise<void> {
    if (await exists(this.output)) throw new OutputExistsError(`${this.output} exists`);
    const st = await fs.promises.lstat(this.staging).catch(() => undefined);
    this.resumed = st !== undefined;
    const wantDir = this.plan.kind === 'dir';
    if (st && (st.isDirectory() !== wantDir || st.isSymbolicLink())) await fs.promises.rm(this.staging, { recursive: true, force: true });
    if (wantDir) {
      await makeDirs(this.staging, 0o700);
      for (const e of this.plan.entries) {
        const p = this.target(e);
        const cur = await fs.promises.lstat(fsPath(p)).catch(() => undefined);
        // Anything of the wrong kind (a symlink above all) goes before we write below it.
        if (cur && (e.type !== 'dir' || !cur.isDirectory()) && (e.type !== 'file' || !cur.isFile())) await fs.promises.rm(fsPath(p), { recursive: true, force: true });
        if (e.type === 'dir') await fs.promises.mkdir(fsPath(p), { recursive: false, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw err;
        });
      }
    }
    if (this.resumed) await this.scanPartial();
    for (const [k, w] of uniqueChunks(this.plan)) {
      if (isHoleChunk(w.length, w.digest)) this.zeros.add(k);
      if (this.partial.has(k)) {
        this.provider.set(k, 'partial');
        this.tally.localChunks++;
        this.tally.localBytes += w.length;
      } else if (this.local && (this.local.has ? this.local.has(w.digest) : await this.local.getChunk(w.digest))) {
        this.provider.set(k, 'local');
        this.tally.localChunks++;
        this.tally.localBytes += w.length;
      } else if (this.seeds && (await this.seeds.getChunk(w.digest))?.length === w.length) {
        this.provider.set(k, 'seed');
        this.tally.seededChunks++;
        this.tally.seededBytes += w.length;
      } else this.provider.set(k, 'remote');
    }
  }

  /** Chunks of an interrupted attempt's files that are still right where they belong. */
  private async scanPartial(): Promise<void> {
    for (const f of planFiles(this.plan)) {
      const file = this.target(this.plan.kind === 'file' ? undefined : f);
      let fh: fs.promises.FileHandle;
      try {
        const st = await fs.promises.lstat(fsPath(file));
        if (!st.isFile()) continue;
        fh = await fs.promises.open(fsPath(file), 'r');
      } catch {
        continue;
      }
      try {
        let offset = 0;
        for (const c of this.plan.recipes.get(f.digest!)!.chunks) {
          const buf = Buffer.allocUnsafe(c.length);
          const { bytesRead } = await fh.read(buf, 0, c.length, offset);
          if (bytesRead === c.length && verifyDigest(c.digest, buf)) {
            const place = { file, offset, length: c.length };
            this.partial.set(placeKey(c.digest, file, offset), place);
            if (!this.partial.has(c.digest.toString('latin1'))) this.partial.set(c.digest.toString('latin1'), place);
          }
          offset += c.length;
        }
      } finally {
        await fh.close();
      }
    }
  }

  /** Chunks no local source has: what the peer must send. */
  needed(): Array<ChunkWanted & { length: number }> {
    return Array.from(uniqueChunks(this.plan)).filter(([k]) => this.provider.get(k) === 'remote').map(([, w]) => w);
  }

  /** Write every file (fetching remote chunks a window at a time), then symlinks, modes, rename. */
  async write(fetch: Fetch): Promise<void> {
    for (const f of planFiles(this.plan)) await this.writeFile(f, fetch);
    if (this.plan.kind === 'dir') {
      for (const e of this.plan.entries) {
        if (e.type !== 'symlink') continue;
        const p = this.target(e);
        await fs.promises.rm(fsPath(p), { force: true });
        await fs.promises.symlink(fsPath(e.target!), fsPath(p));
      }
      // Deepest first, so a directory's own mtime is set after everything inside it.
      const dirs = this.plan.entries.filter((e) => e.type === 'dir').reverse();
      for (const e of dirs) await setAttrs(this.target(e), e);
      await setAttrs(this.staging, this.plan.root);
    }
    await fs.promises.rename(this.staging, this.output);
  }

  private async writeFile(f: TreeEntry, fetch: Fetch): Promise<void> {
    const file = this.target(this.plan.kind === 'file' ? undefined : f);
    const recipe = this.plan.recipes.get(f.digest!)!;
    const fh = await fs.promises.open(fsPath(file), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    try {
      // Past this end nothing was ever written: a stretch left alone there reads as zeros. Below
      // it, an interrupted attempt may have left anything, so every chunk there is written.
      const oldEnd = (await fh.stat()).size;
      const holeOk = (k: string, pos: number) => pos >= oldEnd && this.zeros.has(k);
      let offset = 0;
      let i = 0;
      while (i < recipe.chunks.length) {
        // One window: chunks up to WINDOW_BYTES of remote bytes. Remote chunks are written where
        // they belong as they arrive (so an interruption leaves them in the partial file).
        const start = i;
        const startOffset = offset;
        let remoteBytes = 0;
        const remote = new Map<string, ChunkWanted & { length: number }>();
        const where = new Map<string, number[]>();
        for (let pos = offset; i < recipe.chunks.length && remoteBytes < WINDOW_BYTES; pos += recipe.chunks[i++].length) {
          const c = recipe.chunks[i];
          const k = c.digest.toString('latin1');
          if (this.provider.get(k) !== 'remote' || this.written.has(k) || this.partial.has(placeKey(c.digest, file, pos))) continue;
          if (!remote.has(k)) {
            remote.set(k, { digest: c.digest, length: c.length });
            remoteBytes += c.length;
          }
          where.set(k, [...(where.get(k) ?? []), pos]);
        }
        if (remote.size) {
          await fetch(Array.from(remote.values()), async (d, plain) => {
            const k = d.toString('latin1');
            const at = where.get(k)!;
            if (isZeros(plain)) this.zeros.add(k);
            for (const pos of at) if (!holeOk(k, pos)) await fh.write(plain, 0, plain.length, pos);
            this.written.set(k, { file, offset: at[0], length: plain.length });
          });
        }
        offset = startOffset;
        for (let j = start; j < i; j++) {
          const c = recipe.chunks[j];
          const k = c.digest.toString('latin1');
          const arrivedHere = remote.has(k);
          if (!arrivedHere && !holeOk(k, offset) && !this.partial.has(placeKey(c.digest, file, offset))) {
            const bytes = await this.localBytes(c.digest, k, c.length);
            if (isZeros(bytes)) this.zeros.add(k);
            if (!holeOk(k, offset)) await fh.write(bytes, 0, bytes.length, offset);
          }
          if (!this.written.has(k)) this.written.set(k, { file, offset, length: c.length });
          offset += c.length;
        }
      }
      await fh.truncate(recipe.size);
    } finally {
      await fh.close();
    }
    await setAttrs(file, f);
  }

  /** A chunk from a local place, verified; any failure here means the place changed under us. */
  private async localBytes(d: Digest, k: string, length: number): Promise<Buffer> {
    // Known zeros need no read (their place may be a hole past the file's current end).
    if (this.zeros.has(k)) return zeroBytes(length);
    const place = this.written.get(k) ?? this.partial.get(k);
    if (place) {
      const b = await readPlace(place);
      if (b && verifyDigest(d, b)) return b;
    }
    const p = this.provider.get(k);
    const b = p === 'seed' ? await this.seeds?.getChunk(d) : await this.local?.getChunk(d);
    if (!b) throw new Error(`a local chunk changed while the transfer ran; run the same get again`);
    return b;
  }
}

function placeKey(d: Digest, file: string, offset: number): string {
  return `${d.toString('latin1')}\0${file}\0${offset}`;
}

async function readPlace(p: Place): Promise<Buffer | undefined> {
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(fsPath(p.file), 'r');
    const b = Buffer.allocUnsafe(p.length);
    const { bytesRead } = await fh.read(b, 0, p.length, p.offset);
    return bytesRead === p.length ? b : undefined;
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}

/**
 * A path for node:fs. Names from a peer are byte strings held as text (src/store/names.ts): given
 * a string, node:fs would write a name that is not UTF-8 as U+FFFD, so it gets the bytes.
 */
function fsPath(p: string): Buffer {
  return encodeName(p);
}

async function setAttrs(p: string, e: TreeEntry): Promise<void> {
  await fs.promises.chmod(fsPath(p), e.mode & PEER_MODE_MASK);
  const t = e.mtime / 1000;
  await fs.promises.utimes(fsPath(p), t, t);
}

async function exists(p: string): Promise<boolean> {
  return fs.promises.lstat(fsPath(p)).then(
    () => true,
    () => false,
  );
}
