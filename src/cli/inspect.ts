// `slinkyfs inspect FILE`: what a slinked file carries and where.
import type { CommandModule } from 'yargs';
import { UserError } from './errors';
import { digestToString } from '../chunking/digest';
import { SlinkedFormatError } from '../elf/manifest';
import { NotSlinkedError, openSlinked } from '../elf/slinkedFile';

interface Args {
  file: string;
  json: boolean;
}

const command: CommandModule<object, Args> = {
  command: 'inspect <file>',
  describe: 'List the objects in a slinked file: offsets, sizes, sonames, code pages, digests',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'slinked file' })
      .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
  handler: async (args) => {
    let file;
    try {
      file = await openSlinked(args.file);
    } catch (err) {
      if (err instanceof NotSlinkedError || err instanceof SlinkedFormatError) throw new UserError(err.message);
      if ((err as NodeJS.ErrnoException).code) throw new UserError(`cannot read ${args.file}: ${(err as Error).message}`);
      throw err;
    }
    const m = file.manifest;
    const objects = m.objects.map((o) => ({
      role: o.role,
      name: o.name,
      path: o.path,
      offset: o.offset,
      size: o.size,
      codePages: o.runs.reduce((n, r) => n + r.digests.length, 0),
      digest: digestToString(o.digest),
    }));
    const summary = {
      file: file.path,
      size: file.size,
      stubSize: m.objects[0].offset,
      manifestOffset: file.trailer.manifestOffset,
      manifestLength: file.trailer.manifestLength,
      pageSize: 4096,
      pageDigestAlgorithm: m.pageDigestAlgorithm,
      objects,
    };
    if (args.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      return;
    }
    const rows = [['role', 'name', 'offset', 'size', 'code pages', 'path'], ...objects.map((o) => [o.role, o.name, `0x${o.offset.toString(16)}`, String(o.size), String(o.codePages), o.path])];
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
    const out = [
      `${file.path}: ${file.size} bytes, ${objects.length} objects, page digests: ${m.pageDigestAlgorithm ?? 'none'}`,
      `manifest at 0x${file.trailer.manifestOffset.toString(16)} (${file.trailer.manifestLength} bytes)`,
      ...rows.map((r) => r.map((cell, c) => (c === rows[0].length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  },
};

export default command;
