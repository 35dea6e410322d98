// A one-line progress bar on stderr. Silent when stderr is not a terminal, so logs and pipes
// get only the final summary.
export interface Progress {
  tick(label: string): void;
  done(): void;
}

export function progressBar(total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY || total <= 1) return { tick() {}, done() {} };
  let count = 0;
  let lastDraw = 0;
  const draw = (label: string) => {
    const cols = Math.max(40, stream.columns || 80);
    const width = Math.min(30, cols - 30);
    const filled = Math.round((count / total) * width);
    const bar = `${'='.repeat(filled)}${filled < width ? '>' : ''}${' '.repeat(Math.max(0, width - filled - 1))}`;
    const head = `[${bar}] ${count}/${total} `;
    const room = cols - head.length - 1;
    const text = label.length > room ? `…${label.slice(label.length - room + 1)}` : label;
    stream.write(`\r${head}${text}\x1b[K`);
  };
  return {
    tick(label: string) {
      count++;
      const now = Date.now();
      // Redrawing on every file costs more than slinking small ones: at most ~20 frames a second.
      if (now - lastDraw >= 50 || count === total) {
        lastDraw = now;
        draw(label);
      }
    },
    done() {
      stream.write('\r\x1b[K');
    },
  };
}
