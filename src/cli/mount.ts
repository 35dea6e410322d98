// `slinkyfs mount MOUNTPOINT`: start the daemon. Like sshfs it goes to the background once the
// mount is ready (the parent waits for the child's "ready" line on a pipe), unless -f.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { DEFAULT_COMPRESS_BACKLOG_MIB, DEFAULT_SPIN_US, checkMountTarget, startDaemon, type SourceEvents } from '../fs/daemon';
import { READAHEAD_KIB } from '../fs/readahead';
import { UserError } from './errors';
import { storeDirFrom, withStore } from './storeArg';
import { checkTimeoutSeconds, parseSizeOption } from './units';
import { parseListen } from './serve';
import { DEFAULT_FLUSH_DELAY_MS, type Store } from '../store/store';
import { makeDirs } from '../store/dirs';
import { CorruptStoreError } from '../store/errors';

/** Chunk sources for --peer/--serve: loaded only when asked for. */
async function peerSources(store: Store, args: Args, log: (l: string) => void, events: SourceEvents) {
  const { lazyMountSource } = await import('../net/lazyMount');
  const serve = args.serve !== undefined ? parseListen(args.serve, '--serve') : undefined;
  return lazyMountSource(
    store,
    { peers: args.peer ?? [], serve, prefetch: args.prefetch, timeoutSeconds: args['peer-timeout'], onPrefetched: () => events.chunksArrived() },
    log,
  );
}

/** Seconds a peer may go without sending a byte, at mount time and on reads: `--peer-timeout`. */
const DEFAULT_PEER_TIMEOUT_S = 15;

/**
 * The store's limit is checked against the database file's size before each commit. A fresh
 * store already takes 40 KiB and one FUSE write brings up to 1 MiB, so below 1 MiB nearly
 * every write would fail; 0 would be no limit at all, which is what leaving it out means.
 */
const maxSize = (text: string) => parseSizeOption('--max-size', text, 1 << 20, 'a size of at least 1M (e.g. 10G)');

interface Args {
  mountpoint: string;
  store?: string;
  foreground: boolean;
  'max-size'?: string;
  'sync-every-commit'?: boolean;
  'flush-delay-ms': number;
  'spin-us': number;
  'readahead-kib': number;
  'compress-backlog-mib': number;
  xattr: boolean;
  passthrough: boolean;
  'ready-fd'?: number;
  peer?: string[];
  'peer-timeout': number;
  serve?: string;
  prefetch: boolean;
}

function makeLogger(file: string, toStderr: boolean): (line: string) => void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'a');
  } catch (err) {
    throw new UserError(`cannot open the log file: ${(err as Error).message}`, 3);
  }
  const stream = fs.createWriteStream(file, { fd });
  // A log that stops taking lines (a full disk) must not bring the mount down with it.
  stream.on('error', (err) => process.stderr.write(`slinkyfs: the log file stopped: ${err.message}\n`));
  return (line: string) => {
    const text = `${new Date().toISOString()} [${process.pid}] ${line}\n`;
    stream.write(text);
    if (toStderr) process.stderr.write(text);
  };
}

async function runForeground(args: Args, storeDir: string): Promise<void> {
  await makeDirs(storeDir);
  const log = makeLogger(path.join(storeDir, 'slinkyfs.log'), args['ready-fd'] === undefined);
  const readyFd = args['ready-fd'];
  const tell = (msg: string) => {
    if (readyFd === undefined) return;
    try {
      fs.writeSync(readyFd, msg + '\n');
      fs.closeSync(readyFd);
    } catch {
      /* the parent went away */
    }
  };
  let daemon;
  try {
    daemon = await startDaemon({
      mountpoint: args.mountpoint,
      storeDir,
      maxBytes: args['max-size'] !== undefined ? maxSize(args['max-size']) : undefined,
      syncEveryCommit: args['sync-every-commit'],
      flushDelayMs: args['flush-delay-ms'],
      spinMicros: args['spin-us'],
      readaheadKib: args['readahead-kib'],
      compressBacklogMib: args['compress-backlog-mib'],
      xattr: args.xattr,
      passthrough: args.passthrough,
      extraSources: args.peer?.length || args.serve !== undefined ? (store, l, events) => peerSources(store, args, l, events) : undefined,
      log,
    });
  } catch (err) {
    log(`mount failed: ${(err as Error).message}`);
    // A damaged store is a problem found (exit 1, as verify says it); anything else, the
    // environment's (3). The parent exits with what the daemon would have.
    tell(`${err instanceof CorruptStoreError ? 'damaged' : 'error'} ${(err as Error).message}`);
    throw err;
  }
  // A stray rejected promise must not take every program on the mount down with the daemon.
  process.on('unhandledRejection', (err) => log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      log(`${sig}: unmounting`);
      void daemon.stop();
    });
  }
  for (const w of daemon.warnings) log(`warning: ${w}`);
  tell(['ready', ...daemon.warnings.map((w) => `warning ${w}`)].join('\n'));
  await daemon.stopped;
  process.exit(0);
}

