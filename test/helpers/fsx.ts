// A file-system exerciser in the manner of fsx: a seeded random sequence of writes, reads,
// truncates, hole punches, closes and reopens on one file of the mount, each checked against
// a model of the file kept in memory. Sizes straddle the daemon's 8 MiB background-commit
// batch, so writes land before, inside and after batches that are still being committed.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { prng, randomBytes } from './prng';

export interface FsxOptions {
  seed: number;
  ops: number;
  /** Largest offset a write or truncate reaches. */
  maxSize: number;
  /** Called with a line per operation when set (to replay a failure by hand). */
  trace?: (line: string) => void;
}

export interface FsxResult {
  /** The model's final contents: what the file must hold once closed. */
  expected: Buffer;
  counts: Record<string, number>;
}

/** Thrown when the file and the model disagree: says where and after which operation. */
export class FsxMismatch extends Error {}

/** Run the exerciser on `file` (created empty). Leaves the file closed. */
export function runFsx(file: string, o: FsxOptions): FsxResult {
  const next = prng(o.seed);
  const uniform = (n: number) => next() % Math.max(1, n);
  let model = Buffer.alloc(0);
  let size = 0;
  const counts: Record<string, number> = {};
  let writer = fs.openSync(file, 'w+');
  let reader = fs.openSync(file, 'r');
  let dataSeed = o.seed * 1_000_003;

  const ensure = (n: number) => {
    if (model.length >= n) return;
    const bigger = Buffer.alloc(Math.max(n, model.length * 2));
    model.copy(bigger, 0, 0, size);
    model = bigger;
  };
  const step = (name: string, detail: string) => {
    counts[name] = (counts[name] ?? 0) + 1;
    o.trace?.(`${name} ${detail}`);
  };
  const check = (fd: number, at: number, length: number, op: number, what: string) => {
    const want = Math.max(0, Math.min(length, size - at));
    const got = Buffer.alloc(length);
    let n = 0;
    while (n < length) {
      const r = fs.readSync(fd, got, n, length - n, at + n);
      if (r === 0) break;
      n += r;
    }
    if (n !== want) throw new FsxMismatch(`op ${op} (${what}): read of ${length} at ${at} gave ${n} bytes, expected ${want} (size ${size})`);
    const exp = model.subarray(at, at + want);
    if (!got.subarray(0, n).equals(exp)) {
      let i = 0;
      while (got[i] === exp[i]) i++;
      throw new FsxMismatch(`op ${op} (${what}): byte ${at + i} is ${got[i]}, expected ${exp[i]}`);
    }
  };
  // Mostly small offsets and lengths, sometimes large ones: both the chunk-sized edits and the
  // multi-megabyte streams that fill a batch.
  const length = () => {
    const r = uniform(100);
    if (r < 40) return 1 + uniform(4096);
    if (r < 75) return 1 + uniform(96 << 10);
    return 1 + uniform(3 << 20);
  };
  const offset = (len: number) => {
    const r = uniform(100);
    if (r < 35) return size; // append
    if (r < 45) return Math.min(o.maxSize - len, size + uniform(1 << 20)); // past the end: a hole
    return uniform(Math.max(1, Math.min(size, o.maxSize - len)));
  };

  const write = (at: number, len: number) => {
    const data = randomBytes(dataSeed++, len);
    fs.writeSync(writer, data, 0, len, at);
    ensure(at + len);
    data.copy(model, at);
    size = Math.max(size, at + len);
  };

  for (let op = 0; op < o.ops; op++) {
    const r = uniform(100);
    if (r < 6) {
      // A stream of writes long enough to fill background batches, read back while they commit.
      let at = uniform(100) < 50 ? size : uniform(size + 1);
      const total = (4 << 20) + uniform(12 << 20);
      const end = Math.min(o.maxSize, at + total);
      while (at < end) {
        const len = Math.min(end - at, (64 << 10) + uniform(1 << 20));
        write(at, len);
        if (uniform(4) === 0) check(reader, uniform(size), 1 + uniform(256 << 10), op, 'read during a stream');
        at += len;
      }
      step('stream', `${at} ${total}`);
    } else if (r < 50) {
      const len = length();
      const at = Math.max(0, offset(len));
      write(at, len);
      step('write', `${at} ${len}`);
    } else if (r < 70) {
      const len = length();
      const at = uniform(size + 1);
      check(reader, at, len, op, 'read');
      step('read', `${at} ${len}`);
    } else if (r < 78) {
      const to = uniform(100) < 50 ? uniform(size + 1) : uniform(o.maxSize);
      fs.ftruncateSync(writer, to);
      // The model keeps every byte past the end zero: what a later hole or extension reads.
      if (to > size) ensure(to);
      else model.fill(0, to, size);
      size = to;
      step('truncate', `${to}`);
    } else if (r < 83) {
      // util-linux fallocate: another process, another open of the file
      const len = 1 + uniform(256 << 10);
      const at = uniform(size + 1);
      const res = spawnSync('fallocate', ['--punch-hole', '--keep-size', '-o', String(at), '-l', String(len), file]);
      if (res.status !== 0) throw new Error(`fallocate failed: ${res.stderr}`);
      model.fill(0, at, Math.min(size, at + len));
      step('punch', `${at} ${len}`);
    } else if (r < 88) {
      fs.closeSync(writer);
      writer = fs.openSync(file, 'r+');
      step('reopen', '');
    } else if (r < 91) {
      fs.fsyncSync(writer);
      step('fsync', '');
    } else if (r < 94) {
      fs.closeSync(reader);
      reader = fs.openSync(file, 'r');
      step('reopen-reader', '');
    } else {
      if (fs.fstatSync(reader).size !== size) throw new FsxMismatch(`op ${op}: size ${fs.fstatSync(reader).size}, expected ${size}`);
      check(reader, 0, size, op, 'whole file');
      step('verify', `${size}`);
    }
  }
  fs.closeSync(writer);
  check(reader, 0, size, o.ops, 'after close');
  fs.closeSync(reader);
  return { expected: Buffer.from(model.subarray(0, size)), counts };
}
