// System files identical to published objects ("twins"): the libc.so.6 of this machine is
// byte for byte the libc object a slinked program embeds when it was slinked here. Backing the
// object with its twin (FUSE passthrough, src/fs/lowlevel.ts) lets slinked programs share the
// very pages dynamic programs use, and map them as cheaply as from ext4.
//
// A twin is believed only after its bytes hash to the object's digest, read through the same
// descriptor that is then handed to the kernel, and only if nobody but root can change it
// (owned by root, not writable by group or others): the same rule the stub applies to the
// objects directory. Candidates are found by size among the regular files of the library and
// program directories, so a lookup hashes almost only the file that matches.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { algorithmOf, type Digest } from '../chunking/digest';
import { readLdCache } from '../elf/ldCache';

/** Where twins are looked for besides the directories of ld.so.cache. */
const PROGRAM_DIRS = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin', '/lib64', '/usr/lib64'];
/** A lookup that finds nothing rebuilds the size index when it is older than this. */
const REINDEX_MS = 60_000;
const READ_STEP = 1 << 20;

export interface TwinFinderOptions {
  /** Directories to index (default: ld.so.cache's and PROGRAM_DIRS). */
  dirs?: string[];
  /** The owner a twin must have (default root). */
  uid?: number;
}

/** An open twin: hand `fd` to the kernel, then close it. */
export interface Twin {
  path: string;
  handle: fs.promises.FileHandle;
}

export class TwinFinder {
  private bySize: Map<number, string[]> | undefined;
  private indexedAt = 0;
  private indexing: Promise<Map<number, string[]>> | undefined;
  /** Lookups run one at a time, through one read buffer. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly buf = Buffer.allocUnsafe(READ_STEP);

  constructor(private readonly options: TwinFinderOptions = {}) {}

  /** An open file holding exactly the object's bytes, or undefined. */
  find(digest: Digest, size: number): Promise<Twin | undefined> {
    const run = this.queue.then(() => this.findNow(digest, size));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async findNow(digest: Digest, size: number): Promise<Twin | undefined> {
    let index = await this.index();
    let twin = await this.findIn(index, digest, size);
    if (!twin && Date.now() - this.indexedAt > REINDEX_MS) {
      this.bySize = undefined;
      index = await this.index();
      twin = await this.findIn(index, digest, size);
    }
    return twin;
  }

  private async findIn(index: Map<number, string[]>, digest: Digest, size: number): Promise<Twin | undefined> {
    for (const candidate of index.get(size) ?? []) {
      const twin = await this.open(candidate, digest, size).catch(() => undefined);
      if (twin) return twin;
    }
    return undefined;
  }

  /** `file` opened and checked: owner, mode, size, then every byte against the digest. */
  private async open(file: string, digest: Digest, size: number): Promise<Twin | undefined> {
    const handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = await handle.stat();
      if (!st.isFile() || st.uid !== (this.options.uid ?? 0) || st.mode & 0o022 || st.size !== size) throw new Error('not a candidate');
      const hash = createHash(algorithmOf(digest));
      const buf = this.buf;
      for (let at = 0; at < size; ) {
        const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, size - at), at);
        if (bytesRead === 0) throw new Error('file shrank');
        hash.update(buf.subarray(0, bytesRead));
        at += bytesRead;
      }
      if (!hash.digest().equals(digest.subarray(1))) throw new Error('different bytes');
      return { path: file, handle };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  private index(): Promise<Map<number, string[]>> {
    if (this.bySize) return Promise.resolve(this.bySize);
    this.indexing ??= this.build().then(
      (m) => {
        this.bySize = m;
        this.indexedAt = Date.now();
        this.indexing = undefined;
        return m;
      },
      (err) => {
        this.indexing = undefined;
        throw err;
      },
    );
    return this.indexing;
  }

  private async build(): Promise<Map<number, string[]>> {
    const dirs = new Set(this.options.dirs ?? (await defaultDirs()));
    const bySize = new Map<number, string[]>();
    const seen = new Set<string>();
    for (const dir of dirs) {
      const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        const file = path.join(dir, name);
        const st = await fs.promises.lstat(file).catch(() => undefined);
        if (!st || !st.isFile()) continue;
        const id = `${st.dev}:${st.ino}`; // /bin and /usr/bin may be one directory
        if (seen.has(id)) continue;
        seen.add(id);
        const list = bySize.get(st.size);
        if (list) list.push(file);
        else bySize.set(st.size, [file]);
      }
    }
    return bySize;
  }
}

async function defaultDirs(): Promise<string[]> {
  const fromCache = await readLdCache('/etc/ld.so.cache').then(
    (entries) => entries.map((e) => path.dirname(e.path)),
    () => [] as string[],
  );
  return [...new Set([...fromCache, ...PROGRAM_DIRS])];
}
