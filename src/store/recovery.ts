// Start-up clean-up after an unclean stop: files that were unlinked while still open (orphans)
// have no name a user could reach, so their data goes. Names are never judged: the mount answers
// FUSE's low-level protocol, which leaves no `.fuse_hidden*` stand-ins for open unlinked files,
// so a file of that name is a user's own (an earlier version deleted such files at every mount).
import { dropContent } from './fileContent';
import type { Store } from './store';

export async function recoverStore(store: Store): Promise<{ orphans: number }> {
  let orphans = 0;
  for (const ino of store.orphanInodes()) {
    await store.txn(() => {
      const rec = store.getInode(ino);
      if (rec && rec.nlink > 0) return store.unmarkOrphan(ino); // it has a name again: only the mark goes
      dropContent(store, ino);
      store.removeInode(ino);
    });
    orphans++;
  }
  return { orphans };
}
