// Published objects backed by their twins (twins.ts) through the mount's FUSE passthrough: for
// each object the index announces, look for a twin and hand it to the session. One object at a
// time, in the background: each look may hash a large file.
import type { LowLevelSession } from '../fs/lowlevel';
import type { ObjectIndex } from './objectIndex';
import type { TwinFinder } from './twins';

type BackingSession = Pick<LowLevelSession, 'setBacking'>;

/** setBacking errors that no other file would avoid: EPERM (no CAP_SYS_ADMIN), ELOOP (backing
 *  filesystem too deeply stacked), ENOTSUP (no passthrough on this connection). */
const MOUNT_WIDE_REFUSALS = new Set([1, 40, 95]);

export class TwinBacking {
  private work: Promise<void> = Promise.resolve();
  /** Objects queued and not looked at yet. */
  pending = 0;
  /** Twins found since the last log line. */
  private found = 0;
  /** Set once the kernel refuses passthrough for a reason no other file would avoid. */
  private refused = false;
  private closed = false;

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
      const twin = await this.finder.find(e.digest, e.size);
      if (!twin) return;
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

  /** Stop looking; settles once the look under way and what the finder learnt are done. */
  async close(): Promise<void> {
    this.closed = true;
    await this.work;
    await this.finder.idle();
  }
}
