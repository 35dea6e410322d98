// POSIX behaviour through a real FUSE mount, observed from other processes (as users see it).
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { startMount, type TestMount } from '../helpers/mount';
import { sh } from '../helpers/cli';
import { randomBytes } from '../helpers/prng';

let m: TestMount;
let mp: string;
beforeAll(() => {
  m = startMount();
  mp = m.mountpoint;
});
afterAll(() => m?.cleanup());

/** stat as another process sees it right now (no attribute cache in this process). */
const stat = (p: string) => sh(`stat -c '%h %i %a %s %F' '${p}'`).stdout.trim();
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

test('a hard link shows the same inode and link count 2 at once, and shares content', () => {
  fs.writeFileSync(path.join(mp, 'a'), 'hello');
  fs.linkSync(path.join(mp, 'a'), path.join(mp, 'b'));
  const [na, ia] = stat(path.join(mp, 'a')).split(' ');
  const [nb, ib] = stat(path.join(mp, 'b')).split(' ');
  expect([na, nb]).toEqual(['2', '2']);
  expect(ia).toBe(ib);
  fs.appendFileSync(path.join(mp, 'b'), ' world');
  expect(fs.readFileSync(path.join(mp, 'a'), 'utf8')).toBe('hello world');
  fs.unlinkSync(path.join(mp, 'a'));
  expect(stat(path.join(mp, 'b')).split(' ')[0]).toBe('1');
});

test('chmod is what the next stat sees', () => {
  fs.writeFileSync(path.join(mp, 'm'), 'x');
  fs.chmodSync(path.join(mp, 'm'), 0o751);
  expect(stat(path.join(mp, 'm')).split(' ')[2]).toBe('751');
});

test('rename replaces an existing file atomically', () => {
  fs.writeFileSync(path.join(mp, 'old'), 'old');
  fs.writeFileSync(path.join(mp, 'new'), 'new');
  fs.renameSync(path.join(mp, 'new'), path.join(mp, 'old'));
  expect(fs.readFileSync(path.join(mp, 'old'), 'utf8')).toBe('new');
  expect(fs.existsSync(path.join(mp, 'new'))).toBe(false);
});

test('rename moves a directory tree and fixes link counts', () => {
  fs.mkdirSync(path.join(mp, 'd1/sub'), { recursive: true });
  fs.mkdirSync(path.join(mp, 'd2'));
  fs.writeFileSync(path.join(mp, 'd1/sub/f'), 'deep');
  fs.renameSync(path.join(mp, 'd1/sub'), path.join(mp, 'd2/moved'));
  expect(fs.readFileSync(path.join(mp, 'd2/moved/f'), 'utf8')).toBe('deep');
  expect(stat(path.join(mp, 'd1')).split(' ')[0]).toBe('2');
  expect(stat(path.join(mp, 'd2')).split(' ')[0]).toBe('3');
});

test('a moved directory lists its new parent as ..', () => {
  fs.mkdirSync(path.join(mp, 'up1/dn'), { recursive: true });
  fs.mkdirSync(path.join(mp, 'up2'));
  fs.renameSync(path.join(mp, 'up1/dn'), path.join(mp, 'up2/dn'));
  const listed = sh(`ls -ai '${path.join(mp, 'up2/dn')}'`).stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
  expect(listed.find(([, name]) => name === '..')?.[0]).toBe(stat(path.join(mp, 'up2')).split(' ')[1]);
});

test('a directory cannot be moved into itself', () => {
  fs.mkdirSync(path.join(mp, 'outer/inner'), { recursive: true });
  expect(() => fs.renameSync(path.join(mp, 'outer'), path.join(mp, 'outer/inner/x'))).toThrow(/EINVAL/);
});

test('rmdir of a non-empty directory fails with ENOTEMPTY', () => {
  fs.mkdirSync(path.join(mp, 'full'));
  fs.writeFileSync(path.join(mp, 'full/f'), '');
  expect(() => fs.rmdirSync(path.join(mp, 'full'))).toThrow(/ENOTEMPTY/);
});

