// src/net: the peer module. A store served read-only over HTTP/1.1 (server.ts over storeView.ts),
// the client that checks every reply before use (client.ts, codecs and limits in protocol.ts),
// getting files and trees with only the chunks a machine lacks (get.ts, transfer.ts, and the
// store and file destinations storeSink.ts / fileSink.ts), building slinked files' chunks from
// local libraries (assemble.ts, compactRecipe.ts, layout.ts, localObjects.ts), and peers as
// chunk sources for a mount (peerSource.ts: batching and failover; lazyMount.ts). The wire
// format is docs/FORMAT.md, "Wire protocol".
export { PeerServer, type ServerOptions } from './server';
export { PeerClient, PeerRefusedError, PeerUnavailableError, parsePeer } from './client';
export { PeerProtocolError, fileDigest, encodeRecipe, decodeRecipe } from './protocol';
export { getIntoStore, getToFiles, type GetSummary } from './get';
export { FailoverSource, PeerSource } from './peerSource';
export { lazyMountSource } from './lazyMount';
