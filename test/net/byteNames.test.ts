// Names that are not UTF-8 cross the wire unchanged: a tree served from one store arrives under
// the same name bytes in a plain directory (-o) and in another store (--store).
import fs from 'node:fs';
import path from 'node:path';
import { startMount, type TestMount } from '../helpers/mount';
import { tempDir } from '../elf/slinkHelpers';
import { type Served, runCli, startServe } from './netHelpers';

const NAMES = [Buffer.from('caf\xe9', 'latin1'), Buffer.from([0xff, 0x2e, 0x78]), Buffer.from([0xc3, 0xa9, 0xfe])];
const LINK = Buffer.from('link-\xfa', 'latin1');
const TARGET = Buffer.from('../elsewhere/\xfd', 'latin1');

/** A path of byte components under `root`. */
const at = (root: string, ...parts: Buffer[]) => Buffer.concat([Buffer.from(root), ...parts.flatMap((p) => [Buffer.from('/'), p])]);
const hexNames = (dir: Buffer) => (fs.readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).map((b) => b.toString('hex')).sort();
const want = [...NAMES, LINK].map((b) => b.toString('hex')).sort();
const MANY = 2100;
const manyName = (i: number) => Buffer.concat([Buffer.from([0xff]), Buffer.from(String(i).padStart(4, '0'))]);

let sender: TestMount;
let served: Served;
let work: string;

beforeAll(async () => {
  sender = startMount();
  fs.mkdirSync(at(sender.mountpoint, Buffer.from('tree')));
  for (const n of NAMES) fs.writeFileSync(at(sender.mountpoint, Buffer.from('tree'), n), Buffer.concat([n, Buffer.alloc(20000, n[0])]));
  fs.symlinkSync(TARGET, at(sender.mountpoint, Buffer.from('tree'), LINK));
  // More entries than one listing page holds (2000), every name with a byte that is not UTF-8:
  // the cursor that asks for the second page is such a name.
  fs.mkdirSync(at(sender.mountpoint, Buffer.from('many')));
  for (let i = 0; i < MANY; i++) fs.writeFileSync(at(sender.mountpoint, Buffer.from('many'), manyName(i)), '');
  sender.unmount();
  served = await startServe(sender.store);
  work = tempDir('net-bytenames');
}, 60_000);

afterAll(async () => {
  await served?.stop();
  sender?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function checkTree(dir: Buffer): void {
  expect(hexNames(dir)).toEqual(want);
  for (const n of NAMES) expect(fs.readFileSync(at(dir.toString(), n)).equals(Buffer.concat([n, Buffer.alloc(20000, n[0])]))).toBe(true);
  expect((fs.readlinkSync(Buffer.concat([dir, Buffer.from('/'), LINK]), { encoding: 'buffer' }) as Buffer).equals(TARGET)).toBe(true);
}

test('get -o of a directory writes each name as the bytes the peer has', async () => {
  const out = path.join(work, 'plain');
  const r = await runCli(['get', served.url, '/tree', '--dir', '-o', out]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  checkTree(Buffer.from(out));
});

test('get --store keeps the name bytes in the receiving store', async () => {
  const dir = path.join(work, 'recv');
  const r = await runCli(['get', served.url, '/tree', '--dir', '--into', '/got', '--store', path.join(dir, 'store')]);
  expect(r.code).toBe(0);
  const m = startMount([], dir);
  try {
    checkTree(Buffer.from(path.join(m.mountpoint, 'got', 'tree')));
  } finally {
    m.cleanup();
  }
});

test('a listing longer than one page continues after a name that is not UTF-8', async () => {
  const out = path.join(work, 'many');
  const r = await runCli(['get', served.url, '/many', '--dir', '-o', out]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(hexNames(Buffer.from(out))).toEqual(Array.from({ length: MANY }, (_, i) => manyName(i).toString('hex')).sort());
});
