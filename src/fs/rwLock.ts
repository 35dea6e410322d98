// A fair readers-writer lock for one file's state: reads share it, writes, truncates and commits
// hold it alone. Promise-based so waiting never blocks the event loop.
export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly queue: Array<{ exclusive: boolean; wake: () => void }> = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.queue.length > 0) await new Promise<void>((wake) => this.queue.push({ exclusive: false, wake }));
    else this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.pump();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.readers > 0 || this.queue.length > 0) {
      await new Promise<void>((wake) => this.queue.push({ exclusive: true, wake }));
    } else this.writer = true;
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.pump();
    }
  }

  get idle(): boolean {
    return !this.writer && this.readers === 0 && this.queue.length === 0;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.writer) {
      const next = this.queue[0];
      if (next.exclusive) {
        if (this.readers > 0) return;
        this.queue.shift();
        this.writer = true;
        next.wake();
        return;
      }
      this.queue.shift();
      this.readers++;
      next.wake();
    }
  }
}
