// The protocol's pure parts: the canonical recipe and the file digest it gives, what names a peer
// may use, and the checks a listing must pass as a whole.
import { digestOf, digestToString } from '../../src/chunking/digest';
import {
  PeerProtocolError,
  TreeChecker,
  checkEntry,
  decodeRecipe,
  encodeRecipe,
  fileDigest,
  nameComponents,
  nameParam,
  queryName,
  requestPathComponents,
  type Recipe,
} from '../../src/net/protocol';
import { decodeName, encodeName } from '../../src/store/names';

const a = Buffer.alloc(5000, 1);
const b = Buffer.alloc(3000, 2);
const recipe: Recipe = { mode: 0o100755, size: 8000, chunks: [{ length: 5000, digest: digestOf(a) }, { length: 3000, digest: digestOf(b) }] };

test('the canonical recipe is 20 header bytes and 37 bytes per sha256 chunk, and round-trips', () => {
  const bytes = encodeRecipe(recipe);
  expect(bytes.length).toBe(20 + 2 * 37);
  expect(bytes.subarray(0, 4).toString('latin1')).toBe('SLR1');
  expect(decodeRecipe(bytes)).toEqual(recipe);
});

test('the file digest is the sha256 of the canonical recipe and changes with the mode', () => {
  expect(digestToString(fileDigest(recipe))).toBe(digestToString(digestOf(encodeRecipe(recipe))));
  expect(fileDigest({ ...recipe, mode: 0o100644 }).equals(fileDigest(recipe))).toBe(false);
});

test.each([
  ['a size the chunks do not add up to', (r: Buffer) => r.writeBigUInt64LE(8001n, 8), 'malformed recipe: chunks add up to 8000 bytes, size says 8001'],
  ['a chunk longer than the chunker makes', (r: Buffer) => r.writeUInt32LE(70000, 20), 'malformed recipe: chunk of 70000 bytes'],
  ['a directory mode', (r: Buffer) => r.writeUInt32LE(0o040755, 4), 'malformed recipe: not a regular file'],
  ['a count beyond the limit', (r: Buffer) => r.writeUInt32LE(5, 16), 'recipe has 5 chunks, more than the limit of 4'],
])('a recipe with %s is rejected', (_what, edit, message) => {
  const bytes = Buffer.from(encodeRecipe(recipe));
  edit(bytes);
  expect(() => decodeRecipe(bytes, 4)).toThrow(new PeerProtocolError(message));
});

test('a truncated recipe or one with trailing bytes is rejected', () => {
  const bytes = encodeRecipe(recipe);
  expect(() => decodeRecipe(bytes.subarray(0, bytes.length - 1))).toThrow('malformed recipe: truncated');
  expect(() => decodeRecipe(Buffer.concat([bytes, Buffer.from([0])]))).toThrow('malformed recipe: trailing bytes');
});

test.each([
  ['a relative name is split into components', 'bin/ls', ['bin', 'ls']],
  ['".." is refused', '../etc', '".." in "../etc"'],
  ['"." is refused', 'a/./b', '"." in "a/./b"'],
  ['an absolute name is refused', '/etc/passwd', 'absolute name "/etc/passwd"'],
  ['an empty component is refused', 'a//b', 'empty component in "a//b"'],
  ['NUL is refused', 'a\0b', 'name contains NUL'],
  ['a component over 255 bytes is refused', 'x'.repeat(256), `component too long in "${'x'.repeat(256)}"`],
  ['an empty name is refused', '', 'empty name'],
])('names from a peer: %s', (_what, name, want) => {
  expect(nameComponents(name)).toEqual(want);
});

test('request paths are absolute and normalised, and still refuse ..', () => {
  expect(requestPathComponents('/')).toEqual([]);
  expect(requestPathComponents('//bin//ls/')).toEqual(['bin', 'ls']);
  expect(requestPathComponents('/bin/../etc')).toBe('".." in "bin/../etc"');
  expect(requestPathComponents('bin')).toBe('path must be absolute');
});

test('an entry must carry what its type needs', () => {
  const file = { name: 'f', type: 'file', mode: 0o644, mtime: 0, size: 1, digest: digestToString(digestOf(a)) };
  expect(checkEntry(file)).toEqual(file);
  expect(() => checkEntry({ ...file, digest: undefined })).toThrow('bad tree entry: digest of f');
  expect(() => checkEntry({ ...file, mode: 0o100644 })).toThrow('bad tree entry: mode of f');
  expect(() => checkEntry({ ...file, type: 'fifo' })).toThrow('bad tree entry: type fifo');
  expect(() => checkEntry({ name: 'l', type: 'symlink', mode: 0o777, mtime: 0, size: 1 })).toThrow('bad tree entry: target of l');
});

test('a listing must name each directory before its contents, never below a symlink or file, and nothing twice', () => {
  const t = new TreeChecker(10);
  const e = (name: string, type: 'file' | 'dir' | 'symlink') => ({ name, type, mode: 0o755, mtime: 0, size: 0 });
  t.add(e('bin', 'dir'));
  t.add(e('bin/ls', 'file'));
  t.add(e('link', 'symlink'));
  expect(() => t.add(e('link/x', 'file'))).toThrow('tree lists link/x before (or without) its directory');
  expect(() => t.add(e('bin/ls/x', 'file'))).toThrow('tree lists bin/ls/x before (or without) its directory');
  expect(() => t.add(e('bin/ls', 'file'))).toThrow('tree lists bin/ls twice');
  const small = new TreeChecker(1);
  small.add(e('a', 'file'));
  expect(() => small.add(e('b', 'file'))).toThrow('tree has more than 1 entries');
});

describe('names in query parameters', () => {
  test('a UTF-8 name is encoded as encodeURIComponent encodes it', () => {
    expect(queryName('bin/caf\u00e9 x+y')).toBe(encodeURIComponent('bin/caf\u00e9 x+y'));
  });

  test('the bytes of a name that is not UTF-8 come back exactly', () => {
    const name = decodeName(Buffer.from([0x62, 0x2f, 0xff, 0xc3, 0xa9, 0xe9]));
    const url = new URL(`http://peer/tree?z=1&path=${queryName(name)}&after=x`);
    expect(encodeName(nameParam(url, 'path')!)).toEqual(Buffer.from([0x62, 0x2f, 0xff, 0xc3, 0xa9, 0xe9]));
    expect(nameParam(url, 'after')).toBe('x');
    expect(nameParam(url, 'limit')).toBeNull();
  });
});
