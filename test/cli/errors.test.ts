// Bad input gets one clear line on stderr and a non-zero exit: no stack trace, no hang.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, sh, slinkyfs } from '../helpers/cli';
import { startMount } from '../helpers/mount';

const oneLine = (s: string) => s.trim().split('\n').length === 1 && !/\n\s+at /.test(s);

test('--help lists the subcommands', () => {
  const r = slinkyfs(['--help']);
  expect(r.status).toBe(0);
  for (const c of ['mount', 'umount', 'stats', 'verify', 'gc']) expect(r.stdout).toMatch(new RegExp(`slinkyfs ${c}`));
});

test('--version prints the package version', () => {
  const r = slinkyfs(['--version']);
  expect(r.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8')).version);
});

test('an unknown command is one line and exit 2', () => {
  const r = slinkyfs(['frobnicate']);
  expect(r.status).toBe(2);
  expect(oneLine(r.stderr)).toBe(true);
});

test('mount with a negative --spin-us is one line and exit 2', () => {
  const r = slinkyfs(['mount', os.tmpdir(), '--spin-us', '-1']);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: --spin-us wants a whole number of microseconds from 0 to 100000, not -1');
});

test('mount with a negative --compress-backlog-mib is one line and exit 2', () => {
  const r = slinkyfs(['mount', os.tmpdir(), '--compress-backlog-mib', '-1']);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: --compress-backlog-mib wants a whole number of MiB from 0 to 1048576, not -1');
});

test('mount with a fractional --flush-delay-ms is one line and exit 2', () => {
  const r = slinkyfs(['mount', os.tmpdir(), '--flush-delay-ms', '2.5']);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: --flush-delay-ms wants a whole number of milliseconds from 0 to 60000, not 2.5');
});


test('a name that is not UTF-8 is refused in one line naming its bytes, not acted on under another name', () => {
  // Node would hand the program "a\uFFFDb", and slink would write a file of that name.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-argv-'));
  try {
    const r = sh(`cd '${dir}' && '${BIN}' slink /bin/true -o $'a\\xffb'`);
    expect([r.status, r.stdout, r.stderr]).toEqual([
      2,
      '',
      'slinkyfs: argument 4 is not valid UTF-8 ("a\\xffb"): slinkyfs takes names in UTF-8; rename it, or reach it through a symbolic link whose name is\n',
    ]);
    expect(fs.readdirSync(dir)).toEqual([]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an option that takes a value, given none, is bad usage in one line, not its default', () => {
  // Before, `serve --listen` served on the default address and `mount --peer-timeout` waited 15 s.
  const cases: [string[], string][] = [
    [['serve', '--store', os.tmpdir(), '--listen'], '--listen'],
    [['mount', os.tmpdir(), '--peer-timeout'], '--peer-timeout'],
    [['stats', '--store'], '--store'],
    [['slink', '/bin/true', '-o'], '-o'],
  ];
  for (const [args, option] of cases) {
    const r = slinkyfs(args, { timeout: 20000 });
    expect([args, r.status, r.stdout, r.stderr]).toEqual([args, 2, '', `slinkyfs: ${option} wants a value\n`]);
  }
});
test('mount on a missing mountpoint is one line and non-zero', () => {
  const r = slinkyfs(['mount', '/nonexistent/slinky-mnt', '--store', os.tmpdir() + '/x-never']);
  expect(r.status).not.toBe(0);
  expect(r.stderr.trim()).toBe('slinkyfs: mountpoint /nonexistent/slinky-mnt does not exist');
});

test('stats of a directory that is no store is one line and non-zero', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-nostore-'));
  const r = slinkyfs(['stats', '--store', dir]);
  fs.rmSync(dir, { recursive: true });
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: no slinkyfs store at ${dir}`);
});

test('stats of a store another user cannot enter says so, not "no store", exit 3', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-private-')); // mode 0700
  try {
    fs.mkdirSync(path.join(dir, 'db'));
    fs.writeFileSync(path.join(dir, 'db', 'data.mdb'), '');
    const r = sh(`setpriv --reuid=65534 --regid=65534 --clear-groups -- '${process.execPath}' '${BIN}' stats --store '${dir}'`);
    expect(r.status).toBe(3);
    expect(r.stderr).toBe(`slinkyfs: cannot open store ${dir}: EACCES: permission denied, stat '${dir}/db/data.mdb'\n`);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('a store held by a running daemon cannot be mounted twice or gc-ed', () => {
  const m = startMount();
  try {
    const other = path.join(m.dir, 'other');
    fs.mkdirSync(other);
    const r = slinkyfs(['mount', other, '--store', m.store]);
    expect(r.status).toBe(3);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/in use by slinkyfs daemon pid \d+/);
    const g = slinkyfs(['gc', '--store', m.store]);
    expect(g.status).toBe(3);
    expect(oneLine(g.stderr)).toBe(true);
  } finally {
    m.cleanup();
  }
});

test('mounting over a live slinkyfs mount is refused', () => {
  const m = startMount();
  try {
    const r = slinkyfs(['mount', m.mountpoint, '--store', path.join(m.dir, 'store2')]);
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toMatch(/already mounted by a running slinkyfs daemon/);
  } finally {
    m.cleanup();
  }
});

test('umount of something that is not a slinkyfs mount is one line and non-zero', () => {
  const r = slinkyfs(['umount', os.tmpdir()]);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe(`slinkyfs: ${os.tmpdir()} is not a slinkyfs mount`);
});

describe('a mountpoint named through a symbolic link', () => {
  let m: ReturnType<typeof startMount>;
  let link: string;
  beforeEach(() => {
    m = startMount();
    link = path.join(m.dir, 'link');
    fs.symlinkSync('mnt', link);
  });
  afterEach(() => m.cleanup());
  const mounted = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${m.mountpoint} `);

  test('stats and umount find the mount', () => {
    fs.writeFileSync(path.join(m.mountpoint, 'f'), 'abc');
    const s = slinkyfs(['stats', link, '--json']);
    expect(s.status).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ files: 1, logicalBytes: 3 });
    const u = slinkyfs(['umount', link]);
    expect([u.status, u.stderr]).toEqual([0, '']);
    expect(mounted()).toBe(false);
  });

  test('stats of a mount whose daemon died, named or through the link, with any option: one line saying so, exit 3', () => {
    m.kill9();
    const line =
      `slinkyfs: the daemon of the slinkyfs mount at ${m.mountpoint} is gone (killed or crashed): clear the mount with ` +
      `\`slinkyfs umount ${m.mountpoint}\`, then mount it again (\`slinkyfs stats --store ${m.store}\` reads its store meanwhile)\n`;
    for (const name of [link, m.mountpoint]) {
      for (const option of [[], ['--json'], ['--by-dir'], ['--pages'], ['--net']]) {
        const s = slinkyfs(['stats', name, ...option], { timeout: 20000 });
        expect([name, option, s.status, s.stdout, s.stderr]).toEqual([name, option, 3, '', line]);
      }
    }
  });

  test('verify of a mount whose daemon died checks its store and says, in one line, that the daemon is gone', () => {
    fs.writeFileSync(path.join(m.mountpoint, 'f'), 'abc');
    m.kill9();
    const note =
      `slinkyfs: the daemon of the slinkyfs mount at ${m.mountpoint} is gone (killed or crashed): checking its store ${m.store}; ` +
      `then clear the mount with \`slinkyfs umount ${m.mountpoint}\` and mount it again\n`;
    for (const name of [link, m.mountpoint]) {
      const v = slinkyfs(['verify', name], { timeout: 20000 });
      expect([name, v.status, v.stdout, v.stderr]).toEqual([name, 0, '1 files, 1 chunks checked: no damage\n', note]);
    }
  });

  test('umount clears a mount whose daemon died, without stat on it hanging or failing', () => {
    m.kill9();
    const u = slinkyfs(['umount', link], { timeout: 20000 });
    expect([u.status, u.stderr]).toEqual([0, '']);
    expect(mounted()).toBe(false);
  });
});

