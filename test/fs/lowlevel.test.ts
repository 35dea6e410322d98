// The low-level FUSE binding (src/fs/lowlevel.ts, native/fusell.c) through real mounts of the
// in-memory example filesystem (test/fixtures/lowlevelMemfs.ts), observed by other processes.
// This process serves the mount, so every access to it goes through an asynchronous child
// process: a synchronous call here (fs.*Sync, spawnSync) would block the thread that answers.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mountLowLevel, ROOT_INO, type LowLevelOptions, type LowLevelSession } from '../../src/fs/lowlevel';
import { MemFs, S_IFMT, S_IFREG } from '../fixtures/lowlevelMemfs';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a shell command in a child process without blocking this process's event loop. */
function sh(cmd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', cmd], { maxBuffer: 64 << 20, timeout: 60000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** stdout of a command that must succeed. */
async function out(cmd: string): Promise<string> {
  const r = await sh(cmd);
  if (r.code !== 0) throw new Error(`${cmd}: exit ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}

const ADDON = path.resolve(__dirname, '../../build/slinky_fusell.node');
const mounted = (mp: string) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mp);

async function mountMem(options: LowLevelOptions = {}): Promise<{ fs: MemFs; s: LowLevelSession; mp: string }> {
  const mp = mkdtempSync(path.join(tmpdir(), 'lowlevel-'));
  const fs = new MemFs();
  const s = await mountLowLevel(mp, fs, { allowOther: true, defaultPermissions: true, fsname: 'memfs', subtype: 'memfs', ...options });
  return { fs, s, mp };
}

async function unmountMem(m: { s: LowLevelSession; mp: string }): Promise<void> {
  await m.s.unmount();
  rmdirSync(m.mp);
}

/** Both ways of reading the device must behave the same, and so must polling after requests. */
const MODES: [string, LowLevelOptions][] = [
  ['device read on the JS thread', {}],
  ['device read on the JS thread, polling 2 ms after each request', { spinMicros: 2000 }],
  ['device read on a session thread', { sessionThread: true }],
];

describe.each(MODES)('a mounted in-memory filesystem, %s', (_mode, modeOptions) => {
  let fs: MemFs;
  let s: LowLevelSession;
  let mp: string;
  beforeAll(async () => {
    ({ fs, s, mp } = await mountMem(modeOptions));
  });
  afterAll(async () => {
    if (s) await unmountMem({ s, mp });
  });
  afterEach(() => {
    fs.hook = undefined;
  });

  test('the mount is listed with its fsname, subtype and options', async () => {
    const line = (await out(`grep ' ${mp} ' /proc/mounts`)).split(' ');
    expect(line.slice(0, 3)).toEqual(['memfs', mp, 'fuse.memfs']);
    expect(line[3].split(',')).toEqual(expect.arrayContaining(['default_permissions', 'allow_other']));
    expect(s.conn.maxWrite).toBe(128 * 1024);
  });

  test('a file written by one process is read back by another', async () => {
    await out(`printf 'hello\\n' > ${mp}/greeting`);
    expect(await out(`cat ${mp}/greeting`)).toBe('hello');
    expect(fs.at('greeting')!.data.subarray(0, 6).toString()).toBe('hello\n');
  });

  test('a 5 MiB file keeps its SHA-256 through the mount, written in 1 MiB blocks', async () => {
    const src = path.join(tmpdir(), `lowlevel-big-${process.pid}`);
    const data = randomBytes(5 << 20);
    writeFileSync(src, data);
    try {
      await out(`dd if=${src} of=${mp}/big bs=1M status=none`);
      const want = createHash('sha256').update(data).digest('hex');
      expect((await out(`sha256sum ${mp}/big`)).split(' ')[0]).toBe(want);
      expect(await out(`stat -c %s ${mp}/big`)).toBe(String(5 << 20));
      expect(fs.calls.get('write')).toBeGreaterThanOrEqual(40); // 128 KiB requests, not 4 KiB ones
      expect(fs.calls.get('write')).toBeLessThan(100);
    } finally {
      rmSync(src);
    }
  });

  test('mkdir, readdir and rmdir', async () => {
    await out(`mkdir ${mp}/d && touch ${mp}/d/x ${mp}/d/y && mkdir ${mp}/d/sub`);
    expect(await out(`ls -a ${mp}/d`)).toBe(['.', '..', 'sub', 'x', 'y'].join('\n'));
    expect(await out(`stat -c %h ${mp}/d`)).toBe('3');
    expect((await sh(`rmdir ${mp}/d`)).stderr).toMatch(/Directory not empty/);
    await out(`rm ${mp}/d/x ${mp}/d/y && rmdir ${mp}/d/sub ${mp}/d`);
    expect((await sh(`stat ${mp}/d`)).code).not.toBe(0);
  });

  test('readdir of 1000 names spans several requests and loses none', async () => {
    await out(`mkdir ${mp}/many && cd ${mp}/many && for i in $(seq 1 1000); do : > f$i; done`);
    const names = (await out(`ls -f ${mp}/many`)).split('\n').filter((n) => n !== '.' && n !== '..');
    expect(names.sort()).toEqual(Array.from({ length: 1000 }, (_, i) => `f${i + 1}`).sort());
  });

  test('rename moves a file and replaces an existing target', async () => {
    await out(`echo one > ${mp}/r1 && echo two > ${mp}/r2 && mkdir ${mp}/rd && mv ${mp}/r1 ${mp}/rd/moved`);
    expect(await out(`cat ${mp}/rd/moved`)).toBe('one');
    await out(`mv ${mp}/r2 ${mp}/rd/moved`);
    expect(await out(`cat ${mp}/rd/moved; ls ${mp}/rd`)).toBe('two\nmoved');
    expect((await sh(`stat ${mp}/r1`)).code).not.toBe(0);
  });

  test('rename flags reach the filesystem: RENAME_NOREPLACE fails, RENAME_EXCHANGE swaps', async () => {
    await out(`echo a > ${mp}/xa && echo b > ${mp}/xb`);
    const renameat2 = (flags: number) =>
      out(`cd ${mp} && python3 -c "import ctypes,os; l=ctypes.CDLL(None,use_errno=True); r=l.renameat2(-100,b'xa',-100,b'xb',${flags}); print(os.strerror(ctypes.get_errno()) if r else 'ok')"`);
    expect(await renameat2(1)).toBe('File exists');
    expect(await renameat2(2)).toBe('ok');
    expect(await out(`cat ${mp}/xa ${mp}/xb`)).toBe('b\na');
  });

  test('a hard link is the same inode: one st_ino, link count 2, shared content', async () => {
    await out(`echo linked > ${mp}/h1 && ln ${mp}/h1 ${mp}/h2`);
    const [a, b] = (await out(`stat -c '%i %h' ${mp}/h1 ${mp}/h2`)).split('\n');
    expect(a).toBe(b);
    expect(a.split(' ')[1]).toBe('2');
    expect(Number(a.split(' ')[0])).toBe(fs.at('h1')!.ino);
    await out(`echo more >> ${mp}/h2`);
    expect(await out(`cat ${mp}/h1`)).toBe('linked\nmore');
    await out(`rm ${mp}/h1`);
    expect(await out(`stat -c %h ${mp}/h2`)).toBe('1');
  });

  test('symlink and readlink', async () => {
    await out(`echo target > ${mp}/t && ln -s t ${mp}/sl && ln -s /nowhere/at/all ${mp}/dangling`);
    expect(await out(`readlink ${mp}/sl ${mp}/dangling`)).toBe('t\n/nowhere/at/all');
    expect(await out(`cat ${mp}/sl`)).toBe('target');
    expect(await out(`stat -c '%F %s' ${mp}/dangling`)).toBe('symbolic link 15');
  });

  test('chmod, chown and truncate are setattr with the right fields', async () => {
    await out(`echo 0123456789 > ${mp}/m && chmod 751 ${mp}/m && chown 1234:5678 ${mp}/m && truncate -s 4 ${mp}/m`);
    expect(await out(`stat -c '%a %u %g %s' ${mp}/m`)).toBe('751 1234 5678 4');
    expect(await out(`cat ${mp}/m`)).toBe('0123');
    const n = fs.at('m')!;
    expect([n.mode & 0o7777, n.mode & S_IFMT, n.uid, n.gid, n.size]).toEqual([0o751, S_IFREG, 1234, 5678, 4]);
  });

  test('utimens sets atime and mtime separately, and "now" for both', async () => {
    await out(`touch ${mp}/u && touch -a -d '2001-02-03 04:05:06 UTC' ${mp}/u && touch -m -d '2011-12-13 14:15:16 UTC' ${mp}/u`);
    const atime = Date.UTC(2001, 1, 3, 4, 5, 6) / 1000;
    const mtime = Date.UTC(2011, 11, 13, 14, 15, 16) / 1000;
    expect(await out(`stat -c '%X %Y' ${mp}/u`)).toBe(`${atime} ${mtime}`);
    const before = Date.now();
    await out(`touch ${mp}/u`);
    const [x, y] = (await out(`stat -c '%X %Y' ${mp}/u`)).split(' ').map(Number);
    for (const t of [x, y]) {
      expect(t).toBeGreaterThanOrEqual(Math.floor(before / 1000));
      expect(t).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    }
  });

  test('utimens keeps nanoseconds to the microsecond', async () => {
    await out(`touch -m -d '2020-01-02 03:04:05.123456789 UTC' ${mp}/ns`);
    expect(await out(`stat -c '%.6Y' ${mp}/ns`)).toBe(`${Date.UTC(2020, 0, 2, 3, 4, 5) / 1000}.123456`);
  });

  test('a file created by another user belongs to that user', async () => {
    await out(`mkdir -m 1777 ${mp}/pub`);
    await out(`setpriv --reuid=65534 --regid=65534 --clear-groups touch ${mp}/pub/mine`);
    expect(await out(`stat -c '%u %g' ${mp}/pub/mine`)).toBe('65534 65534');
    expect([fs.at('pub/mine')!.uid, fs.at('pub/mine')!.gid]).toEqual([65534, 65534]);
  });

  test('the kernel enforces modes (default_permissions): another user cannot write a root file', async () => {
    await out(`echo secret > ${mp}/pub/root-owned && chmod 644 ${mp}/pub/root-owned`);
    const r = await sh(`setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo x >> ${mp}/pub/root-owned'`);
    expect(r.stderr).toMatch(/Permission denied/);
    expect(await out(`cat ${mp}/pub/root-owned`)).toBe('secret');
  });

  test('every request carries the calling process id', async () => {
    const pids: number[] = [];
    fs.hook = (op, req, _ino, name) => {
      if (op === 'lookup' && name === 'pid-probe') pids.push(req.pid);
    };
    const child = spawn('stat', [`${mp}/pid-probe`], { stdio: 'ignore' });
    await new Promise((r) => child.once('exit', r));
    expect(pids).toEqual([child.pid]);
  });

  test('a program copied in runs from the mount (mmap and exec)', async () => {
    await out(`mkdir ${mp}/bin && cp /usr/bin/true /usr/bin/ls ${mp}/bin/`);
    expect((await sh(`${mp}/bin/true`)).code).toBe(0);
    expect(await out(`${mp}/bin/ls -d /`)).toBe('/');
    expect(await out(`cmp /usr/bin/ls ${mp}/bin/ls && echo same`)).toBe('same');
  });

  test('mknod makes a FIFO and statfs reports the filesystem', async () => {
    await out(`mkfifo ${mp}/fifo`);
    expect(await out(`stat -c %F ${mp}/fifo`)).toBe('fifo');
    expect(await out(`stat -f -c '%S %b %l' ${mp}`)).toBe('4096 1048576 255');
  });

  test('fsync and flush reach the filesystem', async () => {
    const [f0, s0] = [fs.calls.get('flush') ?? 0, fs.calls.get('fsync') ?? 0];
    await out(`dd if=/dev/zero of=${mp}/synced bs=4k count=1 conv=fsync status=none`);
    expect(fs.calls.get('fsync')).toBe(s0 + 1);
    expect(fs.calls.get('flush')).toBeGreaterThan(f0);
  });

  test('read-only opens and closes of an immutable inode are answered by the binding; reads still reach the filesystem, with fh 0', async () => {
    await out(`printf 'never changes\\n' > ${mp}/frozen`);
    const ino = Number(await out(`stat -c %i ${mp}/frozen`));
    const calls = () => ['open', 'flush', 'release', 'read'].map((op) => fs.calls.get(op) ?? 0);
    s.setImmutable(ino, true);
    await s.invalidateInode(ino); // so that the reads below must come from the filesystem
    const [open0, flush0, release0, read0] = calls();
    const fast0 = s.fastPath;
    expect(await out(`cat ${mp}/frozen; cat ${mp}/frozen; cat ${mp}/frozen`)).toBe('never changes\nnever changes\nnever changes');
    // The kernel sends RELEASE after the process has gone on: wait for the last one.
    for (let i = 0; i < 100 && s.fastPath.releases < fast0.releases + 3; i++) await new Promise((r) => setTimeout(r, 20));
    const [open1, flush1, release1, read1] = calls();
    expect([open1 - open0, flush1 - flush0, release1 - release0]).toEqual([0, 0, 0]);
    expect(read1).toBeGreaterThan(read0);
    const fast1 = s.fastPath;
    expect([fast1.opens - fast0.opens, fast1.flushes - fast0.flushes, fast1.releases - fast0.releases]).toEqual([3, 0, 3]);
    expect(fast1.immutable).toBe(fast0.immutable);
    s.setImmutable(ino, false);
  });

  test('GETATTRs of an immutable inode are answered by the binding once the filesystem has answered one', async () => {
    await out(`printf 'fixed' > ${mp}/still`);
    const ino = Number(await out(`stat -c %i ${mp}/still`));
    s.setImmutable(ino, true);
    const getattrs = () => fs.calls.get('getattr') ?? 0;
    const statNow = async () => {
      await s.invalidateInode(ino, -1); // the kernel forgets the attributes: the next stat asks
      return out(`stat -c '%s %a %Y' ${mp}/still`);
    };
    const first = await statNow();
    const asked = getattrs();
    const fast = s.fastPath.getattrs;
    expect(await statNow()).toBe(first);
    expect(await statNow()).toBe(first);
    expect(getattrs()).toBe(asked);
    expect(s.fastPath.getattrs).toBe(fast + 2);
    s.setImmutable(ino, false);
    expect(await statNow()).toBe(first);
    expect(getattrs()).toBe(asked + 1);
  });

  test('an open for writing of an immutable inode reaches the filesystem, and unmarking hands read-only opens back to it', async () => {
    await out(`printf 'v1' > ${mp}/thawed`);
    const ino = Number(await out(`stat -c %i ${mp}/thawed`));
    s.setImmutable(ino, true);
    const immutable = s.fastPath.immutable;
    const opens = () => fs.calls.get('open') ?? 0;
    const o0 = opens();
    await out(`printf 'v2' >> ${mp}/thawed`);
    expect(opens()).toBe(o0 + 1);
    s.setImmutable(ino, false);
    expect(s.fastPath.immutable).toBe(immutable - 1);
    const fastOpens = s.fastPath.opens;
    expect(await out(`cat ${mp}/thawed`)).toBe('v1v2');
    expect(opens()).toBe(o0 + 2);
    expect(s.fastPath.opens).toBe(fastOpens);
  });

  test('a handler that throws answers EIO, and the mount keeps working', async () => {
    fs.hook = (op, _req, _ino, name) => {
      if (op === 'lookup' && name === 'boom') throw new Error('handler bug');
    };
    const r = await sh(`stat ${mp}/boom`);
    expect(r.stderr).toMatch(/Input\/output error/);
    expect(await out(`cat ${mp}/greeting`)).toBe('hello');
  });

  test('an error with a code answers that errno', async () => {
    fs.hook = (op, _req, _ino, name) => {
      if (op === 'lookup' && name === 'denied') throw Object.assign(new Error('no'), { code: 'EACCES' });
    };
    expect((await sh(`stat ${mp}/denied`)).stderr).toMatch(/Permission denied/);
  });

  test('requests are answered asynchronously: four lookups in one directory are in flight at once', async () => {
    let waiting: (() => void)[] = [];
    let most = 0;
    const release = () => {
      for (const w of waiting) w();
      waiting = [];
    };
    // If the lookups were serialised, let them go after a while so the test fails, not hangs.
    const giveUp = setTimeout(release, 10000);
    fs.hook = async (op, _req, _ino, name) => {
      if (op !== 'lookup' || !name?.startsWith('slow')) return;
      // Each lookup waits until all four have arrived: this only finishes if none blocks another.
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        most = Math.max(most, waiting.length);
        if (waiting.length === 4) release();
      });
    };
    const runs = await Promise.all([1, 2, 3, 4].map((i) => sh(`stat ${mp}/slow${i}`)));
    clearTimeout(giveUp);
    expect(runs.map((r) => r.stderr.includes('No such file'))).toEqual([true, true, true, true]);
    expect(most).toBe(4);
  });

  test('inodes are forgotten: an unlinked file leaves memory once the kernel drops it', async () => {
    await out(`echo bye > ${mp}/gone`);
    const ino = fs.at('gone')!.ino;
    await out(`rm ${mp}/gone`);
    for (let i = 0; i < 100 && fs.nodes.has(ino); i++) await new Promise((r) => setTimeout(r, 20));
    expect(fs.nodes.has(ino)).toBe(false);
  });

  test('write data arrives as a Buffer that is detached once answered', async () => {
    let kept: Buffer | undefined;
    let lengthInHandler = 0;
    const orig = fs.write.bind(fs);
    fs.write = async (req, ino, fh, offset, data) => {
      if (!kept) {
        kept = data;
        lengthInHandler = data.length;
      }
      return orig(req, ino, fh, offset, data);
    };
    try {
      await out(`dd if=/dev/zero of=${mp}/detach bs=128k count=1 status=none`);
    } finally {
      fs.write = orig;
    }
    expect(lengthInHandler).toBe(128 * 1024);
    expect(kept!.length).toBe(0);
  });
});