test('creating an existing name fails with EEXIST', () => {
  fs.mkdirSync(path.join(mp, 'dup'));
  expect(() => fs.mkdirSync(path.join(mp, 'dup'))).toThrow(/EEXIST/);
  expect(() => fs.writeFileSync(path.join(mp, 'dup2'), 'a', { flag: 'wx' })).not.toThrow();
  expect(() => fs.writeFileSync(path.join(mp, 'dup2'), 'a', { flag: 'wx' })).toThrow(/EEXIST/);
});

test('a name longer than 255 bytes is ENAMETOOLONG when looked up, as on ext4, not ENOENT', () => {
  const long = path.join(mp, 'n'.repeat(256));
  expect(() => fs.statSync(long)).toThrow(/ENAMETOOLONG/);
  expect(() => fs.truncateSync(long, 1)).toThrow(/ENAMETOOLONG/);
  expect(() => fs.unlinkSync(long)).toThrow(/ENAMETOOLONG/);
  expect(fs.statSync(path.join(mp, 'n'.repeat(255)), { throwIfNoEntry: false })).toBeUndefined();
});

test('symlinks resolve and readlink returns the target', () => {
  fs.writeFileSync(path.join(mp, 'target'), 'via link');
  fs.symlinkSync('target', path.join(mp, 'link'));
  expect(fs.readlinkSync(path.join(mp, 'link'))).toBe('target');
  expect(fs.readFileSync(path.join(mp, 'link'), 'utf8')).toBe('via link');
  expect(fs.lstatSync(path.join(mp, 'link')).isSymbolicLink()).toBe(true);
});

test('truncate shrinks and grows with zeros', () => {
  const p = path.join(mp, 't');
  fs.writeFileSync(p, randomBytes(1, 300000));
  fs.truncateSync(p, 1000);
  expect(fs.statSync(p).size).toBe(1000);
  fs.truncateSync(p, 5000);
  const b = fs.readFileSync(p);
  expect(b.length).toBe(5000);
  expect(b.subarray(0, 1000).equals(randomBytes(1, 1000))).toBe(true);
  expect(b.subarray(1000).every((x) => x === 0)).toBe(true);
});

describe('holes and the largest file', () => {
  const peakRss = () => {
    const pid = JSON.parse(fs.readFileSync(path.join(m.store, 'daemon.pid'), 'utf8')).pid;
    return Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  };

  test('growing a file by a 1 GiB hole does not hold the hole in the daemon memory', () => {
    const p = path.join(mp, 'hole');
    const before = peakRss();
    expect(sh(`truncate -s 1G '${p}'`).status).toBe(0);
    expect(fs.statSync(p).size).toBe(2 ** 30);
    expect(peakRss() - before).toBeLessThan(256 << 20);
    fs.unlinkSync(p);
  });

  test('a file cannot grow past 16 TiB: truncate and a write there are EFBIG and change nothing', () => {
    const p = path.join(mp, 'huge');
    fs.writeFileSync(p, 'abc');
    const t = sh(`truncate -s ${16 * 2 ** 40 + 1} '${p}'`);
    expect(t.stderr).toMatch(/File too large/);
    const w = sh(`printf x | dd of='${p}' bs=1 seek=${16 * 2 ** 40} conv=notrunc`);
    expect(w.stderr).toMatch(/File too large/);
    expect(fs.readFileSync(p, 'utf8')).toBe('abc');
    fs.unlinkSync(p);
  });
});