async function runBackground(args: Args, storeDir: string): Promise<void> {
  // Re-run the same entry script (bin/slinkyfs) as the daemon.
  const childArgs = [process.argv[1], 'mount', args.mountpoint, '--store', storeDir, '--foreground', '--ready-fd', '3'];
  if (args['max-size'] !== undefined) childArgs.push('--max-size', args['max-size']);
  if (args['sync-every-commit']) childArgs.push('--sync-every-commit');
  childArgs.push('--flush-delay-ms', String(args['flush-delay-ms']));
  childArgs.push('--spin-us', String(args['spin-us']), '--readahead-kib', String(args['readahead-kib']));
  childArgs.push('--compress-backlog-mib', String(args['compress-backlog-mib']));
  for (const p of args.peer ?? []) childArgs.push('--peer', p);
  childArgs.push('--peer-timeout', String(args['peer-timeout']));
  if (args.serve !== undefined) childArgs.push('--serve', args.serve);
  if (!args.prefetch) childArgs.push('--no-prefetch');
  if (!args.xattr) childArgs.push('--no-xattr');
  if (!args.passthrough) childArgs.push('--no-passthrough');
  await makeDirs(storeDir);
  const out = fs.openSync(path.join(storeDir, 'slinkyfs.log'), 'a');
  const child = spawn(process.execPath, childArgs, { detached: true, stdio: ['ignore', out, out, 'pipe'] });
  fs.closeSync(out);
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => (text += d));
    // A daemon that died closes the pipe before its exit is seen: wait for the exit to say so.
    pipe.on('end', () => text.trim() && resolve(text.trim()));
    child.on('exit', (code) => resolve(text.trim() || `error daemon exited with status ${code}`));
    setTimeout(() => resolve(text.trim() || 'error the daemon did not report ready within 60 s'), 60000).unref();
  });
  const [first, ...rest] = answer.split('\n');
  if (first !== 'ready') {
    child.kill('SIGTERM');
    throw new UserError(answer.replace(/^(error|damaged) /, ''), first.startsWith('damaged ') ? 1 : 3);
  }
  // Mounted, with something the user should know (a peer that could not be mirrored).
  for (const line of rest) process.stderr.write(`slinkyfs: warning: ${line.replace(/^warning /, '')}\n`);
  child.unref();
  (child.stdio[3] as any)?.destroy?.();
}