describe('passthrough to a backing file (kernel 6.9+)', () => {
  let fs: MemFs;
  let s: LowLevelSession;
  let mp: string;
  let dir: string;
  beforeAll(async () => {
    ({ fs, s, mp } = await mountMem({ passthrough: true }));
    dir = mkdtempSync(path.join(tmpdir(), 'lowlevel-backing-'));
  });
  afterAll(async () => {
    if (s) await unmountMem({ s, mp });
    rmSync(dir, { recursive: true, force: true });
  });

  /** An immutable file of the mount holding `inMount`, and a file on ext4 holding `backing`. */
  async function frozenWithBacking(name: string, inMount: string, backing: string): Promise<{ ino: number; fd: number }> {
    await out(`printf '${inMount}' > ${mp}/${name}`);
    const ino = Number(await out(`stat -c %i ${mp}/${name}`));
    s.setImmutable(ino, true);
    writeFileSync(path.join(dir, name), backing);
    return { ino, fd: openSync(path.join(dir, name), 'r') };
  }

  test('the kernel grants it when asked, and only then', async () => {
    expect(s.fastPath.passthrough).toBe(true);
    const plain = await mountMem();
    try {
      expect(plain.s.fastPath.passthrough).toBe(false);
      const ino = Number(await out(`printf x > ${plain.mp}/f && stat -c %i ${plain.mp}/f`));
      plain.s.setImmutable(ino, true);
      const fd = openSync(__filename, 'r');
      expect(plain.s.setBacking(ino, fd)).toBe(-95); // ENOTSUP
      closeSync(fd);
    } finally {
      await unmountMem(plain);
    }
  });

  test('opens of a backed inode read the backing file, with no request for open or read', async () => {
    // Different bytes on each side show which one a read returns (the caller vouches for them).
    const { ino, fd } = await frozenWithBacking('backed', 'bytes in the mount', 'bytes on the disk');
    const id = s.setBacking(ino, fd);
    closeSync(fd); // the kernel keeps its own reference
    expect(id).toBeGreaterThan(0);
    const reads = fs.calls.get('read') ?? 0;
    const opens = fs.calls.get('open') ?? 0;
    const through = s.fastPath.passthroughOpens;
    expect(await out(`cat ${mp}/backed; cat ${mp}/backed`)).toBe('bytes on the diskbytes on the disk');
    expect([fs.calls.get('read') ?? 0, fs.calls.get('open') ?? 0]).toEqual([reads, opens]);
    expect(s.fastPath.passthroughOpens).toBe(through + 2);
  });

  test('a mapping of a backed inode is the backing file: a program copied in runs from it', async () => {
    await out(`cp /usr/bin/echo ${mp}/echo && chmod 755 ${mp}/echo`);
    const ino = Number(await out(`stat -c %i ${mp}/echo`));
    s.setImmutable(ino, true);
    const fd = openSync('/usr/bin/echo', 'r');
    expect(s.setBacking(ino, fd)).toBeGreaterThan(0);
    closeSync(fd);
    const reads = fs.calls.get('read') ?? 0;
    expect(await out(`/lib64/ld-linux-x86-64.so.2 ${mp}/echo passed through`)).toBe('passed through');
    expect(fs.calls.get('read') ?? 0).toBe(reads);
  });

  test('setBacking refuses an inode that is not immutable, and a second backing', async () => {
    const { ino, fd } = await frozenWithBacking('twice', 'same', 'same');
    expect(s.setBacking(ino, fd)).toBeGreaterThan(0);
    expect(s.setBacking(ino, fd)).toBe(-17); // EEXIST
    s.setImmutable(ino, false);
    expect(s.setBacking(ino, fd)).toBe(-2); // ENOENT
    closeSync(fd);
  });

  test('opens made before the backing keep the kernel cache until all are closed; later opens pass through', async () => {
    const { ino, fd } = await frozenWithBacking('late', 'cached', 'backed');
    // A reader holding the file open, cached: the kernel forbids mixing the two kinds of open.
    const opensBefore = s.fastPath.opens;
    const holder = spawn('bash', ['-c', `exec 3< ${mp}/late; read -r _; cat <&3`], { stdio: ['pipe', 'pipe', 'ignore'] });
    let held = '';
    holder.stdout.on('data', (d) => (held += d));
    for (let i = 0; i < 250 && s.fastPath.opens === opensBefore; i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.fastPath.opens).toBe(opensBefore + 1);
    expect(s.setBacking(ino, fd)).toBeGreaterThan(0);
    closeSync(fd);
    expect(await out(`cat ${mp}/late`)).toBe('cached');
    holder.stdin.end('\n');
    await new Promise((r) => holder.once('exit', r));
    expect(held).toBe('cached');
    for (let i = 0; i < 100 && s.fastPath.releases < s.fastPath.opens; i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.fastPath.releases).toBe(s.fastPath.opens);
    expect(await out(`cat ${mp}/late`)).toBe('backed');
  });
});

