// `slinkyfs serve`: serve a store read-only to peers until interrupted. Works whether or not the
// store is mounted (LMDB lets a reader share it with the daemon).
import type { CommandModule } from 'yargs';
import { PeerServer } from '../net/server';
import { NotServedError } from '../net/storeView';
import { UserError } from './errors';
import { openStoreForReading } from './openStore';
import { storeDirFrom, withStore } from './storeArg';

interface Args {
  store?: string;
  listen: string;
  root: string;
  'keepalive-ms': number;
}

/** "HOST:PORT", "[v6]:PORT" or ":PORT" / "PORT" (loopback), as given to `option`. */
export function parseListen(text: string, option = '--listen'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  if (!m) throw new UserError(`${option} ${text || "''"}: use HOST:PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw new UserError(`${option} ${text}: port out of range`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

const command: CommandModule<object, Args> = {
  command: 'serve',
  describe: 'serve a store read-only to peers (`slinkyfs get`, `mount --peer`)',
  builder: (y) =>
    withStore(y)
      .option('listen', { requiresArg: true, type: 'string', default: '127.0.0.1:7070', describe: 'address to listen on (port 0: any free port)' })
      .option('root', { requiresArg: true, type: 'string', default: '/', describe: 'serve only this directory of the store' })
      .option('keepalive-ms', { requiresArg: true, type: 'number', default: 5000, hidden: true, describe: 'interval of keep-alive blocks while packing' })
      .example('$0 serve --store ./st --listen 0.0.0.0:7070', 'serve a store to the network'),
  handler: async (args) => {
    const { host, port } = parseListen(args.listen);
    const storeDir = storeDirFrom({ store: args.store });
    const store = await openStoreForReading(storeDir);
    let server: PeerServer;
    try {
      server = new PeerServer({ store, root: args.root, host, port, keepAliveMs: args['keepalive-ms'], log: (l) => process.stderr.write(`slinkyfs serve: ${l}\n`) });
    } catch (err) {
      await store.close();
      if (err instanceof NotServedError) throw new UserError(err.message);
      throw err;
    }
    let addr;
    try {
      addr = await server.listen();
    } catch (err) {
      await store.close();
      throw new UserError(`cannot listen on ${args.listen}: ${(err as Error).message}`, 3);
    }
    const shown = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
    process.stdout.write(`serving ${storeDir} on http://${shown}:${addr.port}\n`);
    await new Promise<void>((resolve) => {
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => resolve());
    });
    await server.close();
    await store.close();
  },
};

export default command;
