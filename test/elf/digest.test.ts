// Code-page digests: the same library has the same page digests in every slinked file, because it
// sits page-aligned; `digest --verify` finds a single flipped byte; `digest` adds a missing table.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, sh, slinkyfs } from '../helpers/cli';
import { useMount } from '../helpers/mount';
import { digestToString } from '../../src/chunking/digest';
import { readElf } from '../../src/elf/elfFile';
import { openSlinked } from '../../src/elf/slinkedFile';
import { slinkFile } from '../../src/elf/slink';
import { slinkPrograms, tempDir } from './slinkHelpers';

const LIBC = '/lib/x86_64-linux-gnu/libc.so.6';
let dir: string;
let bin: Map<string, string>;

beforeAll(async () => {
  dir = tempDir('digest');
  bin = await slinkPrograms(['ls', 'sort'], dir);
}, 60000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** SHA-256 of each code page of `file`, computed here from the ELF program headers directly. */
async function expectedCodePages(file: string): Promise<Map<number, string>> {
  const elf = await readElf(file);
  const bytes = fs.readFileSync(file);
  const pages = new Map<number, string>();
  for (const ph of elf.programHeaders) {
    if (ph.type !== 1 || !(ph.flags & 1) || ph.flags & 2) continue;
    for (let p = Math.floor(ph.offset / 4096); p * 4096 < ph.offset + ph.filesz; p++) {
      const page = Buffer.alloc(4096);
      bytes.copy(page, 0, p * 4096, Math.min(bytes.length, (p + 1) * 4096));
      pages.set(p, `sha256-${createHash('sha256').update(page).digest('hex')}`);
    }
  }
  return pages;
}

function pagesOf(o: { runs: readonly { firstPage: number; digests: readonly Buffer[] }[] }): Map<number, string> {
  const m = new Map<number, string>();
  for (const r of o.runs) r.digests.forEach((d, i) => m.set(r.firstPage + i, digestToString(d as never)));
  return m;
}

test('two slinked programs carry libc at page-aligned offsets with identical code-page digests', async () => {
  const [a, b] = await Promise.all([openSlinked(bin.get('ls')!), openSlinked(bin.get('sort')!)]);
  const libcA = a.manifest.objects.find((o) => o.name === 'libc.so.6')!;
  const libcB = b.manifest.objects.find((o) => o.name === 'libc.so.6')!;
  expect(libcA.offset % 4096).toBe(0);
  expect(libcB.offset % 4096).toBe(0);
  expect(libcA.offset).not.toBe(libcB.offset); // different programs in front of it
  const expected = await expectedCodePages(LIBC);
  expect(expected.size).toBeGreaterThan(100);
  expect(pagesOf(libcA)).toEqual(expected);
  expect(pagesOf(libcB)).toEqual(expected);
});

test('the bytes of each page in the slinked file are the bytes its digest names', async () => {
  const f = await openSlinked(bin.get('sort')!);
  const bytes = fs.readFileSync(f.path);
  for (const o of f.manifest.objects) {
    for (const r of o.runs) {
      r.digests.forEach((d, i) => {
        const at = o.offset + (r.firstPage + i) * 4096;
        const page = Buffer.alloc(4096);
        bytes.copy(page, 0, at, Math.min(at + 4096, o.offset + o.size));
        expect(createHash('sha256').update(page).digest()).toEqual(d.subarray(1));
      });
    }
  }
});

test('digest --verify passes on a fresh slinked file', () => {
  const r = slinkyfs(['digest', '--verify', bin.get('ls')!]);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/: \d+ code pages and 5 objects verified \(sha256\)\n$/);
});

test('digest --verify names the one page whose byte was flipped and exits 1', async () => {
  const copy = path.join(dir, 'ls-flipped');
  fs.copyFileSync(bin.get('ls')!, copy);
  const f = await openSlinked(copy);
  const libc = f.manifest.objects.find((o) => o.name === 'libc.so.6')!;
  const page = libc.runs[0].firstPage + 7;
  const at = libc.offset + page * 4096 + 1234;
  const fd = fs.openSync(copy, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] ^= 0x01;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);

  const r = slinkyfs(['digest', '--verify', copy]);
  expect(r.status).toBe(1);
  const pageAt = `0x${(libc.offset + page * 4096).toString(16)}`;
  expect(r.stdout).toBe(`mismatch: libc.so.6 page ${page} (file offset ${pageAt})\nmismatch: libc.so.6 whole-object digest (file offset 0x${libc.offset.toString(16)})\n`);
  expect(r.stderr).toBe(`slinkyfs: ${copy}: 2 digest mismatches\n`);
});

