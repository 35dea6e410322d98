// What a mount with peers has fetched and what it did not need to: the network part of
// `slinkyfs stats --net`, reported by the daemon over its statistics socket (docs/FORMAT.md,
// "Statistics socket").
import type { PeerCounters } from './client';

/** Mirroring one peer's tree at mount time: what its files need, and how much was already here. */
export interface MirrorReport {
  path: string;
  /** Entries listed by the peer, and those created here (names that existed locally are kept). */
  entries: number;
  created: number;
  /** Unique chunks of the listed files, their plaintext bytes, and those the store already had. */
  chunks: number;
  chunkBytes: number;
  localChunks: number;
  localBytes: number;
  /** Set when the peer could not be mirrored (the rest of the report is then zero). */
  error?: string;
}

export interface PeerReport extends PeerCounters {
  name: string;
  mirror: MirrorReport;
  /** Bytes on the wire (HTTP included) and the chunk payload in them, compressed as sent. */
  bytesIn: number;
  bytesOut: number;
  payloadBytes: number;
  /** Failed lately and skipped for now (the others are asked first). */
  setAside: boolean;
  lastError?: string;
}

export type PrefetchState = 'off' | 'waiting' | 'running' | 'done' | 'stopped';

export interface NetworkReport {
  peers: PeerReport[];
  /** Chunk lookups of the read path, by where they were answered (missing: nowhere). */
  reads: { local: number; seeded: number; fetched: number; missing: number };
  /** The background fetch of every absent chunk after the mount. */
  prefetch: { state: PrefetchState; wanted: number; fetched: number; error?: string };
  /** Chunks that arrived (from peers or seeds) and were stored. */
  stored: number;
  /** `mount --serve`: what this daemon sent to its own clients. */
  serving?: { address: string; requests: number; chunksSent: number; replyBytes: number };
}

/** An empty mirror report, for a peer whose tree could not be listed. */
export function failedMirror(path: string, error: string): MirrorReport {
  return { path, entries: 0, created: 0, chunks: 0, chunkBytes: 0, localChunks: 0, localBytes: 0, error };
}
