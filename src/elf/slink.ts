// slink: turn a dynamically linked program into one self-contained file. The output is the loader
// stub (build/stub, from native/stub.c) followed by the program, its libraries in the loader's
// load order and the loader itself, each byte-identical to its original and page-aligned, then
// the manifest (with the page digest table) and the trailer. See docs/FORMAT.md "Slinked file".
import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { digestOf, DEFAULT_ALGORITHM, type Digest, type HashAlgorithm } from '../chunking/digest';
import { readElf, type ElfFile } from './elfFile';
import { SlinkOutputError, UnsupportedElfError } from './errors';
import { Resolver, type Closure, type LoadedObject } from './resolve';
import { layoutSlinkedFile } from './layout';
import { encodeMailbox, encodeManifest, encodeTrailer, mailboxOffset, MAX_OBJECTS, type ManifestObject, type ObjectRole, type PageRun } from './manifest';
import { pageDigestRuns } from './pageDigests';
import { isSlinked } from './slinkedFile';

/** Why slink declined an input. The CLI reports `message`; --dir mode lists `reason` as a skip. */
export type RefusalReason = 'already-slinked' | 'library' | 'static' | 'set-id' | 'not-elf' | 'script' | 'foreign' | 'not-regular' | 'unmatchable';

export class SlinkRefusal extends Error {
  override name = 'SlinkRefusal';
  constructor(
    message: string,
    readonly reason: RefusalReason,
  ) {
    super(message);
  }
}

export interface SlinkOptions {
  /** Slink set-id programs (the output loses the set-id bits) and copy static programs as they are. */
  readonly force?: boolean;
  /** Page digest algorithm, or null for a file without a digest table (`slinkyfs digest` adds one). */
  readonly digestAlgorithm?: HashAlgorithm | null;
  /** Shared across calls in --dir mode: library lookups and object digests are done once. */
  readonly context?: SlinkContext;
}

export type SlinkResult =
  | { readonly kind: 'slinked'; readonly output: string; readonly size: number; readonly objects: readonly ManifestObject[] }
  | { readonly kind: 'copied-static'; readonly output: string; readonly size: number };

/** State worth keeping between inputs: the resolver's caches and digests of objects already read. */
export class SlinkContext {
  readonly resolver = new Resolver();
  private readonly digests = new Map<string, { digest: Digest; runs: PageRun[] }>();
  private stubBytes?: Buffer;

  stub(): Buffer {
    this.stubBytes ??= readFileSync(stubPath());
    return this.stubBytes;
  }

  private mailboxAt?: number;
  mailboxOffset(): number {
    this.mailboxAt ??= mailboxOffset(this.stub());
    return this.mailboxAt;
  }

  /** Digests of an object's bytes, memoised by file identity (device, inode, size, mtime). */
  digestsOf(key: string, bytes: Buffer, elf: ElfFile, algorithm: HashAlgorithm | null): { digest: Digest; runs: PageRun[] } {
    const cacheKey = `${key}\0${algorithm}`;
    let d = this.digests.get(cacheKey);
    if (!d) {
      d = { digest: digestOf(bytes), runs: algorithm ? pageDigestRuns(bytes, elf.programHeaders, algorithm) : [] };
      this.digests.set(cacheKey, d);
    }
    return d;
  }
}

/** build/stub of this checkout: from src/elf or dist/src/elf, walk up to the directory with package.json. */
export function stubPath(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) {
      const stub = path.join(dir, 'build', 'stub');
      if (!existsSync(stub)) throw new Error(`${stub} is missing: run \`make build\``);
      return stub;
    }
  }
  throw new Error('cannot find the project root (package.json) to locate build/stub');
}

const SET_ID_BITS = 0o6000;

/** Checks that make an input unfit before any library is looked up. */
async function screen(input: string, force: boolean): Promise<{ elf: ElfFile; mode: number }> {
  const st = await fs.stat(input);
  if (!st.isFile()) throw new SlinkRefusal(`${input} is not a regular file`, 'not-regular');
  if (await isSlinked(input)) throw new SlinkRefusal(`${input} is already slinked; nothing to do`, 'already-slinked');
  let elf: ElfFile;
  try {
    elf = await readElf(input);
  } catch (err) {
    if (err instanceof UnsupportedElfError && err.reason !== 'static') {
      const reason = err.reason === 'not-elf' ? 'not-elf' : err.reason === 'script' ? 'script' : 'foreign';
      throw new SlinkRefusal(err.message, reason);
    }
    throw err;
  }
  // Before the static test: a library without DT_NEEDED would otherwise read as a static program.
  if (elf.isLibrary) {
    throw new SlinkRefusal(`${input} is a shared library, not a program: slink takes programs, and their libraries go in with them`, 'library');
  }
  if (st.mode & SET_ID_BITS && !force) {
    throw new SlinkRefusal(
      `${input} is set-${st.mode & 0o4000 ? 'uid' : 'gid'}: a slinked copy would run without that privilege (use --force to slink it anyway)`,
      'set-id',
    );
  }
  return { elf, mode: st.mode };
}

/**
 * The loader satisfies each DT_NEEDED from the preloaded objects only by SONAME; a name it cannot
 * match would send it searching the host's directories at run time, silently.
 */
function checkMatchable(closure: Closure): void {
  const provided = new Set<string>();
  for (const o of [...closure.libraries, closure.interpreter]) if (o.soname) provided.add(o.soname);
  for (const o of [closure.program, ...closure.libraries]) {
    for (const name of o.elf.needed) {
      if (!provided.has(name)) {
        throw new SlinkRefusal(
          `${name} (needed by ${o.path}) resolves to a library whose SONAME is not "${name}": the loader could not match the embedded copy`,
          'unmatchable',
        );
      }
    }
  }
}