const command: CommandModule<{}, Args> = {
  command: 'mount <mountpoint>',
  describe: 'mount a slinkyfs store (goes to the background once ready)',
  builder: (y) =>
    withStore(y)
      .positional('mountpoint', { type: 'string', demandOption: true, describe: 'directory to mount on, e.g. /slinky' })
      .option('foreground', { alias: 'f', type: 'boolean', default: false, describe: 'stay in the foreground, log to stderr' })
      .option('max-size', { requiresArg: true, type: 'string', describe: 'limit the store database to this size (e.g. 10G); writes beyond it get ENOSPC' })
      .option('peer', { requiresArg: true, type: 'string', array: true, describe: 'mirror this peer\'s tree (http://HOST:PORT[/DIR]); chunks are fetched when read (repeatable: tried in turn; a peer that cannot be mirrored is a warning, and an error when no peer can be and the store has no tree of its own)' })
      .option('peer-timeout', {
        requiresArg: true,
        type: 'number',
        default: DEFAULT_PEER_TIMEOUT_S,
        describe: 'seconds a peer may go without sending a byte before it counts as failed, when its tree is mirrored at mount time and when a read fetches chunks (above 0, at most 86400)',
      })
      .option('serve', { requiresArg: true, type: 'string', describe: 'also serve the store to peers on HOST:PORT' })
      .option('prefetch', { type: 'boolean', default: true, describe: 'fetch the rest of the peers\' chunks in the background (--no-prefetch: only on demand)' })
      .option('sync-every-commit', {
        type: 'boolean',
        default: false,
        describe: 'flush every change to disk before acknowledging it (survives a power cut at any instant; slower)',
      })
      .option('flush-delay-ms', {
        requiresArg: true,
        type: 'number',
        default: DEFAULT_FLUSH_DELAY_MS,
        describe: 'start flushing acknowledged changes to disk this long after they commit (a power cut loses at most this much; kill -9 loses nothing; 0: flush right behind each commit)',
      })
      .option('spin-us', {
        requiresArg: true,
        type: 'number',
        default: DEFAULT_SPIN_US,
        describe: 'after each request keep polling this many microseconds before sleeping (0: sleep at once)',
      })
      .option('readahead-kib', {
        requiresArg: true,
        type: 'number',
        default: READAHEAD_KIB,
        describe: "kernel read-ahead for the mount in KiB (root only); it is also the read-around of every mmap fault (128 is the kernel's own)",
      })
      .option('compress-backlog-mib', {
        requiresArg: true,
        type: 'number',
        default: DEFAULT_COMPRESS_BACKLOG_MIB,
        describe: 'new data is stored raw and compressed when writes pause; past this many MiB waiting, writes compress it themselves (a bigger backlog: faster long copies, a database file that grows to their raw size)',
      })
      .option('xattr', {
        type: 'boolean',
        default: true,
        describe: 'serve extended attributes and POSIX ACLs (--no-xattr: neither; the kernel then skips a round trip it makes before every write)',
      })
      .option('passthrough', {
        type: 'boolean',
        default: true,
        describe: 'let published objects identical to files of this machine that some process maps (its libc.so.6) pass through to them, sharing their pages with dynamic programs (--no-passthrough: the daemon serves every object page)',
      })
      .option('ready-fd', { requiresArg: true, type: 'number', hidden: true })
      .check((a) => {
        // Checked here, before the daemon is started, so that a mistake is a usage error (2)
        // rather than a daemon that failed (3).
        if (a.serve !== undefined) parseListen(a.serve, '--serve');
        checkTimeoutSeconds('--peer-timeout', a['peer-timeout']);
        if (a['max-size'] !== undefined) maxSize(a['max-size']);
        if (!Number.isInteger(a['readahead-kib']) || a['readahead-kib'] < 4 || a['readahead-kib'] > 65536) {
          throw new UserError(`--readahead-kib wants a whole number of KiB from 4 to 65536, not ${a['readahead-kib']}`);
        }
        if (!Number.isInteger(a['flush-delay-ms']) || a['flush-delay-ms'] < 0 || a['flush-delay-ms'] > 60000) {
          throw new UserError(`--flush-delay-ms wants a whole number of milliseconds from 0 to 60000, not ${a['flush-delay-ms']}`);
        }
        if (!Number.isInteger(a['compress-backlog-mib']) || a['compress-backlog-mib'] < 0 || a['compress-backlog-mib'] > 1 << 20) {
          throw new UserError(`--compress-backlog-mib wants a whole number of MiB from 0 to 1048576, not ${a['compress-backlog-mib']}`);
        }
        if (!Number.isInteger(a['spin-us']) || a['spin-us'] < 0 || a['spin-us'] > 100000) {
          throw new UserError(`--spin-us wants a whole number of microseconds from 0 to 100000, not ${a['spin-us']}`);
        }
        return true;
      })
      .example('$0 mount /slinky', 'mount the default store at /slinky')
      .example('$0 mount /slinky --peer http://10.0.0.5:7070', 'programs on the peer run here, fetched as they are read')
      .example('$0 mount /slinky --peer http://10.0.0.5:7070 --peer-timeout 60', 'the same over a link that can stall for longer than 15 s')
      .example('$0 mount /mnt/s --store /var/lib/slinkyfs -f', 'mount another store in the foreground'),
  handler: async (args) => {
    // A malformed --peer is a usage error (2), found before a store or a daemon is made. The
    // network code loads only when there are peers, hence here rather than in check().
    if (args.peer?.length) {
      const { parsePeer } = await import('../net/client');
      for (const p of args.peer) parsePeer(String(p));
    }
    const storeDir = storeDirFrom({ store: args.store });
    await checkMountTarget(args.mountpoint, storeDir);
    if (args.foreground) await runForeground(args, storeDir);
    else await runBackground(args, storeDir);
  },
};
export default command;
