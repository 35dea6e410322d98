// `slinkyfs get PEER PATH`: fetch a file (or with --dir a tree) from a peer, transferring only
// the chunks this machine lacks. PATH may also be a file digest (sha256-<hex>): then nothing the
// peer says is trusted. Where it goes: -o FILE (a plain file or tree), --into MOUNTPOINT/DIR (a
// directory on a slinkyfs mount) or --into /DIR with --store (straight into an unmounted store).
import fs from 'node:fs';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { readMounts, FSTYPE, mountContaining } from '../fs/mountTable';
import { acquireLock, readLock } from '../store/lock';
import { LocalChunkSource } from '../store/localSource';
import { SeedIndex, SeedSource } from '../store/seedSource';
import { ExistsError, NotDirError, StoreError } from '../store/errors';
import { Store } from '../store/store';
import { storeDirFrom } from './storeArg';
import { PeerClient } from '../net/client';
import { getIntoStore, getToFiles, type GetSummary } from '../net/get';
import { requestPathComponents, type WireCodec } from '../net/protocol';
import { DEFAULT_FETCH, isDigestName, type FetchOptions } from '../net/transfer';
import { xzAvailable } from '../net/xz';
import { UserError } from './errors';
import { transferProgress } from './transferProgress';
import { checkTimeoutSeconds, formatBytes, parseSize, parseSizeOption } from './units';
import { makeDirs } from '../store/dirs';

interface Args {
  peer: string;
  path: string;
  output?: string;
  into?: string;
  dir: boolean;
  store?: string;
  codec: string;
  level?: number;
  parallel: number;
  batch: string;
  timeout: number;
  'min-rate': string;
  seeds: boolean;
  json: boolean;
}

/** The slinkyfs mount holding `p` (or an ancestor of it), if any. */
function slinkyMountContaining(p: string): { mountpoint: string; store: string } | undefined {
  const m = mountContaining(p, readMounts().filter((e) => e.fstype === FSTYPE));
  return m && { mountpoint: m.mountpoint, store: m.source };
}

async function openLocal(storeDir: string | undefined) {
  if (!storeDir || !fs.existsSync(path.join(storeDir, 'db', 'data.mdb'))) return undefined;
  try {
    const store = await Store.open(storeDir, { readOnly: true });
    const src = new LocalChunkSource(store);
    const local = Object.assign(src, { has: (d: import('../chunking/digest').Digest) => store.hasChunk(d) });
    return { store, local };
  } catch {
    return undefined; // an unreadable store is only a missed chance to save bytes
  }
}

async function openSeeds(storeDir: string | undefined, use: boolean) {
  if (!use || !storeDir) return undefined;
  try {
    const index = await SeedIndex.open(storeDir, { readOnly: true });
    return index && { index, source: new SeedSource(index) };
  } catch {
    return undefined;
  }
}

