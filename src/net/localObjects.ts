// Objects this machine already has, found by the digest of their whole content (the seed index
// answers this), and what can be computed from them: their bytes at an offset, and the chunks a
// run of them makes (for expanding compact recipes).
import fs from 'node:fs';
import { digestFromString, type Digest } from '../chunking/digest';
import { chunkOpenFile } from '../store/seedSource';
import type { CompactRecipe } from './compactRecipe';
import type { FileLayout, Recipe, RecipeChunk } from './protocol';

export interface LocalObjects {
  lookupFile(digest: Digest): { path: string; size: number } | undefined;
}

/** The local copy of a layout's object, if there is one of the right size. */
export function localObject(objects: LocalObjects, layout: FileLayout, i: number): { path: string; size: number } | undefined {
  const o = layout.objects[i];
  let local: { path: string; size: number } | undefined;
  try {
    local = objects.lookupFile(digestFromString(o.digest));
  } catch {
    return undefined;
  }
  return local && local.size === o.size ? local : undefined;
}

/** Which of a layout's objects are here, as the bitmap a compact recipes request carries. */
export function objectBitmap(objects: LocalObjects, layout: FileLayout): Buffer {
  const b = Buffer.alloc(Math.ceil(layout.objects.length / 8));
  layout.objects.forEach((_, i) => {
    if (localObject(objects, layout, i)) b[i >> 3] |= 1 << (i & 7);
  });
  return b;
}

/** `length` bytes of a file from `offset`; bytes past its end read as zero. */
export async function readAt(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await fs.promises.open(path, 'r');
  try {
    const b = Buffer.alloc(length);
    const { bytesRead } = await fh.read(b, 0, length, offset);
    if (bytesRead < length) b.fill(0, bytesRead);
    return b;
  } finally {
    await fh.close();
  }
}

/**
 * The chunks of bytes [start, start + length) of an open file, chunked from `start` with the
 * store's rule (Rabin cuts plus object boundaries, at the bytes' own file offsets), reading a
 * window at a time. The last chunk ends at start + length.
 */
export async function chunkFileRange(path: string, start: number, length: number): Promise<RecipeChunk[]> {
  const fh = await fs.promises.open(path, 'r');
  try {
    return (await chunkOpenFile(fh, start, length)).map((c) => ({ length: c.length, digest: c.digest }));
  } finally {
    await fh.close();
  }
}

/**
 * The full recipe a compact one stands for, computed from the local objects it names; undefined
 * when an object is not here or does not chunk as claimed. The caller checks the result against
 * the file digest.
 */
export async function expandCompact(c: CompactRecipe, layout: FileLayout, objects: LocalObjects): Promise<Recipe | undefined> {
  const chunks: RecipeChunk[] = [];
  let offset = 0;
  try {
    for (const e of c.entries) {
      if (e.kind === 'chunk') {
        chunks.push(e.chunk);
        offset += e.chunk.length;
        continue;
      }
      const o = layout.objects[e.object];
      const local = localObject(objects, layout, e.object);
      if (!local || offset < o.offset || offset + e.bytes > o.offset + o.size) return undefined;
      const run = await chunkFileRange(local.path, offset - o.offset, e.bytes);
      if (run.length !== e.chunks) return undefined;
      chunks.push(...run);
      offset += e.bytes;
    }
  } catch {
    return undefined;
  }
  return { mode: c.mode, size: c.size, chunks };
}
