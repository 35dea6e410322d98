// Walking the namespace: every inode reachable from a directory, once each (a hard-linked file
// is reached by several names), without recursion, so a deep tree cannot overflow the stack.
import { isDir, type InodeRecord, type Ino } from './records';
import type { Store } from './store';

/**
 * `top` and every inode below it, each once. `skip(parent, name)` leaves an entry (and what is
 * below it) out.
 */
export function* walkTree(store: Store, top: Ino, skip?: (parent: Ino, name: string) => boolean): Generator<InodeRecord> {
  const seen = new Set<Ino>();
  const stack: Ino[] = [top];
  while (stack.length) {
    const ino = stack.pop()!;
    if (seen.has(ino)) continue;
    seen.add(ino);
    const rec = store.getInode(ino);
    if (!rec) continue;
    yield rec;
    if (isDir(rec)) for (const e of store.entries(ino)) if (!skip?.(ino, e.name)) stack.push(e.ino);
  }
}
