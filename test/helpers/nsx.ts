// A namespace exerciser: a seeded random sequence of creates, mkdirs, renames (plain, replacing,
// into a subtree), hard links, symlinks, unlinks and rmdirs, applied to two trees at once (one
// on the mount, one on a reference filesystem such as ext4). Each operation must succeed on
// both or fail on both with the same errno, and the trees must look the same whenever compared:
// names, types, modes, sizes, link counts, contents, symlink targets, and which names share
// an inode.
import fs from 'node:fs';
import path from 'node:path';
import { prng } from './prng';

export interface NsxOptions {
  seed: number;
  ops: number;
  trace?: (line: string) => void;
}

export class NsxMismatch extends Error {}

type Outcome = string; // 'ok' or the errno code

function attempt(fn: () => void): Outcome {
  try {
    fn();
    return 'ok';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!code) throw err;
    return code;
  }
}

/** A tree as comparable text: one line per name, hard links named by their first path. */
export function describeTree(root: string): string[] {
  const lines: string[] = [];
  const firstPathOfInode = new Map<number, string>();
  const walk = (rel: string) => {
    const names = fs.readdirSync(path.join(root, rel)).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = fs.lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        lines.push(`d ${r} ${mode} nlink=${st.nlink}`);
        walk(r);
      } else if (st.isSymbolicLink()) {
        lines.push(`l ${r} -> ${fs.readlinkSync(p)}`);
      } else {
        const same = firstPathOfInode.get(st.ino);
        if (same === undefined) firstPathOfInode.set(st.ino, r);
        const content = fs.readFileSync(p).toString('latin1');
        lines.push(`f ${r} ${mode} nlink=${st.nlink} size=${st.size} ${same ? `=${same}` : JSON.stringify(content)}`);
      }
    }
  };
  walk('');
  return lines;
}

/** Run the sequence on both roots (each an empty directory). */
export function runNsx(roots: [string, string], o: NsxOptions): Record<string, number> {
  const next = prng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[next() % xs.length];
  const counts: Record<string, number> = {};
  const names = ['a', 'b', 'c', 'd'];
  // Paths up to three levels deep over a small alphabet, so operations collide often.
  const fresh = () => {
    const depth = 1 + (next() % 3);
    return Array.from({ length: depth }, () => pick(names)).join('/');
  };
  // Half the time a name that some earlier operation made (it may be gone since): otherwise
  // nearly every rename or link would find no source.
  const made: string[] = [];
  const randomPath = () => (made.length > 0 && next() % 2 ? pick(made) : fresh());
  for (let op = 0; op < o.ops; op++) {
    const p = randomPath();
    const q = randomPath();
    const r = next() % 100;
    let name: string;
    let run: (root: string) => void;
    if (r < 18) {
      const text = `${op}:${p}`.repeat(1 + (next() % 50));
      name = `write ${p}`;
      run = (root) => fs.writeFileSync(path.join(root, p), text);
    } else if (r < 30) {
      name = `mkdir ${p}`;
      run = (root) => fs.mkdirSync(path.join(root, p));
    } else if (r < 52) {
      name = `rename ${p} ${q}`;
      run = (root) => fs.renameSync(path.join(root, p), path.join(root, q));
    } else if (r < 62) {
      name = `link ${p} ${q}`;
      run = (root) => fs.linkSync(path.join(root, p), path.join(root, q));
    } else if (r < 68) {
      const target = next() % 2 ? q : `../${q}`;
      name = `symlink ${target} ${p}`;
      run = (root) => fs.symlinkSync(target, path.join(root, p));
    } else if (r < 80) {
      name = `unlink ${p}`;
      run = (root) => fs.unlinkSync(path.join(root, p));
    } else if (r < 88) {
      name = `rmdir ${p}`;
      run = (root) => fs.rmdirSync(path.join(root, p));
    } else if (r < 94) {
      const mode = pick([0o644, 0o755, 0o600, 0o4755, 0o1777]);
      name = `chmod ${mode.toString(8)} ${p}`;
      run = (root) => fs.chmodSync(path.join(root, p), mode);
    } else {
      const extra = `+${op}`;
      name = `append ${p}`;
      run = (root) => fs.appendFileSync(path.join(root, p), extra);
    }
    const outcomes = roots.map((root) => attempt(() => run(root)));
    o.trace?.(`${op} ${name}: ${outcomes.join(' / ')}`);
    const kind = `${name.split(' ')[0]} ${outcomes[1]}`;
    counts[kind] = (counts[kind] ?? 0) + 1;
    if (outcomes[0] !== outcomes[1]) throw new NsxMismatch(`op ${op} ${name}: ${outcomes[0]} on the mount, ${outcomes[1]} on the reference`);
    if (outcomes[1] === 'ok') made.push(/^(rename|link|symlink)/.test(name) ? name.split(' ')[2] : p);
    if (op % 25 === 24 || op === o.ops - 1) compareTrees(roots, `after op ${op} ${name}`);
  }
  return counts;
}

export function compareTrees(roots: [string, string], when: string): void {
  const [a, b] = roots.map(describeTree);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) throw new NsxMismatch(`${when}: the mount has ${a[i] ?? 'nothing'} where the reference has ${b[i] ?? 'nothing'}`);
  }
}
