// src/chunking: turning bytes into chunks. Rabin fingerprinting and the content-defined cut rule
// (rabin.ts, native cut finder behind chunker.ts), tagged SHA-256 digests (digest.ts), and the
// per-chunk zstd/raw codec (compress.ts), and the chunks of holes, made of zeros (zeros.ts).
// Nothing here does I/O beyond loading the addon.
export * from './chunker';
export * from './compress';
export * from './digest';
export { nativeStatus, NativeAddonMissingError } from './native';
export { isIrreducible, fingerprint } from './rabin';
