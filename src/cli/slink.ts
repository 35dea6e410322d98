// `slinkyfs slink`: one program, or every file of a directory, into slinked files.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { UserError } from './errors';
import { progressBar } from './progress';
import { SlinkContext, SlinkRefusal, slinkFile, type SlinkResult } from '../elf/slink';
import { ElfFormatError, MissingLibraryError, UnsupportedElfError } from '../elf/errors';
import { SlinkedFormatError } from '../elf/manifest';
import { makeDirs } from '../store/dirs';

interface Args {
  input?: string;
  output?: string;
  dir?: string;
  force: boolean;
  digests: boolean;
}

const FILE_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ELOOP: 'too many levels of symbolic links',
};

/** Errors that describe the input, not a bug: one line, no stack. */
function inputProblem(err: unknown): string | null {
  if (
    err instanceof SlinkRefusal ||
    err instanceof MissingLibraryError ||
    err instanceof ElfFormatError ||
    err instanceof UnsupportedElfError ||
    err instanceof SlinkedFormatError
  ) {
    return err.message;
  }
  const e = err as NodeJS.ErrnoException | undefined;
  const text = e?.code ? FILE_ERRORS[e.code] : undefined;
  if (text) return e!.path ? `${e!.path}: ${text}` : text;
  return null;
}

function describe(r: SlinkResult): string {
  if (r.kind === 'copied-static') return `${r.output}: statically linked, copied as it is (${r.size} bytes)`;
  return `${r.output}: ${r.objects.length} objects, ${r.size} bytes`;
}

async function slinkOne(args: Args): Promise<void> {
  const input = args.input!;
  const output = args.output ?? `${path.basename(input)}.slinked`;
  try {
    const r = await slinkFile(input, output, { force: args.force, digestAlgorithm: args.digests ? undefined : null });
    process.stdout.write(`${describe(r)}\n`);
  } catch (err) {
    // Already slinked: the wanted state exists, so it is a report and not a failure.
    if (err instanceof SlinkRefusal && err.reason === 'already-slinked') {
      process.stderr.write(`slinkyfs: ${err.message}\n`);
      return;
    }
    const problem = inputProblem(err);
    if (problem) throw new UserError(`cannot slink ${input}: ${problem}`);
    throw err;
  }
}

interface Outcome {
  readonly name: string;
  readonly status: 'done' | 'skipped' | 'failed';
  readonly detail: string;
}

async function slinkDir(args: Args): Promise<void> {
  const dir = args.dir!;
  if (!args.output) throw new UserError('--dir needs -o OUTDIR');
  const outDir = args.output;
  let entries: string[];
  try {
    entries = (await fs.readdir(dir)).sort();
  } catch (err) {
    throw new UserError(`cannot read ${dir}: ${(err as Error).message}`);
  }
  await makeDirs(outDir);
  const ctx = new SlinkContext();
  const outcomes: Outcome[] = [];
  const bar = progressBar(entries.length);
  // Symbolic links: one into DIR is recreated (its target is slinked under its own name); one
  // leading out of DIR is followed, unless that file was already slinked under another name.
  const seen = new Map<string, string>();
  const absDir = await fs.realpath(dir);
  for (const name of entries) {
    bar.tick(name);
    const input = path.join(dir, name);
    const target = path.join(outDir, name);
    try {
      const lst = await fs.lstat(input);
      if (lst.isSymbolicLink()) {
        const link = await fs.readlink(input);
        const real = await fs.realpath(input).catch(() => null);
        if (real && path.dirname(real) === absDir) {
          await fs.rm(target, { force: true });
          // Point at the slinked sibling, not through absolute paths back to the dynamic one.
          await fs.symlink(path.basename(real), target);
          outcomes.push({ name, status: 'skipped', detail: `${name}: symbolic link to ${path.basename(real)}, recreated` });
          continue;
        }
        if (!real) {
          outcomes.push({ name, status: 'skipped', detail: `${name}: dangling symbolic link to ${link}` });
          continue;
        }
      }
      const st = await fs.stat(input);
      if (!st.isFile()) {
        outcomes.push({ name, status: 'skipped', detail: `${name}: not a regular file` });
        continue;
      }
      const identity = `${st.dev}:${st.ino}`;
      const earlier = seen.get(identity);
      if (earlier) {
        await fs.rm(target, { force: true });
        await fs.link(path.join(outDir, earlier), target).catch(() => fs.symlink(earlier, target));
        outcomes.push({ name, status: 'skipped', detail: `${name}: same file as ${earlier}, linked` });
        continue;
      }
      seen.set(identity, name);
      const r = await slinkFile(input, target, { force: args.force, context: ctx, digestAlgorithm: args.digests ? undefined : null });
      outcomes.push({ name, status: 'done', detail: describe(r) });
    } catch (err) {
      const problem = inputProblem(err);
      if (err instanceof SlinkRefusal) outcomes.push({ name, status: 'skipped', detail: err.message });
      else if (problem) outcomes.push({ name, status: 'failed', detail: problem });
      else outcomes.push({ name, status: 'failed', detail: `${name}: internal error: ${(err as Error).message}` });
    }
  }
  bar.done();
  const count = (s: Outcome['status']) => outcomes.filter((o) => o.status === s).length;
  for (const o of outcomes) if (o.status !== 'done') process.stdout.write(`${o.status}: ${o.detail}\n`);
  process.stdout.write(`slinked ${count('done')}, skipped ${count('skipped')}, failed ${count('failed')} (of ${outcomes.length} in ${dir})\n`);
  if (count('failed') > 0) process.exitCode = 1;
}

const command: CommandModule<object, Args> = {
  command: 'slink [input]',
  describe: 'Make a dynamically linked program self-contained: one file with its libraries and loader',
  builder: (y) =>
    y
      .positional('input', { type: 'string', describe: 'program to slink' })
      .option('output', { requiresArg: true, alias: 'o', type: 'string', describe: 'output file (default: INPUT.slinked here), or OUTDIR with --dir' })
      .option('dir', { requiresArg: true, type: 'string', describe: 'slink every program in this directory into -o OUTDIR' })
      .option('force', { type: 'boolean', default: false, describe: 'slink set-id programs (without the privilege); copy static ones' })
      .option('digests', { type: 'boolean', default: true, describe: 'write the page digest table (--no-digests to leave it out)' })
      .check((a) => {
        if (!a.input === !a.dir) throw new UserError('name one INPUT or --dir DIR');
        // `-o "$UNSET"` must not write a file with no name in the current directory.
        if (a.output === '') throw new UserError(a.dir ? '-o needs a directory' : '-o needs a file name');
        return true;
      }),
  handler: async (args) => {
    if (args.dir) await slinkDir(args);
    else await slinkOne(args);
  },
};

export default command;