function print(s: GetSummary, where: string): void {
  const what = s.kind === 'file' ? `${s.bytes} bytes` : `${s.files} files, ${s.dirs} directories, ${s.symlinks} symlinks, ${formatBytes(s.bytes)}`;
  const lines = [
    `${s.what} -> ${where}: ${what} in ${s.chunks} unique chunks (${formatBytes(s.chunkBytes)})${s.resumed ? ', resumed' : ''}`,
    ...(s.digest ? [`  digest ${s.digest}`] : []),
    `  already here ${s.localChunks} chunks (${formatBytes(s.localBytes)}), from seeds ${s.seededChunks} (${formatBytes(s.seededBytes)}), missing ${s.chunks - s.localChunks - s.seededChunks} (${formatBytes(s.chunkBytes - s.localBytes - s.seededBytes)})`,
    ...(s.objectBytes ? [`  built from local objects ${formatBytes(s.objectBytes)} (${s.objectChunks} whole chunks)`] : []),
    `  fetched ${s.fetchedChunks} chunks, ${formatBytes(s.fetchedBytes)} of them from the peer`,
    `  transferred ${formatBytes(s.receivedBytes)} (chunk data ${formatBytes(s.chunkPayloadBytes)}, protocol ${formatBytes(s.receivedBytes - s.chunkPayloadBytes)}), sent ${formatBytes(s.sentBytes)}, ${s.seconds.toFixed(1)} s`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

/** A rate of 0 would put every request's deadline at infinity. */
const minRate = (text: string) => parseSizeOption('--min-rate', text, 1, 'a rate of at least 1 byte/s (e.g. 64K)');

const command: CommandModule<object, Args> = {
  command: 'get <peer> <path>',
  describe: 'fetch a file or tree from a peer, transferring only the chunks missing here',
  builder: (y) =>
    y
      .positional('peer', { type: 'string', demandOption: true, describe: 'HOST:PORT or http://HOST:PORT of `slinkyfs serve`' })
      .positional('path', { type: 'string', demandOption: true, describe: 'path on the peer, or a file digest sha256-<hex>' })
      .option('output', { requiresArg: true, alias: 'o', type: 'string', describe: 'write to this file (or directory, with --dir)' })
      .option('into', { requiresArg: true, type: 'string', describe: 'put it into MOUNTPOINT/DIR, or into /DIR of the --store when it is not mounted' })
      .option('dir', { type: 'boolean', default: false, describe: 'PATH is a directory: get the whole tree' })
      .option('store', { requiresArg: true, type: 'string', describe: 'local store (default: $XDG_DATA_HOME/slinkyfs); its chunks and seeds are used' })
      .option('codec', { requiresArg: true, choices: ['zstd', 'xz'], default: 'zstd', describe: 'compressor the peer packs chunk batches with' })
      .option('level', { requiresArg: true, type: 'number', describe: 'its level: zstd 1..19 (default 3), xz 1..9 (default 9); 0: chunks as stored' })
      .option('parallel', { requiresArg: true, type: 'number', default: 3, describe: 'requests in flight at once' })
      .option('batch', { requiresArg: true, type: 'string', default: '8M', describe: 'chunk bytes per request' })
      .option('timeout', { requiresArg: true, type: 'number', default: 30, describe: 'seconds without a byte from the peer before giving up' })
      .option('min-rate', { requiresArg: true, type: 'string', default: '64K', describe: 'slowest acceptable transfer rate per request (bytes/s)' })
      .option('seeds', { type: 'boolean', default: true, describe: 'take chunks from seeded files (--no-seeds: do not)' })
      .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON' })
      .check((a) => {
        if (!a.output === !a.into) throw new UserError('say where it goes: -o FILE or --into DIR (one of them)');
        const max = a.codec === 'xz' ? 9 : 19;
        if (a.level !== undefined && (!Number.isInteger(a.level) || a.level < 0 || a.level > max)) throw new UserError(`--level must be 0..${max} for ${a.codec}`);
        if (!Number.isInteger(a.parallel) || a.parallel < 1 || a.parallel > 16) throw new UserError('--parallel must be 1..16');
        checkTimeoutSeconds('--timeout', a.timeout);
        minRate(a['min-rate']);
        return true;
      })
      .example('$0 get 10.0.0.5:7070 /bin/vim --into /slinky/bin', 'fetch a program into a mounted store')
      .example('$0 get 10.0.0.5:7070 /pkgs/vim --dir --into / --store ./st', 'fetch a tree into an unmounted store')
      .example('$0 get 10.0.0.5:7070 sha256-3f0c... -o vim', 'fetch a file by digest, trusting nobody'),
  handler: async (args) => {
    const batchBytes = parseSize(args.batch);
    if (batchBytes < 64 << 10 || batchBytes > 32 << 20) throw new UserError('--batch must be between 64K and 32M');
    const codec = args.codec as WireCodec;
    if (codec === 'xz' && !xzAvailable()) throw new UserError('--codec xz needs build/slinky_xz.node (run `make build`; apt-get install liblzma-dev)', 3);
    const fetch: FetchOptions = { codec, level: args.level ?? (codec === 'xz' ? 9 : DEFAULT_FETCH.level), batchBytes, parallel: args.parallel };
    const client = new PeerClient(args.peer, { idleTimeoutMs: args.timeout * 1000, minBytesPerSecond: minRate(args['min-rate']) });
    const base = { client, what: args.path, allowDir: args.dir, fetch };
    let needed = 0;
    let bar: ReturnType<typeof transferProgress> | undefined;
    const progress = {
      needed: (n: number) => {
        needed = n;
        bar = transferProgress(needed, () => client.bytesIn());
      },
      add: (n: number) => bar?.add(n),
    };
    const closers: Array<() => Promise<void> | void> = [() => client.close()];
    // Interrupted: stop the transfer, keep what arrived (the store is closed cleanly, its lock
    // released), and say how to resume. A second signal exits at once.
    let interrupted: string | undefined;
    const onSignal = (sig: NodeJS.Signals) => {
      if (interrupted) process.exit(130);
      interrupted = sig;
      client.close();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    closers.push(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });
    try {
      let summary: GetSummary;
      let where: string;
      const mount = args.into ? slinkyMountContaining(args.into) : undefined;
      if (args.output || mount) {
        // Onto the file system; on a mount the daemon stores the chunks, its store is a source.
        const baseName = isDigestName(args.path) ? args.path : path.basename(args.path) || 'root';
        const output = args.output ?? path.join(args.into!, baseName);
        const storeDir = mount?.store ?? storeDirFrom({ store: args.store });
        const local = await openLocal(storeDir);
        if (local) closers.push(() => local.store.close());
        const seeds = await openSeeds(storeDir, args.seeds);
        if (seeds) closers.push(() => seeds.index.close());
        if (args.into) await makeDirs(args.into);
        summary = await getToFiles({ ...base, output, local: local?.local, seeds: seeds?.source, objects: seeds?.index, progress });
        where = output;
      } else {
        const into = requestPathComponents(args.into!);
        if (typeof into === 'string') throw new UserError(`--into ${args.into}: ${into} (a directory inside the store, or MOUNTPOINT/DIR)`);
        const storeDir = storeDirFrom({ store: args.store });
        await makeDirs(storeDir);
        let unlock: () => void;
        try {
          unlock = acquireLock(storeDir);
        } catch (err) {
          const holder = readLock(storeDir);
          if (holder?.mountpoint) throw new UserError(`store ${storeDir} is mounted at ${holder.mountpoint}: use --into ${path.join(holder.mountpoint, args.into!)}`, 3);
          throw err;
        }
        closers.push(unlock);
        const store = await Store.open(storeDir);
        closers.push(async () => {
          await store.flushed();
          await store.close();
        });
        const seeds = await openSeeds(storeDir, args.seeds);
        if (seeds) closers.push(() => seeds.index.close());
        summary = await getIntoStore({ ...base, store, into, seeds: seeds?.source, objects: seeds?.index, progress });
        where = `${storeDir}:/${[...into, summary.kind === 'file' && isDigestName(args.path) ? args.path : path.basename(args.path) || 'root'].join('/')}`;
      }
      bar?.done();
      if (args.json) process.stdout.write(JSON.stringify(summary) + '\n');
      else print(summary, where);
    } catch (err) {
      bar?.done();
      if (interrupted) throw new UserError(`interrupted by ${interrupted}; what arrived is kept: run the same get again to resume`, 130);
      if (err instanceof ExistsError || err instanceof NotDirError) throw new UserError(err.message);
      if (err instanceof StoreError && !(err as { exitCode?: number }).exitCode) throw new UserError(err.message, 3);
      if ((err as NodeJS.ErrnoException).code && (err as NodeJS.ErrnoException).syscall) throw new UserError((err as Error).message, 3);
      throw err;
    } finally {
      for (const c of closers.reverse()) await c();
    }
  },
};

export default command;