test('digest adds the table to a file slinked without one, and --verify then passes', async () => {
  const out = path.join(dir, 'cat-nodigests');
  await slinkFile('/usr/bin/cat', out, { digestAlgorithm: null });
  expect((await openSlinked(out)).manifest.pageDigestAlgorithm).toBeNull();
  const before = slinkyfs(['digest', '--verify', out]);
  expect(before.status).toBe(1);
  expect(before.stderr).toBe(`slinkyfs: ${out} has no digest table (add one with \`slinkyfs digest\`)\n`);

  const added = slinkyfs(['digest', out]);
  expect(added.status).toBe(0);
  const f = await openSlinked(out);
  expect(f.manifest.pageDigestAlgorithm).toBe('sha256');
  const libc = f.manifest.objects.find((o) => o.name === 'libc.so.6')!;
  expect(pagesOf(libc)).toEqual(await expectedCodePages(LIBC));
  expect(slinkyfs(['digest', '--verify', out]).status).toBe(0);
  // Refreshing a file that already has the table changes nothing.
  const once = fs.readFileSync(out);
  expect(slinkyfs(['digest', out]).status).toBe(0);
  expect(fs.readFileSync(out).equals(once)).toBe(true);
});

test('a slinked file is the same bytes whether its table was written by slink or added by digest', async () => {
  const direct = path.join(dir, 'true-direct');
  const later = path.join(dir, 'true-later');
  await slinkFile('/usr/bin/true', direct);
  await slinkFile('/usr/bin/true', later, { digestAlgorithm: null });
  expect(slinkyfs(['digest', later]).status).toBe(0);
  // Only the manifest's program path differs: it is the input path, which is the same here.
  expect(fs.readFileSync(later).equals(fs.readFileSync(direct))).toBe(true);
});

test('digest --list prints object, page, file offset and digest for every code page', async () => {
  const f = await openSlinked(bin.get('ls')!);
  const r = slinkyfs(['digest', '--list', bin.get('ls')!]);
  expect(r.status).toBe(0);
  const lines = r.stdout.trimEnd().split('\n');
  const total = f.manifest.objects.reduce((n, o) => n + o.runs.reduce((k, run) => k + run.digests.length, 0), 0);
  expect(lines).toHaveLength(total);
  const libc = f.manifest.objects.find((o) => o.name === 'libc.so.6')!;
  const first = libc.runs[0];
  expect(lines).toContain(
    `libc.so.6\t${first.firstPage}\t0x${(libc.offset + first.firstPage * 4096).toString(16)}\t${digestToString(first.digests[0])}`,
  );
});

test('inspect --json lists every object with offset, size, soname and page count', async () => {
  const r = slinkyfs(['inspect', '--json', bin.get('ls')!]);
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout);
  expect(j.pageDigestAlgorithm).toBe('sha256');
  expect(j.objects.map((o: { role: string; name: string }) => `${o.role}:${o.name}`)).toEqual([
    'program:ls',
    'library:libselinux.so.1',
    'library:libc.so.6',
    'library:libpcre2-8.so.0',
    'interpreter:ld-linux-x86-64.so.2',
  ]);
  const libc = j.objects[2];
  expect(libc).toMatchObject({ path: LIBC, size: fs.statSync(LIBC).size, codePages: (await expectedCodePages(LIBC)).size });
  expect(libc.offset % 4096).toBe(0);
  expect(j.size).toBe(fs.statSync(bin.get('ls')!).size);
});

