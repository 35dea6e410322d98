// Creating a directory and its missing parents (`mkdir -p`), for every layer that writes files
// (the store, the daemon, peers' output, slink). Node 20's own `{ recursive: true }` never
// returns for some paths: under /proc, mkdir answers ENOENT for a parent that exists, and Node
// retries forever. Here each missing parent is made once and a second failure is the answer.
import fs from 'node:fs';
import path from 'node:path';

const code = (err: unknown) => (err as NodeJS.ErrnoException).code;

function notDir(dir: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: dir });
}

export async function makeDirs(dir: string, mode?: number): Promise<void> {
  try {
    await fs.promises.mkdir(dir, { mode });
  } catch (err) {
    if (code(err) === 'EEXIST') {
      if (!(await fs.promises.stat(dir)).isDirectory()) throw notDir(dir);
      return;
    }
    const parent = path.dirname(dir);
    if (code(err) !== 'ENOENT' || parent === dir) throw err;
    await makeDirs(parent, mode);
    await fs.promises.mkdir(dir, { mode }).catch(async (again) => {
      if (code(again) !== 'EEXIST' || !(await fs.promises.stat(dir)).isDirectory()) throw again;
    });
  }
}