interface Planned {
  readonly role: ObjectRole;
  readonly name: string;
  readonly path: string;
  readonly obj: LoadedObject;
}

function plan(input: string, closure: Closure): Planned[] {
  const name = (o: LoadedObject) => o.soname ?? path.basename(o.path);
  return [
    { role: 'program', name: path.basename(input), path: path.resolve(input), obj: closure.program },
    ...closure.libraries.map((o) => ({ role: 'library' as const, name: name(o), path: o.path, obj: o })),
    // The stub hands this path to the loader as its argv[0], as the kernel would have.
    { role: 'interpreter', name: name(closure.interpreter), path: closure.program.elf.interpreter ?? closure.interpreter.path, obj: closure.interpreter },
  ];
}

/**
 * The temporary file's name is ours, not the user's: an error about it (its directory is missing
 * or read-only, the disk is full) is reported about the output the user named, keeping the
 * error's code so the CLI classifies it as before.
 */
function aboutOutput(err: unknown, tmp: string, requested: string): unknown {
  const e = err as NodeJS.ErrnoException | undefined;
  if (!e?.code || e.path !== tmp) return err;
  const message = e.message.split(`'${tmp}'`).join(`'${requested}'`);
  return Object.assign(new Error(message), { code: e.code, errno: e.errno, syscall: e.syscall, path: requested });
}

async function writeAtomically(requested: string, mode: number, write: (fh: fs.FileHandle) => Promise<number>): Promise<number> {
  // The new file is renamed over the old: through a symbolic link to its target (as a shell's
  // `>` writes through one), and never over a device node, FIFO or socket (`-o /dev/null`).
  const output = await fs.realpath(requested).catch(() => requested);
  const existing = await fs.stat(output).catch(() => undefined);
  if (existing?.isDirectory()) throw new SlinkOutputError(`${requested} is a directory (-o names the file to write)`);
  if (existing && !existing.isFile()) throw new SlinkOutputError(`${requested} exists and is not a regular file`);
  const tmp = path.join(path.dirname(output), `.${path.basename(output)}.slinky-${process.pid}.tmp`);
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(tmp, 'w', 0o600);
    const size = await write(fh);
    await fh.chmod(mode);
    await fh.close();
    fh = undefined;
    await fs.rename(tmp, output);
    return size;
  } catch (err) {
    await fh?.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw aboutOutput(err, tmp, requested);
  }
}

async function writeAll(fh: fs.FileHandle, buf: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, offset + done);
    done += bytesWritten;
  }
}

/** Slinks `input` into `output`. Throws SlinkRefusal for inputs it declines, MissingLibraryError, ElfFormatError. */
export async function slinkFile(input: string, output: string, opts: SlinkOptions = {}): Promise<SlinkResult> {
  const ctx = opts.context ?? new SlinkContext();
  const algorithm = opts.digestAlgorithm === undefined ? DEFAULT_ALGORITHM : opts.digestAlgorithm;
  const { elf, mode } = await screen(input, !!opts.force);
  // Set-id bits never carry over: the stub drops the privilege anyway (see native/stub.c).
  const outMode = mode & 0o777;

  if (elf.isStatic) {
    if (!opts.force) {
      throw new SlinkRefusal(`${input} is statically linked: it needs no slinking (use --force to copy it as it is)`, 'static');
    }
    const size = await writeAtomically(output, outMode, async (fh) => {
      const bytes = await fs.readFile(input);
      await writeAll(fh, bytes, 0);
      return bytes.length;
    });
    return { kind: 'copied-static', output, size };
  }

  const closure = await ctx.resolver.resolveClosure(input);
  checkMatchable(closure);
  const planned = plan(input, closure);
  if (planned.length > MAX_OBJECTS) throw new SlinkRefusal(`${input} needs ${planned.length} objects; a slinked file holds at most ${MAX_OBJECTS}`, 'unmatchable');

  const stub = ctx.stub();
  const layout = layoutSlinkedFile(stub.length, planned.map((p) => p.obj.size));
  const objects: ManifestObject[] = [];
  const size = await writeAtomically(output, outMode, async (fh) => {
    await writeAll(fh, stub, 0);
    for (let i = 0; i < planned.length; i++) {
      const p = planned[i];
      const bytes = await fs.readFile(p.obj.realPath);
      if (bytes.length !== p.obj.size) throw new Error(`${p.obj.realPath} changed size while being slinked`);
      const st = await fs.stat(p.obj.realPath);
      const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
      const { digest, runs } = ctx.digestsOf(key, bytes, p.obj.elf, algorithm);
      await writeAll(fh, bytes, layout.objectOffsets[i]);
      objects.push({ role: p.role, name: p.name, path: p.path, offset: layout.objectOffsets[i], size: bytes.length, digest, runs });
    }
    const manifest = encodeManifest({ objects, pageDigestAlgorithm: algorithm });
    const trailer = encodeTrailer({ manifestOffset: layout.manifestOffset, manifestLength: manifest.length });
    // Zero padding between the last object and the manifest comes from writing past the end.
    await writeAll(fh, Buffer.concat([manifest, trailer]), layout.manifestOffset);
    const mailbox = encodeMailbox({ objects, pageDigestAlgorithm: algorithm }, layout.manifestOffset);
    if (mailbox) await writeAll(fh, mailbox, ctx.mailboxOffset());
    return layout.manifestOffset + manifest.length + trailer.length;
  });
  return { kind: 'slinked', output, size, objects };
}
