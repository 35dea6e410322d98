// `slinkyfs seed DIR...`: index files already on this machine as chunk sources, without copying
// them into the store. `get` and `mount --peer` then take matching chunks from them (verified
// each time) instead of the network.
import fs from 'node:fs';
import type { CommandModule } from 'yargs';
import { SeedIndex } from '../store/seedSource';
import { UserError } from './errors';
import { storeDirFrom, withStore } from './storeArg';
import { formatBytes } from './units';
import { makeDirs } from '../store/dirs';

interface Args {
  dirs: string[];
  store?: string;
  json: boolean;
}

const command: CommandModule<object, Args> = {
  command: 'seed <dirs..>',
  describe: 'index local files (e.g. /usr/lib) as chunk sources, without copying them',
  builder: (y) =>
    withStore(y)
      .positional('dirs', { type: 'string', array: true, demandOption: true, describe: 'directories or files to index' })
      .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
      .example('$0 seed /usr/lib /usr/bin', 'let transfers reuse installed libraries and programs'),
  handler: async (args) => {
    for (const d of args.dirs) if (!fs.existsSync(d)) throw new UserError(`${d} does not exist`);
    const storeDir = storeDirFrom({ store: args.store });
    await makeDirs(storeDir);
    const index = (await SeedIndex.open(storeDir))!;
    try {
      const tty = process.stderr.isTTY;
      let last = 0;
      const r = await index.seed(args.dirs, (p, done) => {
        const now = Date.now();
        if (tty && now - last > 100) {
          last = now;
          process.stderr.write(`\r${done} files: ${p.slice(-60)}\x1b[K`);
        }
      });
      if (tty) process.stderr.write('\r\x1b[K');
      const total = index.chunkCount;
      if (args.json) process.stdout.write(JSON.stringify({ ...r, indexedChunks: total }) + '\n');
      else {
        process.stdout.write(
          `seeded ${r.files} files (${formatBytes(r.bytes)}, ${r.chunks} chunks), ${r.unchanged} unchanged, ${r.skipped} unreadable; ${total} chunks indexed\n`,
        );
      }
    } finally {
      await index.close();
    }
  },
};

export default command;
