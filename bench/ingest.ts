// Ingest, read and store-size benchmark of a slinkyfs mount against real peers, side by side in
// one run on the same inputs:
//   - bindfs -o big_writes over an ext4 directory (a C FUSE passthrough: the FUSE baseline;
//     without big_writes it gets 4 KiB writes and is no fair baseline),
//   - casync make of the same tree into a chunk store (a content-defined chunk store).
// Inputs: this machine's /usr/bin (cp -a: files and symlinks) and one large file made of real
// shared libraries (default 1 GiB). Prints MB/s, sizes, what the disk wrote, and ratios;
// asserts nothing.
//
//   make build && node dist/bench/ingest.js [--big-mib 1024] [--skip-casync] [--rounds 3]
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machine } from './slinkedMount';
import { readLock } from '../src/store/lock';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'slinkyfs');
const args = process.argv.slice(2);
const bigMiB = Number(args[args.indexOf('--big-mib') + 1]) || 1024;
const skipCasync = args.includes('--skip-casync');
const rounds = Number(args[args.indexOf('--rounds') + 1]) || 3;
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: node dist/bench/ingest.js [--big-mib 1024] [--skip-casync] [--rounds 3]');
  process.exit(0);
}

function sh(cmd: string): void {
  const r = spawnSync('bash', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}
function timed(cmd: string): number {
  const t0 = process.hrtime.bigint();
  sh(cmd);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
function dropCaches(): void {
  sh('sync; echo 3 > /proc/sys/vm/drop_caches');
}
function duBytes(p: string): number {
  return Number(execFileSync('du', ['-sb', p], { encoding: 'utf8' }).split('\t')[0]);
}
function treeBytes(p: string): number {
  return Number(execFileSync('bash', ['-c', `find '${p}' -type f -printf '%s\\n' | awk '{s+=$1} END {print s}'`], { encoding: 'utf8' }));
}
const mb = (bytes: number) => bytes / 1e6;

/**
 * Bytes the block device under `p` has written so far (its stat file's sectors-written field,
 * always in 512-byte units). The whole device: other writers on the machine count too.
 */
function deviceWrittenBytes(p: string): number {
  const dev = fs.statSync(p).dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  const fields = fs.readFileSync(`/sys/dev/block/${major}:${minor}/stat`, 'utf8').trim().split(/\s+/);
  return Number(fields[6]) * 512;
}
/** What the device under `dir` wrote while `work` ran, each side of it synced. */
function deviceWritesOf(dir: string, work: () => void): number {
  sh('sync');
  const before = deviceWrittenBytes(dir);
  work();
  sh('sync');
  return deviceWrittenBytes(dir) - before;
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
/** User plus system CPU seconds of a store's daemon, every thread (/proc/PID/stat). */
function daemonCpuSeconds(store: string): number {
  const daemon = readLock(store);
  if (!daemon) throw new Error(`no daemon runs on ${store}`);
  const fields = fs.readFileSync(`/proc/${daemon.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // Fields 14 and 15 of stat(5); the split drops the first two.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function makeBigFile(file: string, bytes: number): void {
  // Real bytes: shared libraries, largest first, until the size is reached (repeating if needed).
  const dir = '/usr/lib/x86_64-linux-gnu';
  const libs = fs
    .readdirSync(dir)
    .map((n) => path.join(dir, n))
    .filter((p) => fs.lstatSync(p).isFile())
    .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
  const fd = fs.openSync(file, 'w');
  let written = 0;
  for (let round = 0; written < bytes; round++) {
    for (const lib of libs) {
      if (written >= bytes) break;
      const b = fs.readFileSync(lib);
      const n = Math.min(b.length, bytes - written);
      fs.writeSync(fd, b, 0, n);
      written += n;
    }
  }
  fs.closeSync(fd);
}

/** Wait (at most 5 minutes) until the mount has no chunks awaiting compression; seconds waited. */
function waitForCompression(mnt: string): number {
  const t0 = Date.now();
  while (Date.now() - t0 < 300_000) {
    const s = JSON.parse(execFileSync(process.execPath, [BIN, 'stats', mnt, '--json'], { encoding: 'utf8' }));
    if (s.pendingCompression === 0) break;
    sh('sleep 1');
  }
  return (Date.now() - t0) / 1000;
}

interface Row {
  what: string;
  slinkyfs: number;
  peer: number;
  peerName: string;
  unit: string;
  target?: string;
}

function main(): void {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'slinkyfs-bench-'));
  const big = path.join(work, 'big.bin');
  const mnt = path.join(work, 'mnt');
  const store = path.join(work, 'store');
  const ext = path.join(work, 'ext4');
  const bmnt = path.join(work, 'bindfs');
  for (const d of [mnt, ext, bmnt]) fs.mkdirSync(d);
  const rows: Row[] = [];
  const usrBinBytes = treeBytes('/usr/bin');
  try {
    makeBigFile(big, bigMiB << 20);
    const bigBytes = fs.statSync(big).size;
    // Sources hot in the page cache for every contender, so reading them costs the same.
    const warmSources = () => sh(`cat /usr/bin/* '${big}' > /dev/null 2>&1 || true`);
    warmSources();

    execFileSync(process.execPath, [BIN, 'mount', mnt, '--store', store]);
    sh(`bindfs -o big_writes '${ext}' '${bmnt}'`);
    try {
      const ourBig = timed(`cp '${big}' '${mnt}/big.bin'`);
      const bindBig = timed(`cp '${big}' '${bmnt}/big.bin'`);
      rows.push({ what: `ingest ${bigMiB} MiB file`, slinkyfs: mb(bigBytes) / ourBig, peer: mb(bigBytes) / bindBig, peerName: 'bindfs', unit: 'MB/s', target: '>= 0.5x' });

      // Reads are measured on a settled store: the daemon compresses new chunks once writes
      // pause, and that work would otherwise fall inside the read timings (its cost is in the
      // "ingest+compress" row below).
      const settle = waitForCompression(mnt);
      console.log(`waited ${settle.toFixed(1)} s for background compression before the reads`);
      sh(`cat '${mnt}/big.bin' > /dev/null; cat '${bmnt}/big.bin' > /dev/null`);
      const ourHot = timed(`cat '${mnt}/big.bin' > /dev/null`);
      const bindHot = timed(`cat '${bmnt}/big.bin' > /dev/null`);
      rows.push({ what: 'sequential read, hot', slinkyfs: mb(bigBytes) / ourHot, peer: mb(bigBytes) / bindHot, peerName: 'bindfs', unit: 'MB/s', target: '>= 0.8x' });
      // Cold: every cache dropped before each side reads.
      const coldRow = (what: string) => {
        dropCaches();
        const ours = timed(`cat '${mnt}/big.bin' > /dev/null`);
        dropCaches();
        const bind = timed(`cat '${bmnt}/big.bin' > /dev/null`);
        rows.push({ what, slinkyfs: mb(bigBytes) / ours, peer: mb(bigBytes) / bind, peerName: 'bindfs', unit: 'MB/s', target: '>= 0.8x' });
      };
      coldRow('sequential read, cold');
      // The mounts' own page cache of the file dropped (fadvise DONTNEED, as dd's nocache does),
      // the backing files in memory: the store's database for us, the ext4 file for bindfs. What
      // is left is each filesystem's own work per byte; the daemon's CPU time says how much.
      sh(`cat '${store}/db/data.mdb' '${ext}/big.bin' > /dev/null`);
      for (const f of [`${mnt}/big.bin`, `${bmnt}/big.bin`]) sh(`dd if='${f}' iflag=nocache count=0 status=none`);
      const cpu = daemonCpuSeconds(store);
      const ourWarm = timed(`cat '${mnt}/big.bin' > /dev/null`);
      const daemonCpu = daemonCpuSeconds(store) - cpu;
      const bindWarm = timed(`cat '${bmnt}/big.bin' > /dev/null`);
      console.log(`read with the store in memory: ${ourWarm.toFixed(2)} s, the daemon's CPU ${daemonCpu.toFixed(2)} s (all its threads)`);
      rows.push({ what: 'sequential read, backing data in memory', slinkyfs: mb(bigBytes) / ourWarm, peer: mb(bigBytes) / bindWarm, peerName: 'bindfs', unit: 'MB/s', target: '>= 0.8x' });
      // The same with the kernel's own read-ahead window instead of the mount's default 2048 KiB
      // (README, "Memory": the window is also the read-around of mmap faults).
      execFileSync(process.execPath, [BIN, 'umount', mnt]);
      execFileSync(process.execPath, [BIN, 'mount', mnt, '--store', store, '--readahead-kib', '128']);
      coldRow('sequential read, cold, --readahead-kib 128');
    } finally {
      spawnSync(process.execPath, [BIN, 'umount', mnt]);
      spawnSync('fusermount', ['-u', bmnt]);
    }

    // The copy of /usr/bin into a fresh store, the same copy through bindfs into an empty
    // directory, and casync make alternate for --rounds rounds (this machine's speed drifts by
    // tens of percent within minutes): the rows give the medians. The first round's stores give
    // the store sizes, against du and casync.
    const ours: number[] = [];
    const theirs: number[] = [];
    const bindCopies: number[] = [];
    let gcTime = 0;
    let ourDisk = 0;
    let casyncDisk = 0;
    let stats: { storedBytes: number } = { storedBytes: 0 };
    for (let round = 0; round < rounds; round++) {
      const store2 = path.join(work, `store2-${round}`);
      const mnt2 = path.join(work, `mnt2-${round}`);
      fs.mkdirSync(mnt2);
      execFileSync(process.execPath, [BIN, 'mount', mnt2, '--store', store2]);
      // The cold-read rows dropped every cache: warm /usr/bin again, or this copy would read it
      // from disk and casync, which runs after it, from memory.
      warmSources();
      try {
        ours.push(timed(`cp -a /usr/bin/. '${mnt2}/'`));
      } finally {
        spawnSync(process.execPath, [BIN, 'umount', mnt2]);
      }
      if (round === 0) {
        // The daemon compresses in idle time; gc finishes that (and compacts the file) so sizes
        // and the casync comparison include the whole cost of compression.
        gcTime = timed(`'${process.execPath}' '${BIN}' gc --store '${store2}'`);
        stats = JSON.parse(execFileSync(process.execPath, [BIN, 'stats', '--store', store2, '--json'], { encoding: 'utf8' }));
        ourDisk = duBytes(path.join(store2, 'db'));
      }
      fs.rmSync(store2, { recursive: true, force: true });
      // The same copy through bindfs into an empty ext4 directory, in the same round: one copy
      // each swung the ratio by a third from run to run.
      const ext2 = path.join(work, `ext4-${round}`);
      fs.mkdirSync(ext2);
      warmSources();
      sh(`bindfs -o big_writes '${ext2}' '${bmnt}'`);
      try {
        bindCopies.push(timed(`cp -a /usr/bin/. '${bmnt}/'`));
      } finally {
        spawnSync('fusermount', ['-u', bmnt]);
      }
      fs.rmSync(ext2, { recursive: true, force: true });
      if (skipCasync) continue;
      const cstore = path.join(work, `casync-${round}.castr`);
      const cindex = path.join(work, `usrbin-${round}.caidx`);
      warmSources();
      theirs.push(timed(`casync make --store='${cstore}' '${cindex}' /usr/bin`));
      if (round === 0) casyncDisk = duBytes(cstore) + duBytes(cindex);
      // Kept until the end: ext4 will not reuse an inode freed in the last minute, and with
      // thousands just freed (one file per chunk) each casync round took longer than the last
      // (2.96 s to 7.51 s in five rounds, most of it in ext4's recently_deleted()).
    }
    console.log(`cp -a /usr/bin into a fresh store: ${ours.map((t) => t.toFixed(2)).join(', ')} s; ` +
      `through bindfs: ${bindCopies.map((t) => t.toFixed(2)).join(', ')} s` +
      (skipCasync ? '' : `; casync make: ${theirs.map((t) => t.toFixed(2)).join(', ')} s`));
    rows.unshift({ what: `ingest /usr/bin (cp -a, median of ${rounds})`, slinkyfs: mb(usrBinBytes) / median(ours), peer: mb(usrBinBytes) / median(bindCopies), peerName: 'bindfs', unit: 'MB/s', target: '>= 0.5x' });

    // What reaches the disk, not only what is stored: new chunks go in raw and are compressed
    // later (up to --compress-backlog-mib), so both versions are written. Measured from before
    // the copy until the store is settled (nothing waits for compression) and synced.
    const diskWrites = (mountArgs: string[]): number => {
      const store3 = path.join(work, 'store3');
      const mnt3 = path.join(work, 'mnt3');
      fs.mkdirSync(mnt3, { recursive: true });
      execFileSync(process.execPath, [BIN, 'mount', mnt3, '--store', store3, ...mountArgs]);
      try {
        warmSources();
        return deviceWritesOf(work, () => {
          sh(`cp -a /usr/bin/. '${mnt3}/'`);
          waitForCompression(mnt3);
        });
      } finally {
        spawnSync(process.execPath, [BIN, 'umount', mnt3]);
        fs.rmSync(store3, { recursive: true, force: true });
      }
    };
    const ourWrites = diskWrites([]);
    const eagerWrites = diskWrites(['--compress-backlog-mib', '0']);
    const ext3 = path.join(work, 'ext4-writes');
    fs.mkdirSync(ext3);
    warmSources();
    sh(`bindfs -o big_writes '${ext3}' '${bmnt}'`);
    let bindWrites: number;
    try {
      bindWrites = deviceWritesOf(work, () => sh(`cp -a /usr/bin/. '${bmnt}/'`));
    } finally {
      spawnSync('fusermount', ['-u', bmnt]);
    }
    fs.rmSync(ext3, { recursive: true, force: true });
    rows.push({ what: 'disk writes of cp -a /usr/bin, settled', slinkyfs: mb(ourWrites), peer: mb(bindWrites), peerName: 'bindfs', unit: 'MB' });
    rows.push({ what: 'the same, --compress-backlog-mib 0', slinkyfs: mb(eagerWrites), peer: mb(bindWrites), peerName: 'bindfs', unit: 'MB' });
    const usrBinDu = Number(execFileSync('du', ['-s', '--block-size=1', '/usr/bin'], { encoding: 'utf8' }).split('\t')[0]);
    rows.push({ what: 'store size of /usr/bin (on disk)', slinkyfs: mb(ourDisk), peer: mb(usrBinDu), peerName: 'du /usr/bin', unit: 'MB' });
    rows.push({ what: 'store size of /usr/bin (chunk bytes)', slinkyfs: mb(stats.storedBytes), peer: mb(usrBinBytes), peerName: 'file bytes', unit: 'MB' });
    if (!skipCasync) {
      const ourMedian = median(ours);
      const caMedian = median(theirs);
      rows.push({ what: `ingest /usr/bin vs casync make (median of ${rounds})`, slinkyfs: mb(usrBinBytes) / ourMedian, peer: mb(usrBinBytes) / caMedian, peerName: 'casync', unit: 'MB/s', target: '>= 1.0x' });
      rows.push({ what: 'ingest+compress (cp, gc) vs casync', slinkyfs: mb(usrBinBytes) / (ours[0] + gcTime), peer: mb(usrBinBytes) / theirs[0], peerName: 'casync', unit: 'MB/s' });
      rows.push({ what: 'store size of /usr/bin vs casync', slinkyfs: mb(ourDisk), peer: mb(casyncDisk), peerName: 'casync', unit: 'MB' });
    }
  } finally {
    spawnSync('fusermount', ['-uz', mnt]);
    spawnSync('fusermount', ['-uz', bmnt]);
    fs.rmSync(work, { recursive: true, force: true });
  }

  const head = ['measure', 'slinkyfs', 'peer', 'ratio', 'target'];
  const body = rows.map((r) => [
    r.what,
    `${r.slinkyfs.toFixed(1)} ${r.unit}`,
    `${r.peer.toFixed(1)} ${r.unit} (${r.peerName})`,
    `${(r.slinkyfs / r.peer).toFixed(2)}x`,
    r.target ?? '',
  ]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  console.log(`ingest benchmark, ${machine()}`);
  for (const row of all) console.log(row.map((c, i) => c.padEnd(widths[i])).join('  '));
}

main();
