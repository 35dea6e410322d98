// A store whose chunk bytes were changed behind its back never hands out the wrong bytes: the
// read fails, the failure is counted, and verify names the damaged chunk.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { Filesystem } from '../../src/fs/filesystem';
import { LocalChunkSource } from '../../src/store/localSource';
import { Store } from '../../src/store/store';
import { verifyStore } from '../../src/store/verify';
import { BATCH_MISMATCH, BATCH_OK, decodeVerifyBatchAsync, encodeChunk } from '../../src/chunking/compress';
import { digestOf } from '../../src/chunking/digest';
import { randomBytes } from '../helpers/prng';

test('decoding refuses bytes that do not match the digest', async () => {
  const plain = fs.readFileSync('/bin/true').subarray(0, 9000);
  const enc = encodeChunk(plain);
  const row = (digest: ReturnType<typeof digestOf>) => [{ codec: enc.codec, srcOffset: 0, srcLength: enc.data.length, length: plain.length, digest, outOffset: 0, skip: 0, take: plain.length }];
  const out = Buffer.alloc(plain.length);
  expect([...(await decodeVerifyBatchAsync(enc.data, row(digestOf(plain)), out))]).toEqual([BATCH_OK]);
  expect(out).toEqual(plain);
  expect([...(await decodeVerifyBatchAsync(enc.data, row(digestOf(Buffer.from('other'))), Buffer.alloc(plain.length)))]).toEqual([BATCH_MISMATCH]);
});

test('a tampered chunk is refused on read, counted, and reported by verify', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-tamper-'));
  try {
    let store = await Store.open(dir);
    let fsys = new Filesystem(store, new LocalChunkSource(store));
    const data = randomBytes(50, 40000); // random: stored raw, so one byte flip is a tamper
    const fh = await fsys.create('/f', 0o644, { uid: 0, gid: 0 });
    await fsys.write(fh, data, data.length, 0);
    await fsys.release(fh);
    const digest = store.extents(store.lookup(1, 'f')!)[0].digest;
    await store.close();

    // Flip one byte of the stored chunk with plain LMDB, as a disk error or an attacker would.
    const env = openLmdb({ path: path.join(dir, 'db'), maxDbs: 16 });
    const chunks = env.openDB({ name: 'chunks', encoding: 'binary', keyEncoding: 'binary' });
    const bytes = Buffer.from(chunks.getBinary(digest)!);
    bytes[100] ^= 0xff;
    await chunks.put(digest, bytes);
    await env.close();

    store = await Store.open(dir);
    const local = new LocalChunkSource(store);
    fsys = new Filesystem(store, local);
    const rfh = await fsys.open('/f', 0);
    const out = Buffer.alloc(data.length);
    await expect(fsys.read(rfh, out, data.length, 0)).rejects.toThrow(/missing or damaged/);
    await fsys.release(rfh);
    expect(local.counters.verifyFailures).toBe(1);
    const damage = verifyStore(store).damage;
    expect(damage.map((d) => d.kind)).toEqual(['chunk-corrupt']);
    await store.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
