// Published objects backed by their twins (twins.ts) through the mount's FUSE passthrough: for
// each object the index announces, look for a twin and hand it to the session. One object at a
// time, in the background: each look may hash a large file.
//
// Only a twin that some process has mapped is used: then its pages are in memory anyway and
// sharing them saves a copy (libc.so.6 and the loader, which every dynamic program maps, the
// daemon included). A twin nobody maps would save nothing, and passthrough costs every program
// start a little (README, "Twins"): such an object stays served by the daemon.
import type { LowLevelSession } from '../fs/lowlevel';
import type { ObjectIndex } from './objectIndex';
import type { TwinFinder } from './twins';
import { mappedFiles, mapsDevice } from './procMaps';

type BackingSession = Pick<LowLevelSession, 'setBacking'>;

/** setBacking errors that no other file would avoid: EPERM (no CAP_SYS_ADMIN), ELOOP (backing
 *  filesystem too deeply stacked), ENOTSUP (no passthrough on this connection). */
const MOUNT_WIDE_REFUSALS = new Set([1, 40, 95]);
/** How long one look at every process's mappings answers for (a round of lookups). */
const IN_USE_MS = 2000;

export class TwinBacking {
  private work: Promise<void> = Promise.resolve();
  /** Objects queued and not looked at yet. */
  pending = 0;
  /** Twins found since the last log line. */
  private found = 0;
  /** Set once the kernel refuses passthrough for a reason no other file would avoid. */
  private refused = false;
  private closed = false;
  private inUse: { at: number; files: Promise<Set<string>> } | undefined;
  /** Objects whose twin nobody mapped when they were looked at. */
  unused = 0;

  constructor(
    private readonly session: BackingSession,
    private readonly index: ObjectIndex,
    private readonly finder: TwinFinder,
    private readonly log: (line: string) => void,
  ) {}

  /** Queue object `ino` (just published or found) for a twin. */
  add(ino: number): void {
    this.pending++;
    this.work = this.work.then(() => this.back(ino)).finally(() => {
      if (--this.pending === 0 && this.found > 0) {
        this.log(`page cache: ${this.found} more objects pass through to identical files of this machine (${this.index.twinCount()} of ${this.index.size})`);
        this.found = 0;
      }
    });
  }

  private async back(ino: number): Promise<void> {
    const e = this.index.get(ino);
    if (!e || e.twin || this.closed || this.refused) return;
    try {
      // Decided before any candidate is read: hashing a twin nobody maps would be wasted.
      const mapped = await this.mappedNow();
      let unmapped = false;
      const inUse = (dev: bigint, ino: bigint) => {
        if (mapped.has(`${mapsDevice(dev)}:${ino}`)) return true;
        unmapped = true;
        return false;
      };
      const twin = await this.finder.find(e.digest, e.size, inUse);
      if (!twin) {
        if (unmapped) this.unused++;
        return;
      }
      try {
        if (this.index.get(ino) !== e) return; // unpublished meanwhile
        const id = this.session.setBacking(ino, twin.handle.fd);
        if (id > 0) {
          e.twin = twin.path;
          this.found++;
        } else if (MOUNT_WIDE_REFUSALS.has(-id)) {
          // Not root, or the system files sit on a stacked filesystem (overlayfs): say it once.
          this.refused = true;
          this.log(`page cache: the kernel refuses passthrough to files of this machine (errno ${-id}); objects are served by the daemon`);
        } else this.log(`page cache: ${e.name} cannot pass through to ${twin.path} (errno ${-id})`);
      } finally {
        await twin.handle.close();
      }
    } catch (err) {
      this.log(`page cache: looking for a twin of ${e.name} failed: ${(err as Error).message}`);
    }
  }

  /** Every file mapped by some process, looked at most once per IN_USE_MS. */
  private mappedNow(): Promise<Set<string>> {
    const now = Date.now();
    if (!this.inUse || now - this.inUse.at > IN_USE_MS) this.inUse = { at: now, files: mappedFiles() };
    return this.inUse.files;
  }

  /** Settles when every object queued so far has been looked at. */
  async idle(): Promise<void> {
    await this.work;
  }

  /** Stop looking; settles once the look under way and what the finder learnt are done. */
  async close(): Promise<void> {
    this.closed = true;
    await this.work;
    await this.finder.idle();
  }
}
