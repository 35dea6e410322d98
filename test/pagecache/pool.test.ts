// The GDT's memory bound and eviction order: unreferenced pages go least recently used first,
// pages that live processes map stay, and a full pool of referenced pages bypasses new ones.
import { PagePool } from '../../src/pagecache/pool';

const page = (n: number) => Buffer.alloc(4096, n);
const key = (n: number) => `k${n}`;

test('holds at most its bound, evicting the least recently used unreferenced page', () => {
  const pool = new PagePool(3 * 4096);
  for (const n of [1, 2, 3]) pool.put(key(n), page(n));
  expect(pool.get(key(1))![0]).toBe(1); // 1 is now the most recently used
  pool.put(key(4), page(4));
  expect([1, 2, 3, 4].map((n) => pool.has(key(n)))).toEqual([true, false, true, true]);
  expect({ entries: pool.entries, bytes: pool.bytes, evictions: pool.counters.evictions, hits: pool.counters.hits }).toEqual({ entries: 3, bytes: 3 * 4096, evictions: 1, hits: 1 });
});

test('referenced pages are never evicted; with nothing else to evict a new page is bypassed', () => {
  const pool = new PagePool(2 * 4096);
  pool.put(key(1), page(1));
  pool.put(key(2), page(2));
  pool.setReferences(new Map([[key(1), 2], [key(2), 1]]));
  expect(pool.referencedEntries).toBe(2);
  expect(pool.put(key(3), page(3))).toBe(false);
  expect(pool.has(key(3))).toBe(false);
  expect(pool.counters.bypassed).toBe(1);
  // The process mapping page 2 exits: page 2 becomes evictable.
  pool.setReferences(new Map([[key(1), 2]]));
  expect(pool.put(key(3), page(3))).toBe(true);
  expect([1, 2, 3].map((n) => pool.has(key(n)))).toEqual([true, false, true]);
});

test('a page referenced before it is cached enters as referenced', () => {
  const pool = new PagePool(4096);
  pool.setReferences(new Map([[key(9), 1]]));
  pool.put(key(9), page(9));
  expect(pool.referencedEntries).toBe(1);
});

test('trimTo drops unreferenced pages down to the size asked for', () => {
  const pool = new PagePool(10 * 4096);
  for (let n = 0; n < 10; n++) pool.put(key(n), page(n));
  pool.setReferences(new Map([[key(0), 1]]));
  pool.trimTo(4 * 4096);
  expect(pool.entries).toBe(4);
  expect(pool.has(key(0))).toBe(true);
  expect([7, 8, 9].every((n) => pool.has(key(n)))).toBe(true);
});