test('stats prints the documented JSON keys', () => {
  const m = startMount();
  try {
    fs.writeFileSync(path.join(m.mountpoint, 'f'), 'abc');
    const s = m.stats();
    expect(s).toMatchObject({ files: 1, logicalBytes: 3, uniqueBytes: 3, chunks: 1 });
    expect(typeof s.storedBytes).toBe('number');
  } finally {
    m.cleanup();
  }
});

describe('output that cannot be written', () => {
  let m: ReturnType<typeof startMount>;
  beforeAll(() => {
    m = startMount();
    m.unmount();
  });
  afterAll(() => m?.cleanup());

  test('a reader that goes away ends the output quietly, with the status of a broken pipe', () => {
    // The reader closes the pipe before slinkyfs writes: its first write fails with EPIPE.
    const r = sh(`'${BIN}' stats --store '${m.store}' 2>'${m.dir}/err' | { exec 0<&-; sleep 1; }; echo \${PIPESTATUS[0]}`);
    expect(r.stdout.trim()).toBe('141');
    expect(fs.readFileSync(path.join(m.dir, 'err'), 'utf8')).toBe('');
  });

  test('help that cannot be written is one line and exit 3, not lost with exit 0', () => {
    const r = sh(`'${BIN}' --help > /dev/full`);
    expect(r.status).toBe(3);
    expect(r.stderr).toBe('slinkyfs: cannot write the output: ENOSPC: no space left on device, write\n');
  });

  test('a full disk under the output is one line and exit 3', () => {
    const r = sh(`'${BIN}' stats --store '${m.store}' > /dev/full`);
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toBe('slinkyfs: cannot write the output: ENOSPC: no space left on device, write');
  });
});