describe('cache invalidation with long timeouts', () => {
  let fs: MemFs;
  let s: LowLevelSession;
  let mp: string;
  beforeAll(async () => {
    ({ fs, s, mp } = await mountMem({ attrTimeout: 3600, entryTimeout: 3600, negativeTimeout: 3600 }));
  });
  afterAll(async () => {
    if (s) await unmountMem({ s, mp });
  });

  test('invalidateInode makes a change made behind the kernel visible', async () => {
    await out(`touch ${mp}/f && chmod 600 ${mp}/f`);
    expect(await out(`stat -c %a ${mp}/f`)).toBe('600');
    fs.at('f')!.mode = S_IFREG | 0o644; // changed by "another path": the kernel does not know
    expect(await out(`stat -c %a ${mp}/f`)).toBe('600');
    await s.invalidateInode(fs.at('f')!.ino, -1);
    expect(await out(`stat -c %a ${mp}/f`)).toBe('644');
  });

  test('invalidateInode drops cached file data', async () => {
    await out(`printf aaaa > ${mp}/data && cat ${mp}/data`);
    const n = fs.at('data')!;
    n.data.write('bbbb');
    await s.invalidateInode(n.ino);
    expect(await out(`cat ${mp}/data`)).toBe('bbbb');
  });

  test('a negative entry is cached until invalidateEntry', async () => {
    expect((await sh(`stat ${mp}/late`)).code).not.toBe(0);
    const lookups = fs.calls.get('lookup') ?? 0;
    expect((await sh(`stat ${mp}/late`)).code).not.toBe(0);
    expect(fs.calls.get('lookup')).toBe(lookups); // answered from the kernel's cache
    const root = fs.node(ROOT_INO);
    const late = fs.at('f')!;
    root.entries!.set('late', late.ino); // a name added behind the kernel's back
    late.nlink++;
    expect((await sh(`stat ${mp}/late`)).code).not.toBe(0);
    await s.invalidateEntry(ROOT_INO, 'late');
    expect(await out(`stat -c %i ${mp}/late`)).toBe(String(late.ino));
  });
});

