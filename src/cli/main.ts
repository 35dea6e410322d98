// src/cli: the `slinkyfs` command. One module per subcommand, each exporting a yargs
// CommandModule; main() wires them together and maps errors to exit codes in one place.
import fs from 'node:fs';
import path from 'node:path';
import { isUtf8 } from 'node:buffer';
import yargs from 'yargs';
import type { CommandModule, MiddlewareFunction } from 'yargs';
import { decodeName } from '../store/names';
import { UserError } from './errors';
import { exitCodeFor, describeError } from './exitCodes';

// Subcommand modules, loaded lazily so `slinkyfs --help` does not pay for FUSE or LMDB.
const COMMANDS: ReadonlyArray<() => CommandModule<any, any>> = [
  () => require('./slink').default,
  () => require('./digest').default,
  () => require('./inspect').default,
  () => require('./mount').default,
  () => require('./umount').default,
  () => require('./stats').default,
  () => require('./verify').default,
  () => require('./gc').default,
  () => require('./serve').default,
  () => require('./get').default,
  () => require('./seed').default,
];

function packageVersion(): string {
  // dist/src/cli or src/cli: walk up to the project's package.json.
  let dir = __dirname;
  for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')).version;
  }
  return 'unknown';
}

/** Exit status of a program whose reader went away (128 + SIGPIPE), as `ls | head` leaves ls. */
const EXIT_BROKEN_PIPE = 141;

/**
 * yargs calls middleware with the parser of the command being run (the typings leave it out),
 * whose options say which ones are repeatable.
 */
function lastValueWins(argv: Record<string, unknown>, y: { getOptions(): { array: string[] } }): void {
  const arrays = new Set<string>(y.getOptions().array);
  for (const [key, value] of Object.entries(argv)) {
    if (key !== '_' && Array.isArray(value) && !arrays.has(key)) argv[key] = value[value.length - 1];
  }
}

/**
 * Node hands arguments over decoded as UTF-8, with every invalid byte turned into U+FFFD, so a
 * name that is not UTF-8 would silently become another name (`slink -o $'\\xff'` writing to
 * "\uFFFD"). The kernel's copy of the arguments has the bytes: refuse such an argument, naming
 * its bytes, rather than act on a name the user did not give.
 */
function refuseNonUtf8(argv: string[]): void {
  let raw: Buffer;
  try {
    raw = fs.readFileSync('/proc/self/cmdline');
  } catch {
    return; // no /proc: nothing to compare with
  }
  const all = raw.subarray(0, raw.length - 1).toString('latin1').split('\0').map((s) => Buffer.from(s, 'latin1'));
  if (all.length < argv.length) return;
  const ours = all.slice(all.length - argv.length);
  // Only when these are the arguments main was given (not a caller's own list).
  if (!ours.every((b, i) => b.toString('utf8') === argv[i])) return;
  const bad = ours.findIndex((b) => !isUtf8(b));
  if (bad < 0) return;
  const shown = decodeName(ours[bad]).replace(/[\udc80-\udcff]/g, (c) => `\\x${(c.charCodeAt(0) - 0xdc00).toString(16).padStart(2, '0')}`);
  throw new UserError(`argument ${bad + 1} is not valid UTF-8 ("${shown}"): slinkyfs takes names in UTF-8; rename it, or reach it through a symbolic link whose name is`);
}

export async function main(argv: string[]): Promise<void> {
  // Node ignores SIGPIPE, so `slinkyfs stats | head` would die of an unhandled EPIPE with a
  // stack trace; stop quietly instead, as a program killed by SIGPIPE does. Any other failure
  // to write the output (a full disk under `> file`) is one line, like every other error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE);
    const failure = new UserError(`cannot write the output: ${err.message}`, 3);
    process.stderr.write(`slinkyfs: ${describeError(failure)}\n`);
    process.exit(exitCodeFor(failure));
  });
  const version = packageVersion();
  let parser = yargs(argv)
    .scriptName('slinkyfs')
    .usage('$0 <command> [options]\n\nStatic linking reloaded: digest-based sharing of slinked executables.')
    .version(version)
    .strict()
    // `-o a -o b` means b, as in most tools; an array would reach commands that expect one
    // value. Options declared as arrays (`--peer`, repeatable) keep every value.
    .middleware(lastValueWins as unknown as MiddlewareFunction, true)
    .demandCommand(1, 'name a command (see --help)')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((msg, err) => {
      // yargs' own parse failures (e.g. an option that wants a value and got none) arrive as a
      // YError: bad usage, not an internal error. Anything else is a command's own failure.
      if (err && err.name !== 'YError') throw err;
      const text = msg || err?.message || 'bad usage';
      const noValue = /^Not enough arguments following: (.+)$/.exec(text);
      throw new UserError(noValue ? `${noValue[1].length === 1 ? '-' : '--'}${noValue[1]} wants a value` : text);
    });
  for (const load of COMMANDS) parser = parser.command(load());
  // yargs prints --help and --version with console.log, which drops write errors, and then exits
  // at once: `--help > /dev/full` lost the help and exited 0. Given a parse callback, it hands
  // the text over instead, and the write below reports a failure like any other output's.
  let shown = '';
  try {
    refuseNonUtf8(argv);
    await parser.parseAsync(argv, (_err: unknown, _argv: unknown, output: string) => {
      shown = output;
    });
    if (shown) process.stdout.write(`${shown}\n`);
  } catch (err) {
    process.exitCode = exitCodeFor(err);
    process.stderr.write(`slinkyfs: ${describeError(err)}\n`);
    if (process.env.SLINKYFS_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  }
}
