// `slinkyfs digest FILE`: add or refresh the page digest table of a slinked file; --verify
// recomputes and compares (exit 1 on any mismatch); --list prints the table.
import type { CommandModule } from 'yargs';
import { UserError } from './errors';
import { digestToString } from '../chunking/digest';
import { PAGE_SIZE, SlinkedFormatError } from '../elf/manifest';
import { ElfFormatError, UnsupportedElfError } from '../elf/errors';
import { NotSlinkedError, openSlinked, recomputeDigests, replaceManifest, verifyDigests, type SlinkedFile } from '../elf/slinkedFile';

interface Args {
  file: string;
  verify: boolean;
  list: boolean;
}

async function open(file: string): Promise<SlinkedFile> {
  try {
    return await openSlinked(file);
  } catch (err) {
    if (err instanceof NotSlinkedError || err instanceof SlinkedFormatError) throw new UserError(err.message);
    const code = (err as NodeJS.ErrnoException).code;
    if (code) throw new UserError(`cannot read ${file}: ${(err as Error).message}`);
    throw err;
  }
}

function list(file: SlinkedFile): void {
  const alg = file.manifest.pageDigestAlgorithm;
  if (!alg) throw new UserError(`${file.path} has no digest table (add one with \`slinkyfs digest\`)`, 1);
  const lines: string[] = [];
  for (const o of file.manifest.objects) {
    for (const run of o.runs) {
      run.digests.forEach((d, i) => {
        const page = run.firstPage + i;
        lines.push(`${o.name}\t${page}\t0x${(o.offset + page * PAGE_SIZE).toString(16)}\t${digestToString(d)}`);
      });
    }
  }
  process.stdout.write(lines.length ? `${lines.join('\n')}\n` : '');
}

async function verify(file: SlinkedFile): Promise<void> {
  let mismatches;
  try {
    mismatches = await verifyDigests(file);
  } catch (err) {
    if (err instanceof NotSlinkedError) throw new UserError(err.message, 1);
    throw err;
  }
  for (const m of mismatches) {
    const where = m.page === null ? 'whole-object digest' : `page ${m.page}`;
    process.stdout.write(`mismatch: ${m.object} ${where} (file offset 0x${m.offset.toString(16)})\n`);
  }
  const pages = file.manifest.objects.reduce((n, o) => n + o.runs.reduce((k, r) => k + r.digests.length, 0), 0);
  if (mismatches.length) {
    throw new UserError(`${file.path}: ${mismatches.length} digest mismatch${mismatches.length === 1 ? '' : 'es'}`, 1);
  }
  process.stdout.write(`${file.path}: ${pages} code pages and ${file.manifest.objects.length} objects verified (${file.manifest.pageDigestAlgorithm})\n`);
}

async function refresh(file: SlinkedFile): Promise<void> {
  let manifest;
  try {
    manifest = await recomputeDigests(file);
  } catch (err) {
    if (err instanceof ElfFormatError || err instanceof UnsupportedElfError) throw new UserError(err.message);
    throw err;
  }
  await replaceManifest(file, manifest);
  const pages = manifest.objects.reduce((n, o) => n + o.runs.reduce((k, r) => k + r.digests.length, 0), 0);
  process.stdout.write(`${file.path}: ${pages} code page digests (${manifest.pageDigestAlgorithm}) for ${manifest.objects.length} objects\n`);
}

const command: CommandModule<object, Args> = {
  command: 'digest <file>',
  describe: 'Add or refresh the code-page digest table of a slinked file',
  builder: (y) =>
    y
      .positional('file', {
        type: 'string',
        demandOption: true,
        describe: 'slinked file; rewritten as a new file renamed over it (owner, mode and extended attributes kept), so one with several hard links is refused',
      })
      .option('verify', { type: 'boolean', default: false, describe: 'recompute and compare; exit 1 on any mismatch' })
      .option('list', { type: 'boolean', default: false, describe: 'print object, page, file offset and digest of every code page' })
      .check((a) => {
        if (a.verify && a.list) throw new UserError('--verify and --list do not go together');
        return true;
      }),
  handler: async (args) => {
    const file = await open(args.file);
    if (args.verify) await verify(file);
    else if (args.list) list(file);
    else await refresh(file);
  },
};

export default command;