describe.each(MODES)('mount lifecycle, %s', (_mode, modeOptions) => {
  test('unmount removes the mount and the directory is plain again', async () => {
    const m = await mountMem(modeOptions);
    await out(`echo x > ${m.mp}/f`);
    expect(mounted(m.mp)).toBe(true);
    await m.s.unmount();
    expect(mounted(m.mp)).toBe(false);
    expect(await out(`ls -A ${m.mp}`)).toBe('');
    await expect(m.s.closed).resolves.toBeUndefined();
    rmdirSync(m.mp);
  });

  test('an external umount ends the session and settles `closed`', async () => {
    const m = await mountMem(modeOptions);
    await out(`umount ${m.mp}`);
    await m.s.closed;
    expect(mounted(m.mp)).toBe(false);
    await m.s.unmount(); // nothing left to do, and no error
    rmdirSync(m.mp);
  });

  test('a request the filesystem never answers does not keep unmount waiting: the caller gets EIO', async () => {
    const m = await mountMem({ ...modeOptions, unmountTimeoutMs: 300 });
    let arrived!: () => void;
    const seen = new Promise<void>((r) => (arrived = r));
    m.fs.hook = (op, _req, _ino, name) => {
      if (op === 'lookup' && name === 'hang') {
        arrived();
        return new Promise<void>(() => undefined);
      }
    };
    const stuck = sh(`stat ${m.mp}/hang`);
    await seen;
    expect(m.s.inFlight).toBe(1);
    await m.s.unmount();
    expect((await stuck).stderr).toMatch(/Input\/output error/);
    expect(mounted(m.mp)).toBe(false);
    rmdirSync(m.mp);
  });

  test('mounting on a missing directory fails with a clear error', async () => {
    await expect(mountLowLevel('/nonexistent/lowlevel-mp', new MemFs(), modeOptions)).rejects.toThrow(/cannot mount \/nonexistent\/lowlevel-mp: .*(No such file|not found|bad mount point)/i);
  });

  test('an unknown mount option is refused before mounting', async () => {
    const mp = mkdtempSync(path.join(tmpdir(), 'lowlevel-'));
    try {
      await expect(mountLowLevel(mp, new MemFs(), { ...modeOptions, options: ['no_such_option'] })).rejects.toThrow(/invalid FUSE options: .*no_such_option/);
      expect(mounted(mp)).toBe(false);
    } finally {
      rmdirSync(mp);
    }
  });

  test.each(['process.exit()', 'an uncaught exception'])('a process that ends with %s while mounted leaves no mount behind', async (how) => {
    const mp = mkdtempSync(path.join(tmpdir(), 'lowlevel-'));
    const script = path.join(mp + '-child.js');
    // The raw addon in a child process: this process must not be the one that exits.
    writeFileSync(
      script,
      `const a = require(${JSON.stringify(ADDON)});
       let h;
       [h] = a.mount(${JSON.stringify(mp)}, [], { mainThreadLoop: ${!modeOptions.sessionThread} }, 0, (op, id) => {
         if (a.opNames[op] !== 'init') return id && a.replyErr(h, id, 38);
         console.log('mounted');
         ${how === 'process.exit()' ? 'process.exit(0);' : "setImmediate(() => { throw new Error('boom'); });"}
       }, new Float64Array(a.scratchLength));`,
    );
    try {
      const r = await sh(`node ${script}`);
      expect(r.stdout).toBe('mounted\n');
      expect(mounted(mp)).toBe(false);
    } finally {
      rmSync(script);
      rmdirSync(mp);
    }
  });
});