describe('a damaged database file is reported, not a crash', () => {
  let dir: string;
  let goodDb: Buffer;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-damaged-'));
    const m = startMount([], path.join(dir, 'made'));
    try {
      fs.copyFileSync('/usr/bin/ls', path.join(m.mountpoint, 'ls'));
      m.unmount();
      goodDb = fs.readFileSync(path.join(m.store, 'db', 'data.mdb'));
    } finally {
      m.cleanup();
    }
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const storeWith = (name: string, data: Buffer) => {
    const store = path.join(dir, name);
    fs.mkdirSync(path.join(store, 'db'), { recursive: true });
    fs.writeFileSync(path.join(store, 'db', 'data.mdb'), data);
    return store;
  };

  test('verify of a copy cut short after its meta pages: one line, exit 1', () => {
    const store = storeWith('short', goodDb.subarray(0, 8192));
    const r = slinkyfs(['verify', '--store', store]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(
      `slinkyfs: cannot open store ${store}: the store's database file ${store}/db/data.mdb is damaged (8192 bytes where its last page ends at ${goodDb.length})`,
    );
  });

  test('stats of a file of garbage: one line, exit 1', () => {
    const store = storeWith('garbage', Buffer.alloc(65536, 0x5a));
    const r = slinkyfs(['stats', '--store', store]);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`slinkyfs: cannot open store ${store}: the store's database file ${store}/db/data.mdb is damaged (not an LMDB file)`);
  });

  /**
   * Where the first node of a named database's first leaf page sits in `db`, found as LMDB finds
   * it: newest meta page, the root of the main database, the named database's record, its root,
   * first child down to the leaf (lmdb-js 3's layout, as src/store/dataTree.ts reads it).
   */
  function firstLeafNode(db: Buffer, name: string): { page: number; node: number } {
    const psize = db.readUInt32LE(48);
    const meta = db.readBigUInt64LE(psize + 152) > db.readBigUInt64LE(152) ? psize : 0;
    const node = (page: number, i: number) => page * psize + 24 + db.readUInt16LE(page * psize + 24 + 2 * i);
    const leaf = (root: number) => {
      let page = root;
      while (db.readUInt16LE(page * psize + 18) & 1) page = db.readUInt32LE(node(page, 0)); // mn_lo, mn_hi: the child
      return page;
    };
    const main = leaf(Number(db.readBigUInt64LE(meta + 136)));
    for (let i = 0; i < db.readUInt16LE(main * psize + 20) >> 1; i++) {
      const n = node(main, i);
      if (db.toString('latin1', n + 8, n + 8 + db.readUInt16LE(n + 6)) !== `${name}\0`) continue;
      const page = leaf(Number(db.readBigUInt64LE(n + 8 + db.readUInt16LE(n + 6) + 40)));
      return { page, node: node(page, 0) };
    }
    throw new Error(`no database ${name}`);
  }

  test('verify of a node flagged as having duplicates (LMDB: "Invalid dupdata flag"): one line naming the page, exit 1', () => {
    const db = Buffer.from(goodDb);
    const { page, node } = firstLeafNode(db, 'extents');
    db[node + 4] |= 0x04; // F_DUPDATA, in a database that has no duplicates
    const store = storeWith('dupdata', db);
    const r = slinkyfs(['verify', '--store', store]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `slinkyfs: cannot open store ${store}: the store's database file ${store}/db/data.mdb is damaged (database "extents", page ${page}, entry 0: node flags 0x4)\n`,
    );
  });

  /** The first chunk's value: its leaf node and the first page of its overflow run (chunks are
   *  larger than a page, so LMDB keeps each on pages of its own). */
  function firstOverflow(db: Buffer): { page: number; entry: string; run: number; size: number } {
    const psize = db.readUInt32LE(48);
    const { page, node } = firstLeafNode(db, 'chunks');
    expect(db.readUInt16LE(node + 4) & 1).toBe(1); // F_BIGDATA
    const run = Number(db.readBigUInt64LE(node + 8 + db.readUInt16LE(node + 6)));
    expect(db.readUInt16LE(run * psize + 18) & 0x7f).toBe(0x04); // P_OVERFLOW
    const size = db.readUInt16LE(node) + (db.readUInt16LE(node + 2) << 16);
    return { page, entry: `database "chunks", page ${page}, entry 0`, run, size };
  }

  test('verify of a value whose overflow page is not one: one line naming the entry and the page, exit 1', () => {
    const db = Buffer.from(goodDb);
    const { entry, run } = firstOverflow(db);
    db.writeUInt16LE(0x02, run * db.readUInt32LE(48) + 18); // P_LEAF
    const store = storeWith('overflow-kind', db);
    const r = slinkyfs(['verify', '--store', store]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `slinkyfs: cannot open store ${store}: the store's database file ${store}/db/data.mdb is damaged (${entry}: its page ${run} has flags 0x2 where an overflow page belongs)\n`,
    );
  });

  test('verify of a value whose overflow run is too short for it: one line naming the entry and the page, exit 1', () => {
    const db = Buffer.from(goodDb);
    const { entry, run, size } = firstOverflow(db);
    db.writeUInt32LE(0, run * db.readUInt32LE(48) + 20); // mp_pages
    const store = storeWith('overflow-pages', db);
    const r = slinkyfs(['verify', '--store', store]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `slinkyfs: cannot open store ${store}: the store's database file ${store}/db/data.mdb is damaged (${entry}: its overflow at page ${run} spans 0 pages, too few for ${size} bytes)\n`,
    );
  });

  /** A copy whose first inode node claims 128 MiB more data than it has (LMDB would crash). */
  const inodeOverrun = (name: string) => {
    const db = Buffer.from(goodDb);
    const { page, node } = firstLeafNode(db, 'inodes');
    db.writeUInt16LE(0x800, node + 2); // mn_hi
    const size = 0x800 * 65536 + db.readUInt16LE(node);
    const store = storeWith(name, db);
    return { store, damage: `the store's database file ${store}/db/data.mdb is damaged (database "inodes", page ${page}, entry 0: ${size} bytes of data run past the end of the page)` };
  };

  test('verify of a node whose data size runs far past its page (a crash in LMDB): one line, exit 1', () => {
    const { store, damage } = inodeOverrun('datasize');
    const r = slinkyfs(['verify', '--store', store]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`slinkyfs: cannot open store ${store}: ${damage}\n`);
  });

  test('verify of a chunk reference under a key that is no digest: one line saying what it was reading, exit 1', () => {
    const db = Buffer.from(goodDb);
    const { node } = firstLeafNode(db, 'chunkrefs');
    db[node + 8] ^= 0x80; // the key's algorithm byte
    const store = storeWith('badkey', db);
    const r = slinkyfs(['verify', '--store', store]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`slinkyfs: store ${store} is damaged: reading the chunk references failed: malformed digest\n`);
  });

  test('stats of a node whose data size runs far past its page (a crash in LMDB): one line naming the page, exit 1, with any option', () => {
    const { store, damage } = inodeOverrun('stats-datasize');
    for (const option of [[], ['--json'], ['--by-dir'], ['--pages'], ['--net']]) {
      const r = slinkyfs(['stats', '--store', store, ...option]);
      expect([option, r.status, r.stdout, r.stderr]).toEqual([option, 1, '', `slinkyfs: cannot open store ${store}: ${damage}\n`]);
    }
  });

  test('serve of a store with a damaged page: one line naming the page, exit 1, nothing served', () => {
    const { store, damage } = inodeOverrun('serve-datasize');
    const r = slinkyfs(['serve', '--store', store, '--listen', '127.0.0.1:0']);
    expect([r.status, r.stdout, r.stderr]).toEqual([1, '', `slinkyfs: cannot open store ${store}: ${damage}\n`]);
  });

  test('mount of a store with a damaged page: one line naming the page, exit 1, no mount left', () => {
    const { store, damage } = inodeOverrun('mount-datasize');
    const mnt = path.join(dir, 'mnt-datasize');
    fs.mkdirSync(mnt);
    const r = slinkyfs(['mount', mnt, '--store', store]);
    try {
      expect([r.status, r.stdout, r.stderr]).toEqual([1, '', `slinkyfs: ${damage}\n`]);
      expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(` ${mnt} `);
    } finally {
      if (fs.readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)) slinkyfs(['umount', mnt]);
    }
  });

  test('gc of a store with a damaged page: refused in one line, exit 1, the file left as it was', () => {
    const db = Buffer.from(goodDb);
    const { page, node } = firstLeafNode(db, 'extents');
    db[node + 4] |= 0x04;
    const store = storeWith('gc-dupdata', db);
    const r = slinkyfs(['gc', '--store', store]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`slinkyfs: the store's database file ${store}/db/data.mdb is damaged (database "extents", page ${page}, entry 0: node flags 0x4)\n`);
    expect(fs.readFileSync(path.join(store, 'db', 'data.mdb')).equals(db)).toBe(true);
  });

  test('gc of a short file read-write: one line, exit 1, the file left as it was', () => {
    const store = storeWith('gc-short', goodDb.subarray(0, 12288));
    const r = slinkyfs(['gc', '--store', store]);
    expect(r.status).toBe(1);
    expect(oneLine(r.stderr)).toBe(true);
    expect(fs.statSync(path.join(store, 'db', 'data.mdb')).size).toBe(12288);
  });
});

