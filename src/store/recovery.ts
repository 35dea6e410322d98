// Start-up clean-up after an unclean stop: files that were unlinked while open (orphans, and
// libfuse's ".fuse_hidden" names for them) have no name a user could reach, so their data goes.
import { dropContent } from './fileContent';
import { isDir } from './records';
import type { Store } from './store';

export async function recoverStore(store: Store): Promise<{ orphans: number; hidden: number }> {
  let orphans = 0;
  let hidden = 0;
  for (const ino of store.orphanInodes()) {
    await store.txn(() => {
      const rec = store.getInode(ino);
      if (rec && rec.nlink > 0) return store.removeInode(ino); // re-linked: only the mark goes
      dropContent(store, ino);
      store.removeInode(ino);
    });
    orphans++;
  }
  const stale: Array<{ parent: number; name: string; ino: number }> = [];
  for (const rec of store.allInodes()) {
    if (!isDir(rec)) continue;
    for (const e of store.entries(rec.ino)) if (e.name.startsWith('.fuse_hidden')) stale.push({ parent: rec.ino, ...e });
  }
  for (const s of stale) {
    await store.txn(() => {
      const rec = store.getInode(s.ino);
      store.removeEntry(s.parent, s.name);
      if (!rec) return;
      if (rec.nlink > 1) store.putInode({ ...rec, nlink: rec.nlink - 1 });
      else {
        dropContent(store, s.ino);
        store.removeInode(s.ino);
      }
    });
    hidden++;
  }
  return { orphans, hidden };
}
