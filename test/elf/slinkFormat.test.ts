// The slinked file's layout: stub first, then every object byte-identical and page-aligned in
// the real loader's load order, then manifest and trailer; the same input gives the same bytes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { digestOf } from '../../src/chunking/digest';
import { parseElf } from '../../src/elf/elfFile';
import { decodeMailbox, decodeManifest, encodeMailbox, encodeManifest, mailboxOffset, MAILBOX_SIZE, TRAILER_SIZE, type Manifest } from '../../src/elf/manifest';
import { layoutSlinkedFile } from '../../src/elf/layout';
import { openSlinked } from '../../src/elf/slinkedFile';
import { slinkFile, stubPath } from '../../src/elf/slink';
import { tempDir } from './slinkHelpers';

let dir: string;
beforeAll(() => {
  dir = tempDir('format');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** What glibc's own loader loads for `program`, in its order (LD_TRACE_LOADED_OBJECTS). */
function loaderOrder(program: string): { libraries: string[]; interpreter: string } {
  const r = spawnSync(program, [], { env: { LD_TRACE_LOADED_OBJECTS: '1' }, encoding: 'utf8' });
  const libraries: string[] = [];
  let interpreter = '';
  for (const line of r.stdout.split('\n')) {
    const lib = /^\s+\S+ => (\/\S+) \(0x/.exec(line);
    const interp = /^\s+(\/\S+) \(0x/.exec(line);
    if (lib) libraries.push(lib[1]);
    else if (interp) interpreter = interp[1];
  }
  return { libraries, interpreter };
}

test.each(['git', 'python3.11', 'perl', 'ls'])('%s: objects in the loader\'s order, page-aligned, byte-identical', async (name) => {
  const program = `/usr/bin/${name}`;
  const out = path.join(dir, name);
  await slinkFile(program, out);
  const f = await openSlinked(out);
  const bytes = fs.readFileSync(out);
  const expected = loaderOrder(program);
  expect(f.manifest.objects.map((o) => `${o.role} ${o.path}`)).toEqual([
    `program ${program}`,
    ...expected.libraries.map((l) => `library ${l}`),
    `interpreter ${expected.interpreter}`,
  ]);
  let end = 0;
  for (const o of f.manifest.objects) {
    expect(o.offset % 4096).toBe(0);
    expect(o.offset).toBeGreaterThanOrEqual(end);
    const original = fs.readFileSync(o.role === 'program' ? program : o.path);
    expect(bytes.subarray(o.offset, o.offset + o.size).equals(original)).toBe(true);
    expect(o.digest).toEqual(digestOf(original));
    expect(bytes.subarray(end, o.offset).every((b) => b === 0) || end === 0).toBe(true);
    end = o.offset + o.size;
  }
  expect(f.trailer.manifestOffset).toBe(Math.ceil(end / 8) * 8);
  expect(f.trailer.manifestOffset + f.trailer.manifestLength + TRAILER_SIZE).toBe(bytes.length);
});

test('the file starts with the stub, an ELF executable the kernel can run directly', async () => {
  const out = path.join(dir, 'true');
  await slinkFile('/usr/bin/true', out);
  const stub = fs.readFileSync(stubPath());
  const bytes = fs.readFileSync(out);
  // Byte for byte, but for the mailbox page that slink fills (next test).
  const mb = mailboxOffset(stub);
  expect(bytes.subarray(0, mb).equals(stub.subarray(0, mb))).toBe(true);
  expect(bytes.subarray(mb + MAILBOX_SIZE, stub.length).equals(stub.subarray(mb + MAILBOX_SIZE))).toBe(true);
  const elf = parseElf(stub, 'stub');
  expect(elf.type).toBe('dyn'); // static-pie: no fixed address to collide with ET_EXEC programs
  expect(elf.interpreter).toBeUndefined();
  expect(elf.needed).toEqual([]);
  const f = await openSlinked(out);
  expect(f.manifest.objects[0].offset).toBe(Math.ceil(stub.length / 4096) * 4096);
});

test('the stub\'s mailbox holds the manifest\'s objects without their page digests', async () => {
  const out = path.join(dir, 'ls-mailbox');
  await slinkFile('/usr/bin/ls', out);
  const f = await openSlinked(out);
  const bytes = fs.readFileSync(out);
  const mb = mailboxOffset(fs.readFileSync(stubPath()));
  const inMailbox = decodeMailbox(bytes.subarray(mb, mb + MAILBOX_SIZE));
  expect(inMailbox).toEqual({ objects: f.manifest.objects.map((o) => ({ ...o, runs: [] })), pageDigestAlgorithm: null });
  expect(bytes.readBigUInt64LE(mb + 16)).toBe(BigInt(f.trailer.manifestOffset));
});

test('a manifest too large for the mailbox page leaves the mailbox empty', () => {
  const object = (i: number) => ({
    role: (i === 0 ? 'program' : i === 39 ? 'interpreter' : 'library') as 'program' | 'library' | 'interpreter',
    name: `lib${i}.so`, path: `/usr/lib/x86_64-linux-gnu/lib${i}.so`, offset: 4096 * (i + 1), size: 4096,
    digest: digestOf(Buffer.from([i])), runs: [],
  });
  const few = { objects: [0, 1, 39].map(object), pageDigestAlgorithm: null };
  const many = { objects: Array.from({ length: 40 }, (_, i) => object(i)), pageDigestAlgorithm: null };
  expect(encodeMailbox(few, 4096 * 41)).toBeDefined();
  expect(encodeMailbox(many, 4096 * 41)).toBeUndefined();
});

test('the same input gives the same bytes', async () => {
  const a = path.join(dir, 'sort-a');
  const b = path.join(dir, 'sort-b');
  await slinkFile('/usr/bin/sort', a);
  await slinkFile('/usr/bin/sort', b);
  expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
});

test('the output keeps the permission bits and drops nothing else of the input', async () => {
  const out = path.join(dir, 'cat');
  await slinkFile('/usr/bin/cat', out);
  expect(fs.statSync(out).mode & 0o7777).toBe(fs.statSync('/usr/bin/cat').mode & 0o777);
});

test('a manifest survives encoding and decoding unchanged', () => {
  const d = (s: string) => digestOf(Buffer.from(s));
  const m: Manifest = {
    pageDigestAlgorithm: 'sha256',
    objects: [
      { role: 'program', name: 'p', path: '/usr/bin/p', offset: 8192, size: 5000, digest: d('p'), runs: [{ segment: 3, firstPage: 1, digests: [d('p1')] }] },
      { role: 'library', name: 'libé.so.1', path: '/lib/libé.so.1', offset: 16384, size: 9000, digest: d('l'), runs: [] },
      { role: 'interpreter', name: 'ld.so', path: '/lib64/ld.so', offset: 28672, size: 100, digest: d('i'), runs: [{ segment: 1, firstPage: 0, digests: [d('a'), d('b')] }, { segment: 2, firstPage: 5, digests: [d('c')] }] },
    ],
  };
  const bytes = encodeManifest(m);
  expect(bytes.length % 8).toBe(0);
  expect(decodeManifest(bytes, 1 << 20)).toEqual(m);
});

test('layout puts every object on the next 4096-byte boundary and the manifest 8-aligned after the last', () => {
  expect(layoutSlinkedFile(6576, [4096, 1, 5000])).toEqual({ objectOffsets: [8192, 12288, 16384], manifestOffset: 21384 });
});
