// System files identical to published objects ("twins"): the libc.so.6 of this machine is
// byte for byte the libc object a slinked program embeds when it was slinked here. Backing the
// object with its twin (FUSE passthrough, src/fs/lowlevel.ts) lets slinked programs share the
// very pages dynamic programs use.
//
// A twin is believed only after its bytes hash to the object's digest, read through the same
// descriptor that is then handed to the kernel, and only if nobody but root can change it
// (owned by root, not writable by group or others): the same rule the stub applies to the
// objects directory. Candidates are found by size among the regular files of the library and
// program directories, so a lookup hashes almost only the file that matches. A file verified
// once is not hashed again while its inode, size, mtime and ctime stay the same (a write in
// place changes the ctime, which nobody can set back): the results are kept in a small JSON
// file, so a daemon that mounts again reads no twin at all.
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
  /** Where verified twins are remembered across daemons (default: nowhere). */
  cacheFile?: string;
}

/** What was verified of one file: its identity and state then, and the digest of its bytes. */
interface Verified {
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  digest: string;
}

const CACHE_VERSION = 1;

/** Whether a candidate (device and inode, from fstat) is worth hashing at all. */
export type CandidateFilter = (dev: bigint, ino: bigint) => boolean;

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
  /** Verified files by `dev:ino`; loaded from cacheFile on first use. */
  private verified: Map<string, Verified> | undefined;
  private verifiedChanged = false;
  /** Keys looked at by this process: only those are written back, so files gone are forgotten. */
  private readonly seen = new Set<string>();
  private pending = 0;
  /** Bytes hashed so far (what the cache spares shows here). */
  hashedBytes = 0;

  constructor(private readonly options: TwinFinderOptions = {}) {}

  /** An open file holding exactly the object's bytes, or undefined; candidates `wanted` refuses
   *  are not read. */
  find(digest: Digest, size: number, wanted: CandidateFilter = () => true): Promise<Twin | undefined> {
    this.pending++;
    const run = this.queue.then(() => this.findNow(digest, size, wanted));
    this.queue = run
      .catch(() => undefined)
      .then(async () => {
        // Write what was learnt once the lookups queued so far are done.
        if (--this.pending === 0 && this.verifiedChanged) await this.saveVerified();
      });
    return run;
  }

  /** Settles when every lookup asked for so far is done and what it learnt is written. */
  async idle(): Promise<void> {
    await this.queue;
  }

  private async findNow(digest: Digest, size: number, wanted: CandidateFilter): Promise<Twin | undefined> {
    let index = await this.index();
    let twin = await this.findIn(index, digest, size, wanted);
    if (!twin && Date.now() - this.indexedAt > REINDEX_MS) {
      this.bySize = undefined;
      index = await this.index();
      twin = await this.findIn(index, digest, size, wanted);
    }
    return twin;
  }

  private async findIn(index: Map<number, string[]>, digest: Digest, size: number, wanted: CandidateFilter): Promise<Twin | undefined> {
    for (const candidate of index.get(size) ?? []) {
      const twin = await this.open(candidate, digest, size, wanted).catch(() => undefined);
      if (twin) return twin;
    }
    return undefined;
  }

  /** `file` opened and checked: owner, mode, size, `wanted`, then every byte against the digest. */
  private async open(file: string, digest: Digest, size: number, wanted: CandidateFilter): Promise<Twin | undefined> {
    const handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = await handle.stat({ bigint: true });
      if (!st.isFile() || st.uid !== BigInt(this.options.uid ?? 0) || st.mode & 0o022n || st.size !== BigInt(size)) throw new Error('not a candidate');
      if (!wanted(st.dev, st.ino)) throw new Error('not wanted');
      const verified = await this.verifiedFiles();
      const key = `${st.dev}:${st.ino}`;
      const state = { size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
      this.seen.add(key);
      const known = verified.get(key);
      if (known && known.size === state.size && known.mtimeNs === state.mtimeNs && known.ctimeNs === state.ctimeNs) {
        if (known.digest === digest.toString('hex')) return { path: file, handle };
        throw new Error('different bytes');
      }
      const hash = createHash(algorithmOf(digest));
      const buf = this.buf;
      for (let at = 0; at < size; ) {
        const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, size - at), at);
        if (bytesRead === 0) throw new Error('file shrank');
        hash.update(buf.subarray(0, bytesRead));
        at += bytesRead;
        this.hashedBytes += bytesRead;
      }
      const got = Buffer.concat([digest.subarray(0, 1), hash.digest()]);
      // Remembered either way: a file that differs is not read again either.
      verified.set(key, { ...state, digest: got.toString('hex') });
      this.verifiedChanged = true;
      if (!got.equals(digest)) throw new Error('different bytes');
      return { path: file, handle };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  private async verifiedFiles(): Promise<Map<string, Verified>> {
    if (this.verified) return this.verified;
    const map = new Map<string, Verified>();
    const file = this.options.cacheFile;
    if (file) {
      try {
        const parsed = JSON.parse(await fs.promises.readFile(file, 'utf8')) as { version?: number; files?: Record<string, Verified> };
        if (parsed.version === CACHE_VERSION && parsed.files && typeof parsed.files === 'object') {
          for (const [k, v] of Object.entries(parsed.files)) {
            if (v && typeof v.size === 'string' && typeof v.mtimeNs === 'string' && typeof v.ctimeNs === 'string' && typeof v.digest === 'string') map.set(k, v);
          }
        }
      } catch {
        /* none yet, or unreadable: everything is hashed again */
      }
    }
    return (this.verified ??= map);
  }

  /** Written whole to a temporary file and renamed over the old one (never half a file). */
  private async saveVerified(): Promise<void> {
    const file = this.options.cacheFile;
    if (!file || !this.verified) return;
    this.verifiedChanged = false;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      const files = Object.fromEntries([...this.verified].filter(([k]) => this.seen.has(k)));
      await fs.promises.writeFile(tmp, JSON.stringify({ version: CACHE_VERSION, files }));
      await fs.promises.rename(tmp, file);
    } catch {
      await fs.promises.rm(tmp, { force: true });
      // Not remembered: the next daemon hashes again, nothing worse.
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
    const inodes = new Set<string>();
    for (const dir of dirs) {
      const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        const file = path.join(dir, name);
        const st = await fs.promises.lstat(file).catch(() => undefined);
        if (!st || !st.isFile()) continue;
        const id = `${st.dev}:${st.ino}`; // /bin and /usr/bin may be one directory
        if (inodes.has(id)) continue;
        inodes.add(id);
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
