// `slinkyfs gc`: remove published objects no slinked file embeds any more, recompute reference
// counts from the recipes and reclaim chunks nothing uses.
// Reference counting already frees chunks as files change; gc repairs what a bug or an older
// version may have left, and must run with the store unmounted.
import type { CommandModule } from 'yargs';
import { collectGarbage } from '../store/verify';
import { Compactor } from '../store/compactor';
import { LocalChunkSource } from '../store/localSource';
import { Filesystem } from '../fs/filesystem';
import { sweepObjects } from '../pagecache/sweep';
import { openStoreForWriting } from './openStore';
import { storeDirFrom, withStore } from './storeArg';
import { formatBytes } from './units';

const command: CommandModule<{}, { store?: string }> = {
  command: 'gc',
  describe: 'remove unused published objects, reclaim chunks no file uses, compress what waits (store must not be mounted)',
  builder: (y) => withStore(y).example('$0 gc --store ./st', 'repair counts and free space'),
  handler: async (args) => {
    const store = await openStoreForWriting(storeDirFrom(args));
    let closed = false;
    try {
      // Objects no slinked file embeds any more go first, so their chunks are freed below.
      const fsys = new Filesystem(store, new LocalChunkSource(store));
      const sweep = await sweepObjects(fsys, store, fsys.source, (line) => process.stderr.write(`${line}\n`));
      const r = await store.txn(() => collectGarbage(store));
      const compactor = new Compactor(store, { isIdle: () => true });
      await compactor.drain();
      const file = await store.compactFile();
      closed = true;
      process.stdout.write(
        (sweep.unreadable > 0
          ? `kept every published object: ${sweep.unreadable} files could not be read\n`
          : `removed ${sweep.removed.length} published objects no slinked file embeds (kept ${sweep.kept})\n`) +
        `freed ${r.freedChunks} chunks (${formatBytes(r.freedBytes)}), fixed ${r.fixedCounts} reference counts, ` +
          `compressed ${compactor.compressed} chunks; database file ${formatBytes(file.beforeBytes)} -> ${formatBytes(file.afterBytes)}\n`,
      );
    } finally {
      if (!closed) await store.close();
    }
  },
};
export default command;
