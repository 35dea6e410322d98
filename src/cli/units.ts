// Human sizes in and out: "10G" -> bytes, bytes -> "1.5 MiB"; and how long to wait for a peer.
import { UserError } from './errors';

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseSize(text: string): number {
  const n = sizeOf(text);
  if (n === undefined) throw new UserError(`not a size: ${text} (use e.g. 512M or 10G)`);
  return n;
}

/** The size an option was given, refused in one line that names the option and says what it takes. */
export function parseSizeOption(option: string, text: string, min: number, wants: string): number {
  const n = sizeOf(text);
  if (n === undefined || !Number.isFinite(n) || n < min) throw new UserError(`${option} wants ${wants}, not ${text === '' ? "''" : text}`);
  return n;
}

function sizeOf(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  return m ? Math.floor(parseFloat(m[1]) * UNITS[m[2].toLowerCase()]) : undefined;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** Longer than any peer stays silent for a reason; a day also keeps timers in range. */
export const MAX_TIMEOUT_S = 86_400;

/** Seconds to wait for a peer (`get --timeout`, `mount --peer-timeout`), refused in one line unless above 0 and at most a day. */
export function checkTimeoutSeconds(option: string, seconds: number): number {
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT_S)) throw new UserError(`${option} wants seconds above 0 and at most ${MAX_TIMEOUT_S} (a day), not ${seconds}`);
  return seconds;
}
