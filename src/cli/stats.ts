// `slinkyfs stats`: what digest-based sharing saves in a store.
import fs from 'node:fs';
import type { CommandModule } from 'yargs';
import { computeStats, statsByTopDir } from '../store/stats';
import { openStoreForReading } from './openStore';
import { deadMountError, deadMountOf, storeDirFrom, withStore } from './storeArg';
import { formatBytes } from './units';
import { UserError } from './errors';
import type { PageCacheStats } from '../pagecache';
import type { NetworkReport } from '../net/networkReport';
import { networkRows } from './networkRows';

interface Args {
  mountpoint?: string;
  store?: string;
  json: boolean;
  'by-dir': boolean;
  pages: boolean;
  net: boolean;
}

/** What the daemon serving the store knows (page cache, peers): it lives in its memory. */
type DaemonStats = PageCacheStats & { network?: NetworkReport };

async function daemonStats(storeDir: string): Promise<DaemonStats> {
  const { requestStats, NoDaemonError } = await import('../pagecache');
  try {
    return (await requestStats(storeDir)) as DaemonStats;
  } catch (err) {
    if (err instanceof NoDaemonError) throw new UserError(err.message, 3);
    throw err;
  }
}

function pageRows(p: PageCacheStats): string[][] {
  const g = p.gdt;
  return [
    ['GDT entries', `${g.entries} (${formatBytes(g.bytes)} of ${formatBytes(g.limitBytes)}; ${g.referencedEntries} mapped by live processes)`],
    ['GDT hits', String(g.hits)],
    ['GDT misses', String(g.misses)],
    ['verification failures', String(g.verificationFailures)],
    ['evictions', String(g.evictions)],
    ['bytes shared', formatBytes(p.bytesShared)],
    ['processes mapping objects', String(p.processes)],
    ['published objects', `${p.published.objects} (${p.published.refused} refused, ${p.published.malformed} malformed manifests)`],
    ['object opens/closes answered in C', `${p.fastPath.opens}/${p.fastPath.releases}`],
    [
      'objects passing through to system files',
      p.fastPath.passthrough
        ? `${p.twins.objects}${p.twins.pending ? ` (${p.twins.pending} being checked)` : ''}; ${p.twins.unused} whose twin no process maps; ${p.fastPath.passthroughOpens} opens`
        : 'none (passthrough off or not offered by the kernel)',
    ],
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

const command: CommandModule<{}, Args> = {
  command: 'stats [mountpoint]',
  describe: 'show what deduplication and compression save',
  builder: (y) =>
    withStore(y)
      .positional('mountpoint', { type: 'string', describe: 'a slinkyfs mountpoint (its store is used), or a file: print its file digest' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .option('by-dir', { type: 'boolean', default: false, describe: 'one row per top-level directory' })
      .option('pages', { type: 'boolean', default: false, describe: 'also the shared page cache of the running daemon (GDT, per-object mappings)' })
      .example('$0 stats /slinky', 'savings of the store mounted at /slinky')
      .example('$0 stats --store ./st --json', 'machine-readable figures')
      .option('net', { type: 'boolean', default: false, describe: 'also the peers of the running daemon (mount --peer/--serve): chunks not fetched, fetched, bytes on the wire' })
      .example('$0 stats /slinky --pages', 'page cache hits, misses, verification failures, objects mapped')
      .example('$0 stats /slinky --net', 'what a mount with peers fetched, and what it found here instead'),
  handler: async (args) => {
    // Before any look at the name: on a mount whose daemon died, stat fails with ENOTCONN (or,
    // for a second, answers from the kernel's cache), and --pages/--net have no daemon to ask.
    const dead = args.mountpoint ? deadMountOf(args.mountpoint) : undefined;
    if (dead) throw deadMountError(dead);
    if (args.mountpoint && fs.statSync(args.mountpoint, { throwIfNoEntry: false })?.isFile()) {
      // A file: its file digest, the name `slinkyfs get PEER sha256-…` fetches it by.
      const { localFileDigest } = await import('../net/localDigest');
      const { digestToString } = await import('../chunking/digest');
      const d = digestToString(await localFileDigest(args.mountpoint));
      process.stdout.write(args.json ? `${JSON.stringify({ file: args.mountpoint, digest: d })}\n` : `${d}  ${args.mountpoint}\n`);
      return;
    }
    const storeDir = storeDirFrom(args);
    // Every B-tree page is checked before LMDB follows it (a damaged page would crash it), and
    // before the daemon is asked, so damage is exit 1 with or without --pages/--net. A daemon
    // writing meanwhile is safe: the walk is taken again when a commit moved the tree under it.
    const store = await openStoreForReading(storeDir);
    try {
      const daemon = args.pages || args.net ? await daemonStats(storeDir) : undefined;
      const { network, ...pageFigures } = daemon ?? {};
      const pages = args.pages ? (pageFigures as PageCacheStats) : undefined;
      const net = args.net ? (network ?? null) : undefined;
      const s = computeStats(store);
      const byDir = args['by-dir'] ? statsByTopDir(store) : undefined;
      if (args.json) {
        process.stdout.write(JSON.stringify({ ...s, ...(byDir ? { byDir } : {}), ...(pages ? { pages } : {}), ...(net !== undefined ? { network: net } : {}) }, null, 2) + '\n');
        return;
      }
      const rows = [
        ['files', String(s.files)],
        ['directories', String(s.directories)],
        ['symlinks', String(s.symlinks)],
        ...(s.special ? [['special files', String(s.special)]] : []),
        ['logical bytes', formatBytes(s.logicalBytes)],
        // A sparse file's size says little about its content: say how much of it is hole.
        ...(s.holeBytes ? [['  of which holes', formatBytes(s.holeBytes)]] : []),
        ['unique bytes', formatBytes(s.uniqueBytes)],
        ['stored bytes', formatBytes(s.storedBytes)],
        ['chunks', String(s.chunks)],
        ...(s.absentChunks ? [['not yet fetched', `${s.absentChunks} chunks, ${formatBytes(s.absentBytes)}`]] : []),
        ['mean chunk', formatBytes(s.meanChunkBytes)],
        ['dedup ratio', `${s.dedupRatio.toFixed(2)}x`],
        ['compression ratio', `${s.compressionRatio.toFixed(2)}x`],
        ['total saving', `${(s.storedBytes ? s.logicalBytes / s.storedBytes : 1).toFixed(2)}x`],
        ['database file', formatBytes(s.databaseBytes)],
        // LMDB never shrinks its file: say how much of it is free pages, and what gives them back.
        ...(s.databaseFreeBytes ? [['  free (gc gives back)', formatBytes(s.databaseFreeBytes)]] : []),
        ['awaiting compression', `${s.pendingCompression} chunks`],
      ];
      process.stdout.write(table(rows) + '\n');
      if (byDir) {
        const head = ['directory', 'files', 'logical', 'unique', 'stored', 'dedup'];
        const body = byDir.map((d) => [d.dir, String(d.files), formatBytes(d.logicalBytes), formatBytes(d.uniqueBytes), formatBytes(d.storedBytes), `${d.dedupRatio.toFixed(2)}x`]);
        process.stdout.write('\n' + table([head, ...body]) + '\n');
      }
      if (pages) {
        process.stdout.write('\n' + table(pageRows(pages)) + '\n');
        const mapped = pages.objects.filter((o) => o.mappings > 0);
        if (mapped.length) {
          const head = ['object', 'size', 'processes', 'pages mapped', 'shared', 'passes through to'];
          const body = mapped.map((o) => [o.name.slice(0, 19), formatBytes(o.size), String(o.mappings), String(o.mappedPages), String(o.sharedPages), o.twin ?? '-']);
          process.stdout.write('\n' + table([head, ...body]) + '\n');
        }
      }
      if (net !== undefined) {
        process.stdout.write('\n' + (net ? table(networkRows(net)) : 'no peers: the store is not mounted with --peer or --serve') + '\n');
      }
    } finally {
      await store.close();
    }
  },
};
export default command;
