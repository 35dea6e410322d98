// `slinkyfs verify`: re-hash every chunk and walk every recipe; exit 1 if anything is damaged.
import type { CommandModule } from 'yargs';
import { verifyStore } from '../store/verify';
import { openStoreForReading } from './openStore';
import { deadMountNote, deadMountOf, storeDirFrom, withStore } from './storeArg';

const command: CommandModule<{}, { store?: string; mountpoint?: string }> = {
  command: 'verify [mountpoint]',
  describe: 're-hash every chunk and check every file recipe',
  builder: (y) =>
    withStore(y)
      .positional('mountpoint', { type: 'string', describe: 'a slinkyfs mountpoint (its store is checked)' })
      .example('$0 verify --store ./st', 'check a store; exit status 1 if damaged'),
  handler: async (args) => {
    const dead = args.mountpoint ? deadMountOf(args.mountpoint) : undefined;
    if (dead) process.stderr.write(deadMountNote(dead));
    const store = await openStoreForReading(storeDirFrom(args), { checkEveryPage: true });
    try {
      const r = verifyStore(store);
      for (const d of r.damage) process.stdout.write(`${d.kind}: ${d.what}\n`);
      const serious = r.damage.filter((d) => d.kind !== 'unreferenced');
      const absent = r.notYetFetched ? `, ${r.notYetFetched} chunks not yet fetched from a peer` : '';
      process.stdout.write(`${r.filesChecked} files, ${r.chunksChecked} chunks checked${absent}: ${serious.length ? `${serious.length} problems` : 'no damage'}${r.damage.length > serious.length ? ` (${r.damage.length - serious.length} unreferenced chunks)` : ''}\n`);
      if (serious.length) process.exitCode = 1;
    } finally {
      await store.close();
    }
  },
};
export default command;
