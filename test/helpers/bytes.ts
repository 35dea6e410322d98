// The bytes a file must hold after a truncate or a write, kept beside it in a Buffer: what the
// store's recipe and reads are checked against.

/** `b` cut or grown with zeros to `size` bytes (ftruncate). */
export function resized(b: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  b.copy(out, 0, 0, Math.min(size, b.length));
  return out;
}

/** `b` with `data` written at `offset`, grown with zeros if it ends past `b` (pwrite). */
export function patched(b: Buffer, offset: number, data: Buffer): Buffer {
  const out = resized(b, Math.max(b.length, offset + data.length));
  data.copy(out, offset);
  return out;
}
