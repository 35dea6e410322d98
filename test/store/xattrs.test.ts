// Extended attributes live with the inode in the store (`xattrs`, docs/FORMAT.md): one record
// per name, shared by hard links, gone with the inode's last name.
import { Store } from '../../src/store/store';
import { ROOT, useTempStore } from '../helpers/store';

const temp = useTempStore('xattrs');
const withFs = temp.withFs;

test('names list in byte order and values come back exactly', async () => {
  await withFs(async (_store, fsys) => {
    await fsys.mknod('/f', 0o100644, ROOT);
    const ino = (await fsys.getattr('/f')).ino;
    const value = Buffer.from([0, 1, 2, 255]);
    await fsys.setxattrIno(ino, 'user.zeta', value, 0);
    await fsys.setxattrIno(ino, 'trusted.alpha', Buffer.from('t'), 0);
    expect(await fsys.listxattrIno(ino)).toEqual(['trusted.alpha', 'user.zeta']);
    expect((await fsys.getxattrIno(ino, 'user.zeta')).equals(value)).toBe(true);
  });
});

test('the attributes go with the last name of the inode, not before', async () => {
  await withFs(async (store, fsys) => {
    await fsys.mknod('/f', 0o100644, ROOT);
    const ino = (await fsys.getattr('/f')).ino;
    await fsys.setxattrIno(ino, 'user.a', Buffer.from('1'), 0);
    await fsys.linkAt(ino, 1, 'g');
    await fsys.unlink('/f');
    expect(store.xattrNames(ino)).toEqual(['user.a']);
    await fsys.unlink('/g');
    expect(store.xattrNames(ino)).toEqual([]);
  });
});

test('they survive closing and opening the store', async () => {
  const ino = await withFs(async (_store, fsys) => {
    await fsys.mkdir('/d', 0o755, ROOT);
    const d = (await fsys.getattr('/d')).ino;
    await fsys.setxattrIno(d, 'security.label', Buffer.from('kept'), 0);
    return d;
  });
  const store = await Store.open(temp.dir, { readOnly: true });
  try {
    expect(store.getXattr(ino, 'security.label')?.toString()).toBe('kept');
  } finally {
    await store.close();
  }
});
