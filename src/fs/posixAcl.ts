// POSIX access control lists as the kernel hands them to a FUSE filesystem: the extended
// attributes system.posix_acl_access and system.posix_acl_default, in the kernel's xattr format
// (linux/posix_acl_xattr.h). The kernel enforces them (FUSE_POSIX_ACL); the filesystem stores
// them, keeps the file mode in step with the access ACL and gives new nodes their directory's
// default ACL. Pure functions; the rules follow POSIX.1e draft 17 as Linux implements it
// (fs/posix_acl.c: posix_acl_valid, posix_acl_equiv_mode, posix_acl_create_masq, posix_acl_chmod).
import { E, ErrnoError } from './errno';

export const ACL_ACCESS = 'system.posix_acl_access';
export const ACL_DEFAULT = 'system.posix_acl_default';
export const isAclName = (name: string): boolean => name === ACL_ACCESS || name === ACL_DEFAULT;

/** Entry tags, in the order entries must appear. */
export const ACL_USER_OBJ = 0x01;
export const ACL_USER = 0x02;
export const ACL_GROUP_OBJ = 0x04;
export const ACL_GROUP = 0x08;
export const ACL_MASK = 0x10;
export const ACL_OTHER = 0x20;
/** The id of entries that name no user or group. */
export const ACL_UNDEFINED_ID = 0xffffffff;

const XATTR_VERSION = 2;
const HEADER = 4;
const ENTRY = 8;

export interface AclEntry {
  readonly tag: number;
  /** rwx bits (4, 2, 1). */
  readonly perm: number;
  /** uid for ACL_USER, gid for ACL_GROUP, ACL_UNDEFINED_ID otherwise. */
  readonly id: number;
}
export type Acl = readonly AclEntry[];

const invalid = (why: string): never => {
  throw new ErrnoError(E.EINVAL, `invalid ACL: ${why}`);
};

/** Decode and validate an ACL xattr value (EINVAL when it is not a valid ACL). */
export function decodeAcl(value: Uint8Array): Acl {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (buf.length < HEADER || (buf.length - HEADER) % ENTRY !== 0) invalid(`${buf.length} bytes`);
  if (buf.readUInt32LE(0) !== XATTR_VERSION) invalid(`version ${buf.readUInt32LE(0)}`);
  const acl: AclEntry[] = [];
  for (let off = HEADER; off < buf.length; off += ENTRY) {
    const tag = buf.readUInt16LE(off);
    const named = tag === ACL_USER || tag === ACL_GROUP;
    acl.push({ tag, perm: buf.readUInt16LE(off + 2), id: named ? buf.readUInt32LE(off + 4) : ACL_UNDEFINED_ID });
  }
  validateAcl(acl);
  return acl;
}

export function encodeAcl(acl: Acl): Buffer {
  const buf = Buffer.alloc(HEADER + ENTRY * acl.length);
  buf.writeUInt32LE(XATTR_VERSION, 0);
  acl.forEach((e, i) => {
    const off = HEADER + ENTRY * i;
    buf.writeUInt16LE(e.tag, off);
    buf.writeUInt16LE(e.perm, off + 2);
    buf.writeUInt32LE(e.id, off + 4);
  });
  return buf;
}

/**
 * An empty ACL is valid (it means "none"). Otherwise: one owner, owning group and other entry
 * each, named entries sorted by id without repeats, every tag in order, and a mask whenever
 * there are named entries.
 */
export function validateAcl(acl: Acl): void {
  if (acl.length === 0) return;
  const seen = new Set<number>();
  let prevTag = 0;
  let prevId = -1;
  for (const e of acl) {
    if (e.perm & ~7) invalid(`permissions 0x${e.perm.toString(16)}`);
    if (![ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER].includes(e.tag)) invalid(`tag 0x${e.tag.toString(16)}`);
    if (e.tag < prevTag) invalid('entries out of order');
    const named = e.tag === ACL_USER || e.tag === ACL_GROUP;
    if (named) {
      if (e.id === ACL_UNDEFINED_ID) invalid('a named entry without an id');
      if (e.tag === prevTag && e.id <= prevId) invalid(`${e.tag === ACL_USER ? 'user' : 'group'} ${e.id} repeated or out of order`);
      prevId = e.id;
    } else if (seen.has(e.tag)) {
      invalid('a base entry repeated');
    }
    seen.add(e.tag);
    prevTag = e.tag;
  }
  for (const tag of [ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER]) if (!seen.has(tag)) invalid('a base entry is missing');
  if ((seen.has(ACL_USER) || seen.has(ACL_GROUP)) && !seen.has(ACL_MASK)) invalid('named entries without a mask');
}

/** An ACL of the three base entries says nothing the mode bits do not: it is not stored. */
export const isMinimal = (acl: Acl): boolean => acl.every((e) => e.tag === ACL_USER_OBJ || e.tag === ACL_GROUP_OBJ || e.tag === ACL_OTHER);

/** The entry the mode's group bits stand for: the mask if there is one, else the owning group. */
const groupClass = (acl: Acl): number => (acl.some((e) => e.tag === ACL_MASK) ? ACL_MASK : ACL_GROUP_OBJ);

/** The mode with its permission bits taken from an access ACL (setfacl). */
export function modeFromAcl(acl: Acl, mode: number): number {
  const perm = (tag: number) => acl.find((e) => e.tag === tag)?.perm ?? 0;
  return (mode & ~0o777) | (perm(ACL_USER_OBJ) << 6) | (perm(groupClass(acl)) << 3) | perm(ACL_OTHER);
}

/**
 * The access ACL with the permissions of the mode (chmod). The mode is the authority for the
 * three entries it can express, so a stored ACL is always read through this.
 */
export function aclWithMode(acl: Acl, mode: number): Acl {
  const g = groupClass(acl);
  return acl.map((e) => {
    if (e.tag === ACL_USER_OBJ) return { ...e, perm: (mode >> 6) & 7 };
    if (e.tag === g) return { ...e, perm: (mode >> 3) & 7 };
    if (e.tag === ACL_OTHER) return { ...e, perm: mode & 7 };
    return e;
  });
}

/**
 * What a new node gets from its directory's default ACL, instead of the umask: the requested
 * mode limited by the default ACL's owner, group-class and other entries, and an access ACL
 * (the default one limited by the mode) unless that says no more than the mode.
 */
export function inheritAcl(defaultAcl: Acl, mode: number): { mode: number; access?: Acl } {
  const newMode = mode & (modeFromAcl(defaultAcl, 0) | ~0o777);
  const access = aclWithMode(defaultAcl, newMode);
  return isMinimal(access) ? { mode: newMode } : { mode: newMode, access };
}