describe('extended attributes', () => {
  /** Run Python's os.*xattr in another process; prints the result or the errno name. */
  const py = (code: string): string =>
    sh(`python3 -c 'import os, errno
try:
    r = ${code}
    print("ok" if r is None else r)
except OSError as e:
    print(errno.errorcode[e.errno])'`).stdout.trim();

  test('an attribute set on a file is read back, listed and removed', () => {
    const f = path.join(mp, 'xa-file');
    fs.writeFileSync(f, 'x');
    expect(py(`os.setxattr("${f}", "user.colour", b"blue")`)).toBe('ok');
    expect(py(`os.getxattr("${f}", "user.colour")`)).toBe("b'blue'");
    expect(py(`os.listxattr("${f}")`)).toBe("['user.colour']");
    expect(py(`os.removexattr("${f}", "user.colour")`)).toBe('ok');
    expect(py(`os.listxattr("${f}")`)).toBe('[]');
    expect(py(`os.getxattr("${f}", "user.colour")`)).toBe('ENODATA');
  });

  test('XATTR_CREATE refuses an existing name and XATTR_REPLACE a missing one', () => {
    const f = path.join(mp, 'xa-flags');
    fs.writeFileSync(f, 'x');
    expect(py(`os.setxattr("${f}", "user.a", b"1", os.XATTR_CREATE)`)).toBe('ok');
    expect(py(`os.setxattr("${f}", "user.a", b"2", os.XATTR_CREATE)`)).toBe('EEXIST');
    expect(py(`os.setxattr("${f}", "user.b", b"2", os.XATTR_REPLACE)`)).toBe('ENODATA');
    expect(py(`os.removexattr("${f}", "user.b")`)).toBe('ENODATA');
    expect(py(`os.getxattr("${f}", "user.a")`)).toBe("b'1'");
  });

  test('a directory and hard links carry attributes, values up to 64 KiB', () => {
    const d = path.join(mp, 'xa-dir');
    fs.mkdirSync(d);
    expect(py(`os.setxattr("${d}", "user.d", b"dir")`)).toBe('ok');
    expect(py(`os.getxattr("${d}", "user.d")`)).toBe("b'dir'");
    const f = path.join(d, 'f');
    fs.writeFileSync(f, 'x');
    expect(py(`os.setxattr("${f}", "user.big", b"v" * 65536)`)).toBe('ok');
    fs.linkSync(f, path.join(d, 'g'));
    expect(py(`len(os.getxattr("${path.join(d, 'g')}", "user.big"))`)).toBe('65536');
  });

  test('cp -a brings user attributes along; file capabilities and names outside the namespaces are refused', () => {
    const src = path.join(m.dir, 'xa-src');
    fs.writeFileSync(src, 'payload');
    expect(py(`os.setxattr("${src}", "user.origin", b"ext4")`)).toBe('ok');
    expect(sh(`cp -a '${src}' '${mp}/xa-copy'`).status).toBe(0);
    expect(py(`os.getxattr("${mp}/xa-copy", "user.origin")`)).toBe("b'ext4'");
    expect(py(`os.setxattr("${mp}/xa-copy", "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))`)).toBe('ENOTSUP');
    expect(py(`os.setxattr("${mp}/xa-copy", "user", b"no namespace name")`)).not.toBe('ok');
  });

  test('a mount with --no-xattr has none, and says so', () => {
    const other = startMount(['--no-xattr']);
    try {
      const f = path.join(other.mountpoint, 'f');
      fs.writeFileSync(f, 'x');
      expect(py(`os.setxattr("${f}", "user.a", b"1")`)).toBe('ENOTSUP');
      expect(py(`os.getxattr("${f}", "user.a")`)).toBe('ENOTSUP');
    } finally {
      other.cleanup();
    }
  });
});

describe('renameat2 RENAME_EXCHANGE', () => {
  /** renameat2(a, b, RENAME_EXCHANGE) from another process; the errno name on failure. */
  const exchange = (a: string, b: string): string =>
    sh(
      `python3 -c 'import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); ` +
        `r = libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2); ` +
        `print("ok" if r == 0 else __import__("errno").errorcode[ctypes.get_errno()])' '${a}' '${b}'`,
    ).stdout.trim();
  const ino = (p: string) => stat(p).split(' ')[1];
  const links = (p: string) => stat(p).split(' ')[0];

  test('two files trade names atomically: contents and inode numbers swap', () => {
    const [x, y] = [path.join(mp, 'xa'), path.join(mp, 'xb')];
    fs.writeFileSync(x, 'first');
    fs.writeFileSync(y, 'second');
    const [ix, iy] = [ino(x), ino(y)];
    expect(exchange(x, y)).toBe('ok');
    expect([fs.readFileSync(x, 'utf8'), fs.readFileSync(y, 'utf8')]).toEqual(['second', 'first']);
    expect([ino(x), ino(y)]).toEqual([iy, ix]);
  });

  test('a directory and a file in different directories trade places, and the link counts follow', () => {
    fs.mkdirSync(path.join(mp, 'xp1/sub'), { recursive: true });
    fs.mkdirSync(path.join(mp, 'xp2'));
    fs.writeFileSync(path.join(mp, 'xp1/sub/inside'), 'deep');
    fs.writeFileSync(path.join(mp, 'xp2/file'), 'flat');
    expect([links(path.join(mp, 'xp1')), links(path.join(mp, 'xp2'))]).toEqual(['3', '2']);
    expect(exchange(path.join(mp, 'xp1/sub'), path.join(mp, 'xp2/file'))).toBe('ok');
    expect(fs.readFileSync(path.join(mp, 'xp2/file/inside'), 'utf8')).toBe('deep');
    expect(fs.readFileSync(path.join(mp, 'xp1/sub'), 'utf8')).toBe('flat');
    expect([links(path.join(mp, 'xp1')), links(path.join(mp, 'xp2'))]).toEqual(['2', '3']);
    expect(sh(`ls -a '${path.join(mp, 'xp2/file')}/..'`).stdout.split('\n')).toContain('file');
  });

  test('a directory cannot be exchanged into its own subtree, and both names must exist', () => {
    fs.mkdirSync(path.join(mp, 'xo/xi'), { recursive: true });
    expect(exchange(path.join(mp, 'xo'), path.join(mp, 'xo/xi'))).toBe('EINVAL');
    expect(fs.existsSync(path.join(mp, 'xo/xi'))).toBe(true);
    expect(exchange(path.join(mp, 'xo'), path.join(mp, 'nothing-here'))).toBe('ENOENT');
  });
});

