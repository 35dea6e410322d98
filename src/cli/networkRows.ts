// The network part of `slinkyfs stats --net`, as rows of the stats table: per peer, what its
// files needed, what was already here and never fetched, and what came over the wire.
import type { NetworkReport, PeerReport } from '../net/networkReport';
import { formatBytes } from './units';

const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : '-');

function peerRows(p: PeerReport): string[][] {
  const m = p.mirror;
  const failed = p.unavailable + p.refused + p.protocol;
  return [
    [p.name, m.error ? `cannot mirror ${m.path}: ${m.error}` : `${m.path}: ${m.entries} entries listed, ${m.created} created here`],
    ['  chunks its files need', `${m.chunks} (${formatBytes(m.chunkBytes)})`],
    ['  already here, never fetched', `${m.localChunks} (${formatBytes(m.localBytes)})`],
    ['  fetched, verified', `${p.chunks} (${formatBytes(p.chunkBytes)})`],
    ['  received', `${formatBytes(p.bytesIn)}: chunk data ${formatBytes(p.payloadBytes)} for ${formatBytes(p.chunkBytes)} of chunks (${ratio(p.chunkBytes, p.payloadBytes)}); sent ${formatBytes(p.bytesOut)}`],
    ['  requests', `${p.requests}, ${failed} failed (${p.unavailable} unavailable, ${p.refused} refused, ${p.protocol} broke the protocol)`],
    ['  chunks that did not match', String(p.badChunks)],
    ...(p.setAside ? [['  set aside', `after: ${p.lastError ?? 'a failure'}`]] : []),
  ];
}

export function networkRows(n: NetworkReport): string[][] {
  const r = n.reads;
  const pf = n.prefetch;
  return [
    ...n.peers.flatMap(peerRows),
    ['chunk reads answered', `${r.local} here, ${r.seeded} from seeds, ${r.fetched} from peers, ${r.missing} nowhere`],
    ['prefetch', pf.state === 'off' ? 'off' : `${pf.state}: ${pf.fetched} of ${pf.wanted} absent chunks fetched${pf.error ? ` (${pf.error})` : ''}`],
    ['chunks stored on arrival', String(n.stored)],
    ...(n.serving ? [[`serving on ${n.serving.address}`, `${n.serving.requests} requests, ${n.serving.chunksSent} chunks sent, ${formatBytes(n.serving.replyBytes)}`]] : []),
  ];
}
