// POSIX ACLs in the kernel's xattr format, and the rules that tie them to the mode.
import {
  ACL_GROUP,
  ACL_GROUP_OBJ,
  ACL_MASK,
  ACL_OTHER,
  ACL_UNDEFINED_ID,
  ACL_USER,
  ACL_USER_OBJ,
  type Acl,
  aclWithMode,
  decodeAcl,
  encodeAcl,
  inheritAcl,
  isMinimal,
  modeFromAcl,
} from '../../src/fs/posixAcl';

const U = ACL_UNDEFINED_ID;
const base = (owner: number, group: number, other: number): Acl => [
  { tag: ACL_USER_OBJ, perm: owner, id: U },
  { tag: ACL_GROUP_OBJ, perm: group, id: U },
  { tag: ACL_OTHER, perm: other, id: U },
];
// user::rw- user:65534:r-- group::r-x group:100:rwx mask::r-x other::---
const named: Acl = [
  { tag: ACL_USER_OBJ, perm: 6, id: U },
  { tag: ACL_USER, perm: 4, id: 65534 },
  { tag: ACL_GROUP_OBJ, perm: 5, id: U },
  { tag: ACL_GROUP, perm: 7, id: 100 },
  { tag: ACL_MASK, perm: 5, id: U },
  { tag: ACL_OTHER, perm: 0, id: U },
];

/** The bytes the kernel sends for `named` (version 2, then tag, perm, id per entry, little-endian). */
const namedBytes = Buffer.from(
  '02000000' + '01000600ffffffff' + '02000400feff0000' + '04000500ffffffff' + '08000700' + '64000000' + '10000500ffffffff' + '20000000ffffffff',
  'hex',
);

test('the kernel format decodes to entries and encodes back to the same bytes', () => {
  expect(decodeAcl(namedBytes)).toEqual(named);
  expect(encodeAcl(named).equals(namedBytes)).toBe(true);
});

test('malformed or invalid ACLs are refused with EINVAL', () => {
  const bad = (acl: Acl) => () => decodeAcl(encodeAcl(acl));
  expect(() => decodeAcl(Buffer.from('0200000001000600', 'hex'))).toThrow(expect.objectContaining({ errno: -22 }));
  expect(() => decodeAcl(Buffer.from('0100000001000600ffffffff', 'hex'))).toThrow(/version 1/);
  expect(bad([base(6, 4, 4)[0], base(6, 4, 4)[2], base(6, 4, 4)[1]])).toThrow(/out of order/);
  expect(bad(base(6, 4, 4).slice(0, 2))).toThrow(/missing/);
  expect(bad(named.filter((e) => e.tag !== ACL_MASK))).toThrow(/without a mask/);
  expect(bad([named[0], named[1], { tag: ACL_USER, perm: 4, id: 65534 }, ...named.slice(2)])).toThrow(/user 65534 repeated/);
  expect(bad([named[0], { tag: ACL_USER, perm: 8, id: 1 }, ...named.slice(2)])).toThrow(/permissions/);
  expect(bad([named[0], { tag: 0x40, perm: 4, id: 1 }, ...named.slice(2)])).toThrow(/tag 0x40/);
  expect(decodeAcl(encodeAcl([]))).toEqual([]);
});

test('setting an access ACL sets the mode from its owner, mask (or group) and other entries', () => {
  expect(modeFromAcl(named, 0o100777).toString(8)).toBe('100650');
  expect(modeFromAcl(base(7, 5, 1), 0o104000).toString(8)).toBe('104751');
  expect(isMinimal(base(7, 5, 1))).toBe(true);
  expect(isMinimal(named)).toBe(false);
});

test('the mode rules the entries it expresses: with a mask the group bits are the mask', () => {
  const chmodded = aclWithMode(named, 0o100701);
  expect(chmodded.map((e) => e.perm)).toEqual([7, 4, 5, 7, 0, 1]);
  expect(aclWithMode(base(6, 4, 4), 0o750).map((e) => e.perm)).toEqual([7, 5, 0]);
});

test('a new node takes its directory default ACL, limited by the mode it asked for, and no umask', () => {
  // What ext4 gives `touch` (mode 0666) under default:user::rwx,user:65534:rwx,group::r-x,mask::rwx,other::r-x.
  const defaults: Acl = [
    { tag: ACL_USER_OBJ, perm: 7, id: U },
    { tag: ACL_USER, perm: 7, id: 65534 },
    { tag: ACL_GROUP_OBJ, perm: 5, id: U },
    { tag: ACL_MASK, perm: 7, id: U },
    { tag: ACL_OTHER, perm: 5, id: U },
  ];
  const file = inheritAcl(defaults, 0o100666);
  expect(file.mode.toString(8)).toBe('100664');
  expect(file.access?.map((e) => e.perm)).toEqual([6, 7, 5, 6, 4]);
  const dir = inheritAcl(defaults, 0o40777);
  expect(dir.mode.toString(8)).toBe('40775');
  expect(dir.access).toEqual(aclWithMode(defaults, 0o40775));
  // Only base entries: the mode says it all, so no access ACL is stored.
  expect(inheritAcl(base(7, 0, 0), 0o100666)).toEqual({ mode: 0o100600 });
});
