// Page digests of an object's code: the unit the page cache (GDT) shares by. Only executable,
// read-only PT_LOAD segments count: their pages are mapped straight from the file and never
// written, so two processes holding the same page digest can hold the same physical page.
import { digestOf, type Digest, type HashAlgorithm } from '../chunking/digest';
import { PAGE_SIZE, type PageRun } from './manifest';

/** The fields of a program header this module reads (the ELF reader's ProgramHeader has them). */
export interface SegmentHeader {
  readonly type: number;
  readonly flags: number;
  readonly offset: number;
  readonly filesz: number;
}

const PT_LOAD = 1;
const PF_X = 1;
const PF_W = 2;

export interface PageSpan {
  readonly segment: number;
  readonly firstPage: number;
  readonly pageCount: number;
}

/**
 * The pages of each code segment: the file range [p_offset rounded down to 4096,
 * p_offset + p_filesz rounded up), in pages counted from the object's first byte.
 */
export function codePageSpans(headers: readonly SegmentHeader[]): PageSpan[] {
  const spans: PageSpan[] = [];
  headers.forEach((h, segment) => {
    if (h.type !== PT_LOAD || !(h.flags & PF_X) || h.flags & PF_W || h.filesz === 0) return;
    const firstPage = Math.floor(h.offset / PAGE_SIZE);
    const endPage = Math.ceil((h.offset + h.filesz) / PAGE_SIZE);
    spans.push({ segment, firstPage, pageCount: endPage - firstPage });
  });
  return spans;
}

/** Digest of page `page` of `object`; a page reaching past the object's end is zero-padded. */
export function pageDigest(object: Buffer, page: number, algorithm: HashAlgorithm): Digest {
  const start = page * PAGE_SIZE;
  const bytes = object.subarray(start, start + PAGE_SIZE);
  if (bytes.length === PAGE_SIZE) return digestOf(bytes, algorithm);
  return digestOf([bytes, Buffer.alloc(PAGE_SIZE - bytes.length)], algorithm);
}

export function pageDigestRuns(object: Buffer, headers: readonly SegmentHeader[], algorithm: HashAlgorithm): PageRun[] {
  return codePageSpans(headers).map((s) => {
    const digests: Digest[] = [];
    for (let p = s.firstPage; p < s.firstPage + s.pageCount; p++) digests.push(pageDigest(object, p, algorithm));
    return { segment: s.segment, firstPage: s.firstPage, digests };
  });
}
