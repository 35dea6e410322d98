// The file digest (protocol.ts: the SHA-256 of the canonical recipe) of a file on this machine,
// on a slinkyfs mount or not: what `slinkyfs get PEER sha256-<hex>` asks a peer for.
import fs from 'node:fs';
import { type Digest } from '../chunking/digest';
import { chunkOpenFile } from '../store/seedSource';
import { fileDigest } from './protocol';

export async function localFileDigest(file: string): Promise<Digest> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    const chunks = await chunkOpenFile(fh, 0, st.size);
    return fileDigest({ mode: st.mode, size: st.size, chunks: chunks.map((c) => ({ length: c.length, digest: c.digest })) });
  } finally {
    await fh.close();
  }
}
