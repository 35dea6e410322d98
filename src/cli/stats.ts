// `slinkyfs stats`: what digest-based sharing saves in a store.
import type { CommandModule } from 'yargs';
import { computeStats, statsByTopDir } from '../store/stats';
import { openStoreForReading } from './openStore';
import { storeDirFrom, withStore } from './storeArg';
import { formatBytes } from './units';

interface Args {
  mountpoint?: string;
  store?: string;
  json: boolean;
  'by-dir': boolean;
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
      .positional('mountpoint', { type: 'string', describe: 'a slinkyfs mountpoint (its store is used)' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .option('by-dir', { type: 'boolean', default: false, describe: 'one row per top-level directory' })
      .example('$0 stats /slinky', 'savings of the store mounted at /slinky')
      .example('$0 stats --store ./st --json', 'machine-readable figures'),
  handler: async (args) => {
    const store = await openStoreForReading(storeDirFrom(args));
    try {
      const s = computeStats(store);
      const byDir = args['by-dir'] ? statsByTopDir(store) : undefined;
      if (args.json) {
        process.stdout.write(JSON.stringify(byDir ? { ...s, byDir } : s, null, 2) + '\n');
        return;
      }
      const rows = [
        ['files', String(s.files)],
        ['directories', String(s.directories)],
        ['symlinks', String(s.symlinks)],
        ['logical bytes', formatBytes(s.logicalBytes)],
        ['unique bytes', formatBytes(s.uniqueBytes)],
        ['stored bytes', formatBytes(s.storedBytes)],
        ['chunks', String(s.chunks)],
        ...(s.absentChunks ? [['not yet fetched', `${s.absentChunks} chunks, ${formatBytes(s.absentBytes)}`]] : []),
        ['mean chunk', formatBytes(s.meanChunkBytes)],
        ['dedup ratio', `${s.dedupRatio.toFixed(2)}x`],
        ['compression ratio', `${s.compressionRatio.toFixed(2)}x`],
        ['total saving', `${(s.storedBytes ? s.logicalBytes / s.storedBytes : 1).toFixed(2)}x`],
        ['database file', formatBytes(s.databaseBytes)],
      ];
      process.stdout.write(table(rows) + '\n');
      if (byDir) {
        const head = ['directory', 'files', 'logical', 'unique', 'stored', 'dedup'];
        const body = byDir.map((d) => [d.dir, String(d.files), formatBytes(d.logicalBytes), formatBytes(d.uniqueBytes), formatBytes(d.storedBytes), `${d.dedupRatio.toFixed(2)}x`]);
        process.stdout.write('\n' + table([head, ...body]) + '\n');
      }
    } finally {
      await store.close();
    }
  },
};
export default command;