describe('fallocate', () => {
  const content = randomBytes(7, 300000);
  const fresh = (name: string) => {
    const p = path.join(mp, name);
    fs.writeFileSync(p, content);
    return p;
  };
  const fallocate = (args: string) => sh(`fallocate ${args}`);

  test('allocating past the end extends the file with zeros and keeps its bytes', () => {
    const p = fresh('fa-extend');
    expect(fallocate(`-l 1048576 '${p}'`).status).toBe(0);
    const b = fs.readFileSync(p);
    expect(b.length).toBe(1048576);
    expect(b.subarray(0, content.length).equals(content)).toBe(true);
    expect(b.subarray(content.length).every((x) => x === 0)).toBe(true);
  });

  test('allocating with KEEP_SIZE, or inside the file, changes nothing', () => {
    const p = fresh('fa-keep');
    expect(fallocate(`-n -l 1048576 '${p}'`).status).toBe(0);
    expect(fallocate(`-o 4096 -l 8192 '${p}'`).status).toBe(0);
    expect(fs.readFileSync(p).equals(content)).toBe(true);
  });

  test('a punched hole reads as zeros and the size stays', () => {
    const p = fresh('fa-punch');
    expect(fallocate(`-p -o 4096 -l 100000 '${p}'`).status).toBe(0);
    const want = Buffer.from(content);
    want.fill(0, 4096, 104096);
    expect(fs.readFileSync(p).equals(want)).toBe(true);
  });

  test('zeroing a range past the end grows the file unless KEEP_SIZE', () => {
    const p = fresh('fa-zero');
    expect(fallocate(`-z -o 290000 -l 20000 '${p}'`).status).toBe(0);
    const want = Buffer.concat([content.subarray(0, 290000), Buffer.alloc(20000)]);
    expect(fs.readFileSync(p).equals(want)).toBe(true);
    expect(fallocate(`-z -n -o 305000 -l 20000 '${p}'`).status).toBe(0);
    expect(fs.statSync(p).size).toBe(310000);
  });

  test('collapsing or inserting a range is refused as not supported', () => {
    const p = fresh('fa-collapse');
    const r = fallocate(`-c -o 0 -l 4096 '${p}'`);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/not supported/);
    expect(fs.readFileSync(p).equals(content)).toBe(true);
  });
});

test('writes in the middle of a large file change only those bytes', () => {
  const p = path.join(mp, 'big');
  const data = randomBytes(2, 10 << 20);
  fs.writeFileSync(p, data);
  const before = m.stats();
  const patch = randomBytes(3, 4096);
  const r = sh(`dd if=/dev/stdin of='${p}' bs=4096 seek=1000 count=1 conv=notrunc status=none < <(head -c 4096 /dev/zero)`);
  expect(r.status).toBe(0);
  const fd = fs.openSync(p, 'r+');
  fs.writeSync(fd, patch, 0, patch.length, 7 << 20);
  fs.closeSync(fd);
  patch.copy(data, 7 << 20);
  data.fill(0, 4096 * 1000, 4096 * 1001);
  expect(sha(fs.readFileSync(p))).toBe(sha(data));
  const after = m.stats();
  expect(after.uniqueBytes - before.uniqueBytes).toBeLessThan(4 * 65536);
});

