// The progress line of `slinkyfs get`: bytes of chunks needed against bytes that have arrived,
// and what crossed the wire for them. Drawn on stderr only when it is a terminal.
import { formatBytes } from './units';

export interface TransferProgress {
  /** Chunk plaintext bytes that arrived (from seeds or the peer). */
  add(plainBytes: number): void;
  done(): void;
}

export function transferProgress(neededBytes: number, wireBytes: () => number, stream: NodeJS.WriteStream = process.stderr): TransferProgress {
  if (!stream.isTTY || neededBytes === 0) return { add() {}, done() {} };
  let got = 0;
  let lastDraw = 0;
  const draw = () => {
    const width = 24;
    const filled = Math.min(width, Math.round((got / neededBytes) * width));
    const bar = `${'='.repeat(filled)}${filled < width ? '>' : ''}${' '.repeat(Math.max(0, width - filled - 1))}`;
    const pct = Math.floor((got / neededBytes) * 100);
    stream.write(`\r[${bar}] ${pct}% ${formatBytes(got)} of ${formatBytes(neededBytes)} needed, ${formatBytes(wireBytes())} transferred\x1b[K`);
  };
  return {
    add(n: number) {
      got += n;
      const now = Date.now();
      if (now - lastDraw >= 100) {
        lastDraw = now;
        draw();
      }
    },
    done() {
      stream.write('\r\x1b[K');
    },
  };
}
