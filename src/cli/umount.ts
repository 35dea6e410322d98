// `slinkyfs umount MOUNTPOINT`: ask the daemon to stop (it commits pending writes first) and
// wait for the mount to go; fall back to fusermount for a daemon that is gone.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { CommandModule } from 'yargs';
import { findSlinkyMount, resolveOutsideMounts } from '../fs/mountTable';
import { readLock } from '../store/lock';
import { UserError } from './errors';

const run = promisify(execFile);

const command: CommandModule<{}, { mountpoint: string }> = {
  command: 'umount <mountpoint>',
  aliases: ['unmount'],
  describe: 'unmount a slinkyfs mount and stop its daemon',
  builder: (y) =>
    y.positional('mountpoint', { type: 'string', demandOption: true }).example('$0 umount /slinky', 'stop serving /slinky'),
  handler: async (args) => {
    // Through a symbolic link too; the kernel's table holds the resolved path.
    const mountpoint = resolveOutsideMounts(args.mountpoint);
    const entry = findSlinkyMount(mountpoint);
    if (!entry) throw new UserError(`${args.mountpoint} is not a slinkyfs mount`);
    const holder = readLock(entry.source);
    if (holder) {
      process.kill(holder.pid, 'SIGTERM');
      for (let i = 0; i < 300; i++) {
        if (!findSlinkyMount(mountpoint) && !readLock(entry.source)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    try {
      await run('fusermount', ['-u', mountpoint]);
    } catch (err) {
      throw new UserError(`cannot unmount ${args.mountpoint}: ${(err as Error).message.split('\n').pop()}`, 3);
    }
  },
};
export default command;
