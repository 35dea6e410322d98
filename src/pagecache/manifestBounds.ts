// A cheap look at a manifest's tables before it is decoded. The decoder resolves every object's
// runs and every run's digests, and records may legally point at the same runs: a hostile
// manifest of a few megabytes could ask for billions of digest copies. The daemon decodes
// manifests of files anyone can write, so it checks the total work first.

/** Most digests the objects of one manifest may reference in total (libLLVM has ~25 000). */
export const MAX_REFERENCED_DIGESTS = 4 << 20;
const MAX_REFERENCED_RUNS = 1 << 20;

/** Why decoding `b` would be too much work, or null when it is bounded. */
export function manifestTooCostly(b: Buffer): string | null {
  if (b.length < 64) return null; // the decoder rejects it
  const count = b.readUInt32LE(16);
  const objectsOffset = b.readUInt32LE(24);
  const runsOffset = b.readUInt32LE(36);
  const runCount = b.readUInt32LE(40);
  if (count > 1024 || objectsOffset + count * 128 > b.length || runsOffset + runCount * 16 > b.length) return null;
  let runs = 0;
  for (let i = 0; i < count; i++) {
    const at = objectsOffset + i * 128;
    const firstRun = b.readUInt32LE(at + 32);
    const nRuns = b.readUInt32LE(at + 36);
    if (firstRun > runCount || nRuns > runCount - firstRun) return null;
    runs += nRuns;
    if (runs > MAX_REFERENCED_RUNS) return `objects reference more than ${MAX_REFERENCED_RUNS} runs`;
  }
  let digests = 0;
  for (let i = 0; i < count; i++) {
    const at = objectsOffset + i * 128;
    const firstRun = b.readUInt32LE(at + 32);
    const nRuns = b.readUInt32LE(at + 36);
    for (let r = firstRun; r < firstRun + nRuns; r++) {
      digests += b.readUInt32LE(runsOffset + r * 16 + 8);
      if (digests > MAX_REFERENCED_DIGESTS) return `objects reference more than ${MAX_REFERENCED_DIGESTS} page digests`;
    }
  }
  return null;
}
