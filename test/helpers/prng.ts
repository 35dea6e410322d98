// A small seeded PRNG (splitmix32) so generated inputs are the same on every machine.
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export function randomBytes(seed: number, length: number): Buffer {
  const next = prng(seed);
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i + 4 <= length; i += 4) b.writeUInt32LE(next(), i);
  for (let i = length & ~3; i < length; i++) b[i] = next() & 0xff;
  return b;
}