test('an empty --store is refused rather than meaning the default store', () => {
  const r = slinkyfs(['gc', '--store', '']);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: --store needs a directory');
});

test('an option given twice takes the last value', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-twice-'));
  try {
    const r = slinkyfs(['slink', '/usr/bin/true', '-o', path.join(dir, 'a'), '-o', path.join(dir, 'b')]);
    expect(r.status).toBe(0);
    expect(fs.readdirSync(dir)).toEqual(['b']);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('a directory that cannot be made under /proc is an error, not a hang', () => {
  const r = slinkyfs(['seed', os.tmpdir(), '--store', '/proc/slinkyfs-nothing/store'], { timeout: 20000 });
  expect(r.status).toBe(3);
  expect(r.stderr.trim()).toBe("slinkyfs: ENOENT: no such file or directory, mkdir '/proc/slinkyfs-nothing'");
});

describe('slink -o replaces regular files only', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-out-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('an empty -o is bad usage, and writes nothing', () => {
    const r = sh(`cd '${dir}' && '${BIN}' slink /usr/bin/true -o ''`);
    expect([r.status, r.stderr]).toEqual([2, 'slinkyfs: -o needs a file name\n']);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('a directory as the output is named as given', () => {
    const r = slinkyfs(['slink', '/usr/bin/true', '-o', dir]);
    expect([r.status, r.stderr]).toEqual([2, `slinkyfs: ${dir} is a directory (-o names the file to write)\n`]);
  });

  test('an output in a missing directory is named as given, not by its temporary name', () => {
    const out = path.join(dir, 'missing', 'true');
    const r = slinkyfs(['slink', '/usr/bin/true', '-o', out]);
    expect([r.status, r.stderr]).toEqual([2, `slinkyfs: cannot slink /usr/bin/true: ${out}: no such file or directory\n`]);
  });

  test('a FIFO as the output is refused and stays a FIFO', () => {
    const fifo = path.join(dir, 'fifo');
    sh(`mkfifo '${fifo}'`);
    const r = slinkyfs(['slink', '/usr/bin/true', '-o', fifo]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`slinkyfs: ${fifo} exists and is not a regular file`);
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
  });

  test('through a symbolic link the target is written and the link stays; digest keeps it too', () => {
    const target = path.join(dir, 'target');
    const link = path.join(dir, 'link');
    fs.writeFileSync(target, 'old');
    fs.symlinkSync('target', link);
    expect(slinkyfs(['slink', '/usr/bin/true', '-o', link]).status).toBe(0);
    expect(slinkyfs(['digest', link]).status).toBe(0);
    expect(fs.readlinkSync(link)).toBe('target');
    expect(slinkyfs(['digest', '--verify', target]).status).toBe(0);
    expect(sh(`'${link}'; echo $?`).stdout.trim()).toBe('0');
  });
});

test('mount -f with a log file it cannot open: one line, exit 3', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-log-'));
  try {
    fs.mkdirSync(path.join(dir, 'mnt'));
    fs.mkdirSync(path.join(dir, 'store', 'slinkyfs.log'), { recursive: true });
    const r = slinkyfs(['mount', path.join(dir, 'mnt'), '-f', '--store', path.join(dir, 'store')], { timeout: 20000 });
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toBe(`slinkyfs: cannot open the log file: EISDIR: illegal operation on a directory, open '${dir}/store/slinkyfs.log'`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a peer address without a port is refused', () => {
  const r = slinkyfs(['get', '127.0.0.1', '/bin/ls', '-o', path.join(os.tmpdir(), 'slinkyfs-never')]);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: peer address 127.0.0.1 needs a port');
});

// Each found by the CLI before it makes the store directory (the daemon checks again).
test.each<[string, (dir: string) => string[], (dir: string) => string]>([
  ['a malformed --peer', (dir) => ['mount', dir, '--store', path.join(dir, 'store'), '--peer', 'ftp://10.0.0.5:7070'], () => 'unsupported peer scheme ftp: (only http)'],
  ['a mountpoint that is a file', (dir) => ['mount', path.join(dir, 'file'), '--store', path.join(dir, 'store')], (dir) => `mountpoint ${path.join(dir, 'file')} is not a directory`],
  ['a comma in the store path', (dir) => ['mount', dir, '--store', path.join(dir, 'store,2')], (dir) => `store path must not contain a comma: ${path.join(dir, 'store,2')}`],
])('mount with %s is one line and exit 2, and makes no store', (_what, args, message) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-mountarg-'));
  try {
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    const r = slinkyfs(args(dir));
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`slinkyfs: ${message(dir)}`);
    expect(fs.readdirSync(dir)).toEqual(['file']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('get --timeout beyond a day is one line and exit 2, before any connection', () => {
  const r = slinkyfs(['get', '127.0.0.1:1', '/bin/ls', '-o', path.join(os.tmpdir(), 'slinkyfs-never'), '--timeout', '1e308']);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: --timeout wants seconds above 0 and at most 86400 (a day), not 1e+308');
});

test('get --min-rate 0 is one line and exit 2, before any connection', () => {
  const r = slinkyfs(['get', '127.0.0.1:1', '/bin/ls', '-o', path.join(os.tmpdir(), 'slinkyfs-never'), '--min-rate', '0']);
  expect(r.status).toBe(2);
  expect(r.stderr.trim()).toBe('slinkyfs: --min-rate wants a rate of at least 1 byte/s (e.g. 64K), not 0');
});

describe('mount options are checked before the daemon starts', () => {
  let dir: string;
  let mnt: string;
  let store: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-opts-'));
    mnt = path.join(dir, 'mnt');
    store = path.join(dir, 'store');
    fs.mkdirSync(mnt);
  });
  afterEach(() => {
    // Should a bad option be let through, the mount it made goes too.
    if (fs.readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)) slinkyfs(['umount', mnt]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('--max-size 0 is refused: a limit must leave room for writes, and no limit is leaving it out', () => {
    const r = slinkyfs(['mount', mnt, '--store', store, '--max-size', '0']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('slinkyfs: --max-size wants a size of at least 1M (e.g. 10G), not 0');
    expect(fs.existsSync(store)).toBe(false);
  });

  test('--max-size that is no size is a usage error (2), not a daemon that failed (3)', () => {
    const r = slinkyfs(['mount', mnt, '--store', store, '--max-size', 'abc']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('slinkyfs: --max-size wants a size of at least 1M (e.g. 10G), not abc');
  });

  test('an empty --max-size is refused rather than ignored', () => {
    const r = slinkyfs(['mount', mnt, '--store', store, '--max-size', '']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("slinkyfs: --max-size wants a size of at least 1M (e.g. 10G), not ''");
  });

  test('a bad --serve address is reported under --serve', () => {
    const r = slinkyfs(['mount', mnt, '--store', store, '--serve', 'bad']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('slinkyfs: --serve bad: use HOST:PORT');
  });
});
