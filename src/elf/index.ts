// src/elf: ELF reading and writing. elfFile.ts reads ELF headers (our own reader), resolve.ts finds
// a program's libraries the way glibc's loader does, slink.ts writes slinked files (stub + objects
// + manifest, layout.ts/manifest.ts), pageDigests.ts digests code pages, slinkedFile.ts reads
// slinked files back and rewrites or verifies their digest table.
export { parseElf, readElf, type ElfFile, type ProgramHeader } from './elfFile';
export { ElfFormatError, UnsupportedElfError, MissingLibraryError } from './errors';
export { slinkFile, SlinkContext, SlinkRefusal, stubPath, type SlinkOptions, type SlinkResult } from './slink';
export { openSlinked, isSlinked, readObject, recomputeDigests, verifyDigests, NotSlinkedError, type SlinkedFile } from './slinkedFile';
export { decodeManifest, encodeManifest, SlinkedFormatError, PAGE_SIZE, type Manifest, type ManifestObject, type PageRun } from './manifest';
export { codePageSpans, pageDigest, pageDigestRuns } from './pageDigests';
