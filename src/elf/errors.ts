// Typed errors of the ELF reader and the dependency resolver. Callers map them once: the CLI to
// exit codes, slink to a one-line refusal. Every message names the file it is about.

/** The input claims to be an ELF file we could read, but its contents are malformed, truncated or hostile. */
export class ElfFormatError extends Error {
  override name = 'ElfFormatError';
  constructor(message: string) {
    super(message);
  }
}

/**
 * Why a file is not something we handle. The resolver needs the reason: like glibc's loader it
 * silently skips search candidates of another class or machine, but stops at anything else.
 */
export type UnsupportedReason =
  | 'not-elf'
  | 'script'
  | 'class'
  | 'endian'
  | 'machine'
  | 'osabi'
  | 'type'
  | 'static';

/** A well-formed file that is not a little-endian x86-64 ELF object (or not a dynamic program). */
export class UnsupportedElfError extends Error {
  override name = 'UnsupportedElfError';
  constructor(
    message: string,
    readonly reason: UnsupportedReason,
  ) {
    super(message);
  }
}

/** A DT_NEEDED entry that the loader's search would not find. */
export class MissingLibraryError extends Error {
  override name = 'MissingLibraryError';
  constructor(
    readonly soname: string,
    readonly neededBy: string,
  ) {
    super(`${soname} (needed by ${neededBy}) not found`);
  }
}

/** The file slink or digest was asked to write cannot be written as asked (it is a device, say). */
export class SlinkOutputError extends Error {
  override name = 'SlinkOutputError';
  readonly exitCode = 2;
}
