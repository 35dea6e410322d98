// Where the page cache keeps its files inside the mount. Each unique embedded object gets ONE
// path named by its whole-object digest, so one inode and one kernel page cache serve every
// process that runs a slinked file containing it. The stub (native/stub.c) builds the same names.
import { digestFromString, digestToString, type Digest } from '../chunking/digest';
import { DigestFormatError } from '../chunking/digest';

export const SLINKY_NAME = '.slinky';
export const SLINKY_DIR = `/${SLINKY_NAME}`;
/** Published objects: `<algorithm>-<hex>` of their whole-object digest, read-only. */
export const OBJECTS_DIR = `${SLINKY_DIR}/objects`;
/** One page table per published object (same name): the digest of every page (pageTable.ts). */
export const PAGES_DIR = `${SLINKY_DIR}/pages`;
/** Objects being written; renamed into OBJECTS_DIR once verified, emptied at start-up. */
export const TMP_DIR = `${SLINKY_DIR}/tmp`;

/** Modes: nobody writes into the shared tree (the FUSE boundary also refuses; see guard.ts). */
export const DIR_MODE = 0o755;
export const TMP_DIR_MODE = 0o700;
export const OBJECT_MODE = 0o444;

export function objectName(digest: Digest): string {
  return digestToString(digest);
}

/** The digest an object file name stands for, or undefined for any other name. */
export function digestOfName(name: string): Digest | undefined {
  try {
    return digestFromString(name);
  } catch (err) {
    if (err instanceof DigestFormatError) return undefined;
    throw err;
  }
}

export const objectPath = (name: string) => `${OBJECTS_DIR}/${name}`;
export const pageTablePath = (name: string) => `${PAGES_DIR}/${name}`;