test('a file being written is readable by another open with what was written', () => {
  const p = path.join(mp, 'growing');
  const fd = fs.openSync(p, 'w');
  fs.writeSync(fd, Buffer.from('first part;'));
  const seen = sh(`cat '${p}'`).stdout;
  fs.writeSync(fd, Buffer.from('second part'));
  const seen2 = sh(`cat '${p}'`).stdout;
  fs.closeSync(fd);
  expect(seen).toBe('first part;');
  expect(seen2).toBe('first part;second part');
});

test('readdir lists every entry', () => {
  fs.mkdirSync(path.join(mp, 'many'));
  const names = Array.from({ length: 300 }, (_, i) => `file-${i}`);
  for (const n of names) fs.writeFileSync(path.join(mp, 'many', n), n);
  expect(fs.readdirSync(path.join(mp, 'many')).sort()).toEqual([...names].sort());
});

test('utimens sets the times other processes see', () => {
  const p = path.join(mp, 'times');
  fs.writeFileSync(p, 'x');
  fs.utimesSync(p, 1000000, 2000000);
  expect(sh(`stat -c '%X %Y' '${p}'`).stdout.trim()).toBe('1000000 2000000');
});

test('a file created by another user belongs to that user', () => {
  fs.chmodSync(m.dir, 0o755); // mkdtemp makes it 0700: let the other user reach the mount
  fs.mkdirSync(path.join(mp, 'pub'));
  fs.chmodSync(path.join(mp, 'pub'), 0o1777);
  const r = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups touch '${mp}/pub/theirs'`);
  expect(r.status).toBe(0);
  expect(stat(path.join(mp, 'pub/theirs')).split(' ')[2]).toBe('644');
  expect(sh(`stat -c '%u %g' '${mp}/pub/theirs'`).stdout.trim()).toBe('65534 65534');
});

test('the kernel enforces modes for other users', () => {
  fs.chmodSync(m.dir, 0o755);
  fs.writeFileSync(path.join(mp, 'private'), 'secret');
  fs.chmodSync(path.join(mp, 'private'), 0o600);
  const r = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups cat '${mp}/private'`);
  expect(r.status).not.toBe(0);
  expect(r.stderr).toMatch(/Permission denied/);
});

test('statfs answers', () => {
  expect(sh(`stat -f -c '%b' '${mp}'`).status).toBe(0);
});

describe('names are bytes', () => {
  // A Latin-1 "café", a lone 0xff, an encoded surrogate, and valid UTF-8 next to an invalid byte.
  const NAMES = [Buffer.from('caf\xe9', 'latin1'), Buffer.from([0xff]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xc3, 0xa9, 0xfe])];
  const at = (...parts: Buffer[]) => Buffer.concat([Buffer.from(mp), ...parts.flatMap((p) => [Buffer.from('/'), p])]);
  const listing = (...parts: Buffer[]) => (fs.readdirSync(at(...parts), { encoding: 'buffer' }) as Buffer[]).map((b) => b.toString('hex')).sort();
  const dir = Buffer.from('bytes-\x80', 'latin1');

  beforeAll(() => {
    fs.mkdirSync(at(dir));
    for (const n of NAMES) fs.writeFileSync(at(dir, n), n);
  });

  test('files whose names are not UTF-8 are created, listed and read under exactly those bytes', () => {
    expect(listing(dir)).toEqual(NAMES.map((n) => n.toString('hex')).sort());
    for (const n of NAMES) expect(fs.readFileSync(at(dir, n)).equals(n)).toBe(true);
  });

  test('rename, link and unlink take such names', () => {
    const from = Buffer.from('mv-\xfa', 'latin1');
    const to = Buffer.from('mv-\xfb', 'latin1');
    fs.writeFileSync(at(dir, from), 'moved');
    fs.renameSync(at(dir, from), at(dir, to));
    fs.linkSync(at(dir, to), at(dir, Buffer.from('ln-\xfc', 'latin1')));
    expect(fs.statSync(at(dir, to)).nlink).toBe(2);
    fs.unlinkSync(at(dir, to));
    expect(fs.readFileSync(at(dir, Buffer.from('ln-\xfc', 'latin1')), 'utf8')).toBe('moved');
    expect(fs.existsSync(at(dir, from))).toBe(false);
  });

  test('a symlink keeps a target that is not UTF-8, and its size counts bytes', () => {
    const target = Buffer.from('/nowhere/\xfe\xfd', 'latin1');
    fs.symlinkSync(target, at(dir, Buffer.from('sym')));
    expect((fs.readlinkSync(at(dir, Buffer.from('sym')), { encoding: 'buffer' }) as Buffer).equals(target)).toBe(true);
    expect(fs.lstatSync(at(dir, Buffer.from('sym'))).size).toBe(target.length);
  });

  test('the names are the same after the store is unmounted and mounted again', () => {
    const before = listing(dir);
    m.unmount();
    m.remount();
    expect(listing(dir)).toEqual(before);
    for (const n of NAMES) expect(fs.readFileSync(at(dir, n)).equals(n)).toBe(true);
  });
});

