// The two limits on one reply from a peer, charged for the peer's time only: no byte for
// idleMs, and the whole reply within its deadline. While the receiver holds a block it was given
// the reply is paused (the peer cannot send), so both clocks stop; and a timer that fires after
// this process was busy first lets that event-loop turn's pending socket reads in (timers run
// before them), then decides.

/** The longest delay setTimeout keeps: beyond it Node warns and fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export class ReplyTimers {
  private idle: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private lastByteMs = Date.now();
  private deadlineAt: number;
  private heldSince: number | undefined;
  private stopped = false;

  constructor(
    private readonly idleMs: number,
    deadlineMs: number,
    private readonly onSilent: () => void,
    private readonly onLate: () => void,
  ) {
    this.deadlineAt = Date.now() + deadlineMs;
    this.armIdle(idleMs);
    this.armDeadline();
  }

  /** Bytes arrived. */
  byte(): void {
    this.lastByteMs = Date.now();
    if (this.heldSince === undefined) this.armIdle(this.idleMs);
  }

  /** The receiver took a block: the reply waits for it, not for the peer. */
  hold(): void {
    if (this.heldSince !== undefined) return;
    this.heldSince = Date.now();
    clearTimeout(this.idle);
    clearTimeout(this.deadline);
  }

  /** The receiver wants the next block: the peer's clocks run again from here. */
  resume(): void {
    if (this.heldSince === undefined) return;
    const now = Date.now();
    this.deadlineAt += now - this.heldSince;
    this.heldSince = undefined;
    this.lastByteMs = now;
    this.armIdle(this.idleMs);
    this.armDeadline();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.idle);
    clearTimeout(this.deadline);
  }

  private armIdle(ms: number): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => setImmediate(() => this.checkIdle()), ms);
  }

  private checkIdle(): void {
    if (this.stopped || this.heldSince !== undefined) return;
    const quiet = Date.now() - this.lastByteMs;
    if (quiet < this.idleMs) this.armIdle(this.idleMs - quiet);
    else this.onSilent();
  }

  private armDeadline(): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => setImmediate(() => this.checkDeadline()), Math.min(Math.max(0, this.deadlineAt - Date.now()), MAX_TIMER_MS));
  }

  private checkDeadline(): void {
    if (this.stopped || this.heldSince !== undefined) return;
    if (Date.now() < this.deadlineAt) this.armDeadline();
    else this.onLate();
  }
}
