// POSIX ACLs and set-group-ID directories on a real mount: stored by the daemon, enforced by the
// kernel, tied to the mode, inherited by new nodes, as on ext4. `nobody` (65534) is the other user.
import fs from 'node:fs';
import { useMount } from '../helpers/mount';
import { sh } from '../helpers/cli';
import { ROOT, useTempStore } from '../helpers/store';
import { E } from '../../src/fs/errno';
import { ACL_ACCESS, ACL_DEFAULT, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_UNDEFINED_ID, ACL_USER, ACL_USER_OBJ, encodeAcl } from '../../src/fs/posixAcl';

const mount = useMount();

beforeAll(() => {
  // The temp dir is 0700: `nobody` must be able to reach the mountpoint.
  fs.chmodSync(mount.m.dir, 0o755);
});

/** Run a shell command in the mountpoint; its stdout (throws with stderr on failure). */
function run(cmd: string): string {
  const r = sh(cmd, { cwd: mount.mp, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}
const asNobody = (cmd: string) => sh(`setpriv --reuid=65534 --regid=65534 --clear-groups -- ${cmd}`, { cwd: mount.mp, timeout: 60_000 });
/** getfacl's entries, one line each, without its header comments. */
const acl = (p: string) => run(`getfacl -n --omit-header '${p}'`).trim().split('\n');

test('a named user entry lets that user read a file its mode closes to everyone else', () => {
  run('umask 022; echo secret > a; chmod 600 a');
  expect(asNobody('cat a').status).toBe(1);
  run('setfacl -m u:65534:r a');
  expect(acl('a')).toEqual(['user::rw-', 'user:65534:r--', 'group::---', 'mask::r--', 'other::---']);
  // The mode's group bits show the mask, as ls -l does on ext4.
  expect(run('stat -c %A a').trim()).toBe('-rw-r-----');
  const r = asNobody('cat a');
  expect([r.status, r.stdout]).toEqual([0, 'secret\n']);
});

test('chmod changes the mask, which limits every named entry', () => {
  run('chmod g-r a');
  expect(acl('a')).toEqual(['user::rw-', 'user:65534:r--\t#effective:---', 'group::---', 'mask::---', 'other::---']);
  expect(asNobody('cat a').status).toBe(1);
  run('chmod g+r a');
  expect(asNobody('cat a').status).toBe(0);
});

test('a default ACL is inherited by new files and directories instead of the umask', () => {
  run('umask 022; mkdir shared; setfacl -d -m u:65534:rwx shared');
  run('umask 077; touch shared/file; mkdir shared/sub');
  expect(acl('shared/file')).toEqual(['user::rw-', 'user:65534:rwx\t#effective:rw-', 'group::r-x\t#effective:r--', 'mask::rw-', 'other::r--']);
  expect(run('stat -c %A shared/file shared/sub').trim().split('\n')).toEqual(['-rw-rw-r--', 'drwxrwxr-x']);
  const defaults = ['default:user::rwx', 'default:user:65534:rwx', 'default:group::r-x', 'default:mask::rwx', 'default:other::r-x'];
  expect(acl('shared/sub')).toEqual(['user::rwx', 'user:65534:rwx', 'group::r-x', 'mask::rwx', 'other::r-x', ...defaults]);
  expect(asNobody('sh -c "echo from-nobody > shared/sub/n"').status).toBe(0);
  expect(run('cat shared/sub/n; stat -c "%u %A" shared/sub/n')).toBe('from-nobody\n65534 -rw-rw-r--\n');
});

test('without a default ACL the umask applies', () => {
  run('umask 027; touch plain; mkdir plaindir; mkfifo plainfifo');
  expect(run('stat -c %A plain plaindir plainfifo').trim().split('\n')).toEqual(['-rw-r-----', 'drwxr-x---', 'prw-r-----']);
  expect(acl('plain')).toEqual(['user::rw-', 'group::r--', 'other::---']);
});

test('ACLs survive a remount, and setfacl -b removes them', () => {
  mount.m.unmount();
  mount.m.remount();
  expect(acl('a')).toEqual(['user::rw-', 'user:65534:r--', 'group::---', 'mask::r--', 'other::---']);
  run('setfacl -b a');
  expect(acl('a')).toEqual(['user::rw-', 'group::---', 'other::---']);
  expect(run('stat -c %A a').trim()).toBe('-rw-------');
  expect(run(`python3 -c 'import os; print(os.listxattr("a"))'`).trim()).toBe('[]');
  expect(asNobody('cat a').status).toBe(1);
});

/** setxattr(2) of a raw value from Python: the error's name, or "ok". */
const setxattr = (p: string, name: string, hex: string) =>
  run(`python3 -c 'import os,sys
try: os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])); print("ok")
except OSError as e: print(os.strerror(e.errno))' '${p}' ${name} ${hex}`).trim();

test('cp -a carries ACLs', () => {
  run('setfacl -m u:65534:r a; cp -a a a-copy');
  expect(acl('a-copy')).toEqual(['user::rw-', 'user:65534:r--', 'group::---', 'mask::r--', 'other::---']);
  expect(asNobody('cat a-copy').stdout).toBe('secret\n');
});

test('malformed ACLs and default ACLs on files are refused', () => {
  const minimal = '0200000001000600ffffffff04000400ffffffff20000400ffffffff';
  expect(setxattr('a', 'system.posix_acl_default', minimal)).toBe('Permission denied');
  // A named entry without a mask.
  expect(setxattr('a', 'system.posix_acl_access', '0200000001000600ffffffff0200040001000000' + minimal.slice(24))).toBe('Invalid argument');
  expect(setxattr('a', 'system.posix_acl_access', '02000000010006')).toBe('Invalid argument');
  expect(setxattr('a', 'system.posix_acl_other', minimal)).toBe('Operation not supported');
  expect(acl('a')).toEqual(['user::rw-', 'user:65534:r--', 'group::---', 'mask::r--', 'other::---']);
});

test('a set-group-ID directory gives new nodes its group, and new directories the bit', () => {
  run('umask 022; mkdir team; chgrp 100 team; chmod 2775 team; touch team/f; mkdir team/d; ln -s f team/l');
  expect(run('stat -c "%g %A" team/f team/d').trim().split('\n')).toEqual(['100 -rw-r--r--', '100 drwxr-sr-x']);
  expect(run('stat -c %g team/l').trim()).toBe('100');
});

describe('the Filesystem without the kernel in front', () => {
  const t = useTempStore('acl');
  const namedAcl = encodeAcl([
    { tag: ACL_USER_OBJ, perm: 7, id: ACL_UNDEFINED_ID },
    { tag: ACL_USER, perm: 4, id: 65534 },
    { tag: ACL_GROUP_OBJ, perm: 0, id: ACL_UNDEFINED_ID },
    { tag: ACL_MASK, perm: 5, id: ACL_UNDEFINED_ID },
    { tag: ACL_OTHER, perm: 1, id: ACL_UNDEFINED_ID },
  ]);

  test('an ACL set while the file is open for writing survives the commit of a pending chmod', () =>
    t.withFs(async (_store, fsys) => {
      const fh = await fsys.create('/f', 0o644, ROOT);
      await fsys.write(fh, Buffer.from('data'), 4, 0);
      const { ino } = await fsys.getattr('/f');
      await fsys.setattr(ino, { mode: 0o600 });
      await fsys.setxattrIno(ino, ACL_ACCESS, namedAcl, 0);
      await fsys.release(fh);
      expect(((await fsys.getattr('/f')).mode & 0o7777).toString(8)).toBe('751');
      expect((await fsys.getxattrIno(ino, ACL_ACCESS)).equals(namedAcl)).toBe(true);
    }));

  test('symbolic links take no ACL and files no default ACL', () =>
    t.withFs(async (_store, fsys) => {
      await fsys.symlink('target', '/l', ROOT);
      await fsys.create('/f', 0o644, ROOT);
      const l = (await fsys.getattr('/l')).ino;
      const f = (await fsys.getattr('/f')).ino;
      await expect(fsys.setxattrIno(l, ACL_ACCESS, namedAcl, 0)).rejects.toMatchObject({ errno: E.ENOTSUP });
      await expect(fsys.setxattrIno(f, ACL_DEFAULT, namedAcl, 0)).rejects.toMatchObject({ errno: E.EACCES });
    }));
});