describe('special files', () => {
  // What stat(1) says of a node: type, major and minor (hex), permission bits, link count.
  const node = (p: string) => sh(`stat -c '%F %t %T %a %h' '${p}'`).stdout.trim();
  let dir: string;
  beforeAll(() => {
    dir = path.join(mp, 'special');
    fs.mkdirSync(dir);
  });

  test('a FIFO made with mkfifo carries bytes from one process to another', () => {
    const fifo = path.join(dir, 'pipe');
    expect(sh(`mkfifo -m 0640 '${fifo}'`).status).toBe(0);
    expect(node(fifo)).toBe('fifo 0 0 640 1');
    const r = sh(`(echo 'through the pipe' > '${fifo}' &) ; cat '${fifo}'`, { timeout: 10_000 });
    expect(r.stdout).toBe('through the pipe\n');
  });

  test('a Unix socket bound in the mount accepts a connection', () => {
    const sock = path.join(dir, 'sock');
    const py = [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)',
      'c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); a, _ = s.accept()',
      "c.sendall(b'over the socket'); print(a.recv(100).decode())",
    ].join('\n');
    const r = sh(`python3 -c '${py.replace(/'/g, `'"'"'`)}' '${sock}'`, { timeout: 10_000 });
    expect(r.stdout).toBe('over the socket\n');
    expect(node(sock)).toMatch(/^socket 0 0 /);
  });

  test('device nodes keep their numbers; the nodev mount will not open them', () => {
    expect(sh(`mknod -m 0666 '${dir}/null' c 1 3 && mknod -m 0600 '${dir}/disk' b 259 65537`).status).toBe(0);
    expect(node(path.join(dir, 'null'))).toBe('character special file 1 3 666 1'); // mknod -m sets the mode after the umask
    expect(node(path.join(dir, 'disk'))).toBe('block special file 103 10001 600 1');
    expect(() => fs.writeFileSync(path.join(dir, 'null'), 'x')).toThrow(/EACCES/);
  });

  test('special files link, rename and chmod like files, and outlive a remount', () => {
    fs.linkSync(path.join(dir, 'pipe'), path.join(dir, 'pipe2'));
    fs.renameSync(path.join(dir, 'disk'), path.join(dir, 'disk2'));
    fs.chmodSync(path.join(dir, 'disk2'), 0o640);
    const before = ['pipe', 'pipe2', 'null', 'disk2'].map((n) => node(path.join(dir, n)));
    expect(before).toEqual(['fifo 0 0 640 2', 'fifo 0 0 640 2', 'character special file 1 3 666 1', 'block special file 103 10001 640 1']);
    m.unmount();
    m.remount();
    expect(['pipe', 'pipe2', 'null', 'disk2'].map((n) => node(path.join(dir, n)))).toEqual(before);
    expect(fs.readdirSync(dir).sort()).toEqual(['disk2', 'null', 'pipe', 'pipe2', 'sock']);
  });

  test('stats counts them apart from files and symlinks', () => {
    // pipe (two names, one inode), sock, null, disk2
    expect(m.stats().special).toBe(4);
  });
});