test('inspect and digest refuse a file that is not slinked with one line and exit 2', () => {
  for (const args of [['inspect', '/usr/bin/true'], ['digest', '/usr/bin/true'], ['digest', '--verify', '/usr/bin/true']]) {
    const r = slinkyfs(args);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 2, stderr: 'slinkyfs: /usr/bin/true is not a slinked file (no slinky trailer)\n' });
  }
});

describe('what digest keeps of the file it rewrites', () => {
  test('a file with another hard link is refused, and both names keep the one unchanged file', async () => {
    const a = path.join(dir, 'linked-a');
    const b = path.join(dir, 'linked-b');
    await slinkFile('/usr/bin/true', a, { digestAlgorithm: null });
    fs.linkSync(a, b);
    const before = fs.readFileSync(a);
    const r = slinkyfs(['digest', b]);
    expect([r.status, r.stderr]).toEqual([
      2,
      `slinkyfs: ${b} has 2 hard links: digest writes a new file in its place, which the other names would not see (digest a copy, then link every name to it)\n`,
    ]);
    expect(fs.statSync(b).ino).toBe(fs.statSync(a).ino);
    expect(fs.statSync(a).nlink).toBe(2);
    expect(fs.readFileSync(b).equals(before)).toBe(true);
    expect(fs.readdirSync(dir).filter((n) => n.includes('.slinky-'))).toEqual([]);
  });

  test('the rewritten file keeps its owner, group and mode', async () => {
    const f = path.join(dir, 'owned');
    await slinkFile('/usr/bin/true', f, { digestAlgorithm: null });
    fs.chownSync(f, 65534, 65534);
    fs.chmodSync(f, 0o6751);
    const ino = fs.statSync(f).ino;
    expect(slinkyfs(['digest', f]).status).toBe(0);
    const st = fs.statSync(f);
    expect(st.ino).not.toBe(ino); // a new file took its place
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([65534, 65534, 0o6751]);
    expect(slinkyfs(['digest', '--verify', f]).status).toBe(0);
  });

  /** Runs a shell command in `cwd`; its stdout (throws with its stderr on failure). */
  function run(cmd: string, cwd = dir): string {
    const r = sh(cmd, { cwd });
    if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
    return r.stdout;
  }
  /** getfattr's dump of every attribute of `name` in `cwd`, as it prints them. */
  const attrsOf = (name: string, cwd = dir) => run(`getfattr -d -m - '${name}'`, cwd);
  // cap_net_raw+ep (VFS_CAP_REVISION_2), as setcap writes it.
  const CAP_NET_RAW = '0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=';
  // user::rwx user:65534:r-- group::r-x mask::r-x other::r-x
  const ACL_NOBODY_R = '0sAgAAAAEABwD/////AgAEAP7/AAAEAAUA/////xAABQD/////IAAFAP////8=';
  const asNobody = (args: string[], cwd: string) =>
    sh(`setpriv --reuid=65534 --regid=65534 --clear-groups -- '${process.execPath}' '${BIN}' ${args.map((a) => `'${a}'`).join(' ')}`, { cwd });

  test('the rewritten file keeps every extended attribute: user.*, trusted.*, its ACL and its file capabilities', async () => {
    const f = path.join(dir, 'attrs');
    await slinkFile('/usr/bin/true', f, { digestAlgorithm: null });
    fs.chmodSync(f, 0o755);
    run(`setfattr -n user.note -v hello attrs; setfattr -n trusted.origin -v 0x0001ff attrs; setfacl -m u:65534:r attrs; setfattr -n security.capability -v ${CAP_NET_RAW} attrs`);
    const expected = `# file: attrs\nsecurity.capability=${CAP_NET_RAW}\nsystem.posix_acl_access=${ACL_NOBODY_R}\ntrusted.origin=0sAAH/\nuser.note="hello"\n\n`;
    expect(attrsOf('attrs')).toBe(expected);
    const ino = fs.statSync(f).ino;
    const r = slinkyfs(['digest', f]);
    expect([r.status, r.stderr]).toEqual([0, '']);
    const st = fs.statSync(f);
    expect(st.ino).not.toBe(ino);
    expect(attrsOf('attrs')).toBe(expected);
    expect(st.mode & 0o7777).toBe(0o755);
    expect(slinkyfs(['digest', '--verify', f]).status).toBe(0);
  });

  test('the rewritten file gets no attribute the file did not have, such as an ACL from its directory', async () => {
    const sub = path.join(dir, 'default-acl');
    fs.mkdirSync(sub);
    run('setfacl -d -m u:65534:rwx default-acl');
    const f = path.join(sub, 'plain');
    await slinkFile('/usr/bin/true', f, { digestAlgorithm: null });
    run('setfacl -b plain; chmod 750 plain', sub);
    expect(attrsOf('plain', sub)).toBe('');
    expect(slinkyfs(['digest', f]).status).toBe(0);
    expect(attrsOf('plain', sub)).toBe('');
    expect(fs.statSync(f).mode & 0o7777).toBe(0o750);
  });

  test('its owner (not root) keeps the user.* attributes of a file its mode makes read-only', async () => {
    const sub = path.join(dir, 'nobody-rw');
    fs.mkdirSync(sub);
    fs.chownSync(sub, 65534, 65534);
    const f = path.join(sub, 'ro');
    await slinkFile('/usr/bin/true', f, { digestAlgorithm: null });
    run('setfattr -n user.note -v kept ro', sub);
    fs.chownSync(f, 65534, 65534);
    fs.chmodSync(f, 0o555);
    const r = asNobody(['digest', f], sub);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(attrsOf('ro', sub)).toBe('# file: ro\nuser.note="kept"\n\n');
    const st = fs.statSync(f);
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([65534, 65534, 0o555]);
    expect(slinkyfs(['digest', '--verify', f]).status).toBe(0);
    expect(fs.readdirSync(sub)).toEqual(['ro']);
  });

  test('a file capability another user cannot set is refused with one line, and the file stays as it was', async () => {
    const sub = path.join(dir, 'nobody-cap');
    fs.mkdirSync(sub);
    fs.chownSync(sub, 65534, 65534);
    const f = path.join(sub, 'capped');
    await slinkFile('/usr/bin/true', f, { digestAlgorithm: null });
    fs.chownSync(f, 65534, 65534);
    fs.chmodSync(f, 0o755);
    run(`setfattr -n security.capability -v ${CAP_NET_RAW} capped`, sub);
    const before = fs.readFileSync(f);
    const ino = fs.statSync(f).ino;
    const r = asNobody(['digest', f], sub);
    expect([r.status, r.stderr]).toEqual([
      2,
      `slinkyfs: ${f} has the extended attribute security.capability, which this user may not set on the new file that replaces it (digest it as root)\n`,
    ]);
    expect(fs.statSync(f).ino).toBe(ino);
    expect(fs.readFileSync(f).equals(before)).toBe(true);
    expect(attrsOf('capped', sub)).toBe(`# file: capped\nsecurity.capability=${CAP_NET_RAW}\n\n`);
    expect(fs.readdirSync(sub)).toEqual(['capped']);
  });

  describe('on a slinkyfs mount', () => {
    const mount = useMount();

    test('the rewritten file keeps its user.* and trusted.* attributes and its ACL', async () => {
      const f = path.join(mount.mp, 'attrs');
      await slinkFile('/usr/bin/true', f, { digestAlgorithm: null });
      fs.chmodSync(f, 0o755);
      run('setfattr -n user.note -v hello attrs; setfattr -n trusted.origin -v 0x0001ff attrs; setfacl -m u:65534:r attrs', mount.mp);
      const expected = `# file: attrs\nsystem.posix_acl_access=${ACL_NOBODY_R}\ntrusted.origin=0sAAH/\nuser.note="hello"\n\n`;
      expect(attrsOf('attrs', mount.mp)).toBe(expected);
      const ino = fs.statSync(f).ino;
      const r = slinkyfs(['digest', f]);
      expect([r.status, r.stderr]).toEqual([0, '']);
      expect(fs.statSync(f).ino).not.toBe(ino);
      expect(attrsOf('attrs', mount.mp)).toBe(expected);
      expect(fs.statSync(f).mode & 0o7777).toBe(0o755);
      expect(slinkyfs(['digest', '--verify', f]).status).toBe(0);
    });
  });
});
