/*
 * The loader stub at the front of every slinked file (see docs/FORMAT.md, "Slinked file").
 *
 * The kernel executes the slinked file and runs this stub. The stub reads the list of objects from
 * its mailbox (a page of its own image that slink fills) or else from the manifest at the end of
 * its file, maps the embedded dynamic loader (ld-linux) from its offset in the file, and
 * hands control to it as if the loader had been started as a program ("explicit invocation"),
 * with options telling it to preload every embedded library and to run the embedded program.
 * Nothing is exec'd, nothing is written to disk: same PID, same environment, /proc/self/exe is the
 * slinked file.
 *
 * Freestanding: no libc, raw system calls, linked -static-pie. It must be position independent
 * *and* free of run-time relocations (the Makefile checks there are none), because nothing
 * relocates it: a fixed address would collide with ET_EXEC programs at 0x400000.
 */

typedef unsigned long u64;
typedef long i64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned long size_t;

/* ---- system calls (x86_64) ---------------------------------------------------------------- */

enum {
	SYS_write = 1, SYS_close = 3, SYS_lseek = 8, SYS_mmap = 9, SYS_munmap = 11, SYS_pread64 = 17,
	SYS_sendfile = 40, SYS_fcntl = 72, SYS_getuid = 102, SYS_getgid = 104, SYS_setresuid = 117,
	SYS_setresgid = 119, SYS_capset = 126, SYS_exit_group = 231, SYS_openat = 257,
	SYS_prlimit64 = 302, SYS_memfd_create = 319, SYS_copy_file_range = 326, SYS_statx = 332,
	SYS_readlinkat = 267,
};

static inline i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f)
{
	register i64 r10 __asm__("r10") = d;
	register i64 r8 __asm__("r8") = e;
	register i64 r9 __asm__("r9") = f;
	i64 ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#define sys0(n) sys6((n), 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6((n), (i64)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6((n), (i64)(a), (i64)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6((n), (i64)(a), (i64)(b), (i64)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6((n), (i64)(a), (i64)(b), (i64)(c), (i64)(d), 0, 0)

#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_CLOEXEC 02000000
#define O_DIRECTORY 0200000
#define O_NOFOLLOW 0400000
#define O_PATH 010000000
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_NO_AUTOMOUNT 0x800
#define AT_EMPTY_PATH 0x1000
#define AT_STATX_DONT_SYNC 0x4000
#define STATX_BASIC_STATS 0x7ffU
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define SEEK_END 2
#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MFD_CLOEXEC 1
#define F_DUPFD_CLOEXEC 1030
#define RLIMIT_NOFILE 7
#define EINTR 4
#define EAGAIN 11
#define EXDEV 18
#define EINVAL 22
#define ENOSYS 38
#define EOPNOTSUPP 95

/* The compiler may emit calls to these for struct copies; there is no libc to provide them. */
void *memcpy(void *dst, const void *src, size_t n)
{
	u8 *d = dst;
	const u8 *s = src;
	while (n--) *d++ = *s++;
	return dst;
}
void *memset(void *dst, int c, size_t n)
{
	u8 *d = dst;
	while (n--) *d++ = (u8)c;
	return dst;
}

static size_t str_len(const char *s)
{
	size_t n = 0;
	while (s[n]) n++;
	return n;
}
static int mem_eq(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i]) return 0;
	return 1;
}

/* ---- errors: one line on stderr, exit 127 (the shell's "could not run") ------------------- */

static void put(char *buf, size_t *len, size_t cap, const char *s)
{
	while (*s && *len < cap) buf[(*len)++] = *s++;
}
static char *fmt_u64(char *end, u64 v)
{
	*--end = 0;
	do *--end = (char)('0' + v % 10); while (v /= 10);
	return end;
}

__attribute__((noreturn)) static void die(const char *what, i64 err)
{
	char buf[256], num[24];
	size_t len = 0;
	put(buf, &len, sizeof buf - 1, "slinky stub: ");
	put(buf, &len, sizeof buf - 1, what);
	if (err < 0) {
		put(buf, &len, sizeof buf - 1, " (errno ");
		put(buf, &len, sizeof buf - 1, fmt_u64(num + sizeof num, (u64)-err));
		put(buf, &len, sizeof buf - 1, ")");
	}
	buf[len++] = '\n';
	sys3(SYS_write, 2, buf, len);
	for (;;) sys1(SYS_exit_group, 127);
}

/* ---- the file format (docs/FORMAT.md "Slinked file"; src/elf/manifest.ts writes it) ------- */

#define PAGE 4096UL
#define TRAILER_SIZE 32
#define FORMAT_VERSION 1
#define ROLE_PROGRAM 1
#define ROLE_LIBRARY 2
#define ROLE_INTERPRETER 3
#define MAX_OBJECTS 1024

struct trailer {
	char magic[8]; /* "SLINKYTR" */
	u32 version;
	u32 flags;
	u64 manifest_offset;
	u64 manifest_length;
};

struct mf_header {
	char magic[8]; /* "SLINKYMF" */
	u32 version, header_size, object_count, object_record_size;
	u32 objects_offset, strings_offset, strings_size;
	u32 runs_offset, run_count, run_record_size;
	u32 digests_offset, digest_count;
	u8 page_digest_algorithm, page_digest_size;
	u16 page_size_log2;
	u32 reserved;
};

struct mf_object {
	u64 offset, size;
	u32 role, flags, name_str, path_str, first_run, run_count;
	u8 digest_len, pad[7];
	u8 digest[64]; /* tagged digest of the whole object: algorithm id byte, then the hash */
	u8 reserved[16];
};

_Static_assert(sizeof(struct trailer) == TRAILER_SIZE, "trailer layout");
_Static_assert(sizeof(struct mf_header) == 64, "manifest header layout");
_Static_assert(sizeof(struct mf_object) == 128, "object record layout");

struct image {
	int fd; /* the slinked file itself, or -1 until something needs it (see self_fd) */
	u64 manifest_offset; /* every object lies before it */
	u8 *map; /* the manifest, mapped read-only; 0 when it came from the mailbox */
	u64 map_len;
	u64 *auxv;
	const struct mf_header *hdr;
	const struct mf_object *objects;
	const char *strings;
	u32 program, interpreter;
	u32 libraries[MAX_OBJECTS]; /* manifest indices of libraries, in load order */
	u32 library_count;
};

static const char *mf_string(const struct image *im, u32 off)
{
	return im->strings + off; /* bounds and termination checked in read_manifest */
}

static int open_self(u64 *auxv)
{
	i64 fd = sys4(SYS_openat, AT_FDCWD, "/proc/self/exe", O_RDONLY | O_CLOEXEC, 0);
	if (fd >= 0) return (int)fd;
	/* Without /proc the loader could not open the objects either, but say why clearly. */
	for (u64 *a = auxv; a[0]; a += 2)
		if (a[0] == 31 /* AT_EXECFN */) {
			i64 fd2 = sys4(SYS_openat, AT_FDCWD, (const char *)a[1], O_RDONLY | O_CLOEXEC, 0);
			if (fd2 >= 0) return (int)fd2;
		}
	die("cannot open /proc/self/exe (is /proc mounted?)", fd);
}

static void pread_all(int fd, void *buf, u64 len, u64 off, const char *what)
{
	u8 *p = buf;
	while (len) {
		i64 n = sys4(SYS_pread64, fd, p, len, off);
		if (n == -EINTR) continue;
		if (n < 0) die(what, n);
		if (n == 0) die(what, 0);
		p += n, len -= (u64)n, off += (u64)n;
	}
}

static void parse_manifest(struct image *im, const u8 *base, u64 len);

static void read_manifest(struct image *im)
{
	struct trailer t;
	i64 size = sys3(SYS_lseek, im->fd, 0, SEEK_END);
	if (size < 0) die("cannot size the slinked file", size);
	u64 file_size = (u64)size;
	if (file_size < TRAILER_SIZE) die("not a slinked file: no trailer", 0);
	pread_all(im->fd, &t, TRAILER_SIZE, file_size - TRAILER_SIZE, "cannot read the trailer");
	if (!mem_eq(t.magic, "SLINKYTR", 8)) die("not a slinked file: bad trailer magic", 0);
	if (t.version != FORMAT_VERSION) die("unsupported slinked file version", 0);
	u64 end = file_size - TRAILER_SIZE;
	if (t.manifest_offset > end || t.manifest_length > end - t.manifest_offset ||
	    t.manifest_length < sizeof(struct mf_header) || (t.manifest_offset & 7))
		die("corrupt trailer: manifest out of bounds", 0);

	u64 page_off = t.manifest_offset & ~(PAGE - 1);
	im->map_len = t.manifest_length + (t.manifest_offset - page_off);
	i64 m = sys6(SYS_mmap, 0, (i64)im->map_len, PROT_READ, MAP_PRIVATE, im->fd, (i64)page_off);
	if (m < 0 && m > -4096) die("cannot map the manifest", m);
	im->map = (u8 *)m;
	im->manifest_offset = t.manifest_offset;
	parse_manifest(im, im->map + (t.manifest_offset - page_off), t.manifest_length);
}

/* Checks a manifest (the file's own, or the mailbox's copy) and indexes its objects by role. */
static void parse_manifest(struct image *im, const u8 *base, u64 len)
{
	const struct mf_header *h = (const struct mf_header *)base;
	if (!mem_eq(h->magic, "SLINKYMF", 8) || h->version != FORMAT_VERSION)
		die("corrupt manifest: bad magic or version", 0);
	if (h->object_record_size != sizeof(struct mf_object) || h->object_count == 0 ||
	    h->object_count > MAX_OBJECTS || (h->objects_offset & 7) ||
	    h->objects_offset > len || (u64)h->object_count * sizeof(struct mf_object) > len - h->objects_offset)
		die("corrupt manifest: object table out of bounds", 0);
	if (h->strings_size == 0 || h->strings_offset > len || h->strings_size > len - h->strings_offset ||
	    base[h->strings_offset + h->strings_size - 1] != 0)
		die("corrupt manifest: string table out of bounds", 0);
	im->hdr = h;
	im->objects = (const struct mf_object *)(base + h->objects_offset);
	im->strings = (const char *)(base + h->strings_offset);

	u32 programs = 0, interpreters = 0;
	im->library_count = 0;
	for (u32 i = 0; i < h->object_count; i++) {
		const struct mf_object *o = &im->objects[i];
		if ((o->offset & (PAGE - 1)) || o->offset > im->manifest_offset ||
		    o->size > im->manifest_offset - o->offset || o->size < 64)
			die("corrupt manifest: object out of bounds", 0);
		if (o->name_str >= h->strings_size || o->path_str >= h->strings_size)
			die("corrupt manifest: bad string reference", 0);
		if (o->role == ROLE_PROGRAM) im->program = i, programs++;
		else if (o->role == ROLE_INTERPRETER) im->interpreter = i, interpreters++;
		else if (o->role == ROLE_LIBRARY) im->libraries[im->library_count++] = i;
		else die("corrupt manifest: unknown object role", 0);
	}
	if (programs != 1 || interpreters != 1)
		die("corrupt manifest: needs exactly one program and one interpreter", 0);
}

/*
 * The mailbox (docs/FORMAT.md "Mailbox"): one page of the stub's read-only image that slink fills
 * with a copy of the manifest's object table. The kernel maps it with the rest of the stub, so a
 * stub whose objects are all on the mount reads nothing from its own file: on a FUSE mount,
 * opening /proc/self/exe is a round trip to the daemon (and another at close), 20-90 us of a
 * program start. An empty mailbox (too many objects to fit, or a file from before it) sends the
 * stub to the file's manifest as before.
 */
#define MAILBOX_SIZE 4096
#define MAILBOX_HEADER 64
struct mailbox_header {
	char magic[8]; /* "SLINKYMB" */
	u32 version;   /* 1 once slink filled it; 0 in build/stub */
	u32 manifest_length;
	u64 manifest_offset; /* of the file's own manifest: every object lies before it */
	u8 reserved[40];
};
_Static_assert(sizeof(struct mailbox_header) == MAILBOX_HEADER, "mailbox header layout");

__attribute__((section(".rodata.slinky_mailbox"), aligned(4096), used))
const u8 stub_mailbox[MAILBOX_SIZE] = {'S', 'L', 'I', 'N', 'K', 'Y', 'M', 'B'};

static int read_mailbox(struct image *im)
{
	/* slink rewrites these bytes after the build: hide the initialiser from the optimiser. */
	const u8 *mb = stub_mailbox;
	__asm__("" : "+r"(mb));
	const struct mailbox_header *h = (const struct mailbox_header *)mb;
	if (!mem_eq(h->magic, "SLINKYMB", 8) || h->version != 1) return 0;
	if (h->manifest_length < sizeof(struct mf_header) || h->manifest_length > MAILBOX_SIZE - MAILBOX_HEADER)
		die("corrupt mailbox", 0);
	im->manifest_offset = h->manifest_offset;
	parse_manifest(im, mb + MAILBOX_HEADER, h->manifest_length);
	return 1;
}

/* The slinked file itself, opened the first time something must be read from it. */
static int self_fd(struct image *im)
{
	if (im->fd >= 0) return im->fd;
	im->fd = open_self(im->auxv);
	i64 size = sys3(SYS_lseek, im->fd, 0, SEEK_END);
	if (size < 0) die("cannot size the slinked file", size);
	/* `slinkyfs digest` may rewrite the manifest, never what lies before it. */
	if ((u64)size < im->manifest_offset) die("the slinked file is shorter than its mailbox says", 0);
	return im->fd;
}

/* ---- mapping the embedded loader ---------------------------------------------------------- */

struct elf64_ehdr {
	u8 ident[16];
	u16 type, machine;
	u32 version;
	u64 entry, phoff, shoff;
	u32 flags;
	u16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct elf64_phdr {
	u32 type, flags;
	u64 offset, vaddr, paddr, filesz, memsz, align;
};
#define PT_LOAD 1
#define PF_X 1
#define PF_W 2
#define PF_R 4
#define MAX_PHDRS 64

struct loader {
	u64 base;  /* load bias */
	u64 entry; /* absolute */
	u64 phdr;  /* absolute address of its program headers */
	u64 phnum;
};

static u64 page_down(u64 v) { return v & ~(PAGE - 1); }
static u64 page_up(u64 v) { return (v + PAGE - 1) & ~(PAGE - 1); }
static int is_mmap_error(i64 r) { return r < 0 && r > -4096; }

/* Maps the loader whose bytes are at `base` in file `fd` (the slinked file, or its object file on
 * a slinkyfs mount, where base is 0). */
static void map_interpreter(const struct image *im, struct loader *ld, int fd, u64 base)
{
	const struct mf_object *o = &im->objects[im->interpreter];
	struct elf64_ehdr eh;
	struct elf64_phdr ph[MAX_PHDRS];
	pread_all(fd, &eh, sizeof eh, base, "cannot read the loader's ELF header");
	if (!mem_eq(eh.ident, "\177ELF\2\1", 6) || eh.type != 3 /* ET_DYN */ || eh.machine != 62 ||
	    eh.phentsize != sizeof(struct elf64_phdr) || eh.phnum == 0 || eh.phnum > MAX_PHDRS ||
	    eh.phoff > o->size || eh.phnum * sizeof(struct elf64_phdr) > o->size - eh.phoff)
		die("the embedded loader is not an x86-64 ELF shared object", 0);
	pread_all(fd, ph, eh.phnum * sizeof(struct elf64_phdr), base + eh.phoff,
		  "cannot read the loader's program headers");

	u64 lo = ~0UL, hi = 0;
	for (int i = 0; i < eh.phnum; i++) {
		if (ph[i].type != PT_LOAD) continue;
		if (((ph[i].vaddr - ph[i].offset) & (PAGE - 1)) || ph[i].filesz > ph[i].memsz ||
		    ph[i].offset > o->size || ph[i].filesz > o->size - ph[i].offset ||
		    ph[i].memsz > (1UL << 40) || ph[i].vaddr > (1UL << 40))
			die("the embedded loader has a malformed PT_LOAD", 0);
		if (page_down(ph[i].vaddr) < lo) lo = page_down(ph[i].vaddr);
		if (page_up(ph[i].vaddr + ph[i].memsz) > hi) hi = page_up(ph[i].vaddr + ph[i].memsz);
	}
	if (hi <= lo) die("the embedded loader has no PT_LOAD", 0);

	/* Reserve the whole span first so the segments land at their relative distances. */
	i64 r = sys6(SYS_mmap, 0, (i64)(hi - lo), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (is_mmap_error(r)) die("cannot reserve address space for the loader", r);
	ld->base = (u64)r - lo;
	ld->phdr = 0;
	for (int i = 0; i < eh.phnum; i++) {
		const struct elf64_phdr *p = &ph[i];
		if (p->type != PT_LOAD) continue;
		int prot = (p->flags & PF_R ? PROT_READ : 0) | (p->flags & PF_W ? PROT_WRITE : 0) |
			   (p->flags & PF_X ? PROT_EXEC : 0);
		u64 start = page_down(p->vaddr), file_end = p->vaddr + p->filesz;
		u64 mem_end = page_up(p->vaddr + p->memsz);
		if (p->filesz) {
			r = sys6(SYS_mmap, (i64)(ld->base + start), (i64)(page_up(file_end) - start), prot,
				 MAP_PRIVATE | MAP_FIXED, fd, (i64)(base + page_down(p->offset)));
			if (is_mmap_error(r)) die("cannot map a loader segment", r);
			/* The rest of the last file page belongs to .bss: it must read as zeros. */
			if (p->memsz > p->filesz && (file_end & (PAGE - 1))) {
				if (!(prot & PROT_WRITE)) die("the embedded loader has .bss in a read-only segment", 0);
				memset((void *)(ld->base + file_end), 0, page_up(file_end) - file_end);
			}
		}
		u64 anon_start = p->filesz ? page_up(file_end) : start;
		if (mem_end > anon_start) {
			r = sys6(SYS_mmap, (i64)(ld->base + anon_start), (i64)(mem_end - anon_start), prot,
				 MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
			if (is_mmap_error(r)) die("cannot map the loader's .bss", r);
		}
		if (eh.phoff >= p->offset && eh.phoff + eh.phnum * sizeof(struct elf64_phdr) <= p->offset + p->filesz)
			ld->phdr = ld->base + p->vaddr + (eh.phoff - p->offset);
	}
	if (!ld->phdr) die("the embedded loader's program headers are not in a loaded segment", 0);
	ld->entry = ld->base + eh.entry;
	ld->phnum = eh.phnum;
}

/* ---- where the loader finds each object --------------------------------------------------- */

/*
 * The loader opens objects by path, whole-file, so an object embedded at an offset needs a path
 * of its own. This section is the one place that chooses where each object comes from.
 *
 * Mount mode: when the slinked file lives on a slinkyfs mount whose daemon has published the
 * object as `<mount root>/.slinky/objects/<algorithm>-<hex digest>` (docs/FORMAT.md, "Page
 * cache"), the loader gets that file: one inode per unique object, so one kernel page cache that
 * every process on the machine shares, filled only with pages the daemon verified against their
 * digests. Standalone mode (anywhere else, or for an object the mount does not have yet): copy
 * the object into a memfd (a kernel-side copy, no user-space buffer) and name it
 * /proc/self/fd/N. Nothing is configured: the mount is found from the file's own location.
 */
struct sources {
	int fd[MAX_OBJECTS];        /* per manifest index: memfd, or -1 */
	u8 on_mount[MAX_OBJECTS];   /* per manifest index: found in the objects directory */
	int dir;                    /* the mount's objects directory (O_PATH), or -1 */
};
static struct sources sources;

static int copy_range_to(int out, int in, u64 off, u64 len)
{
	static int no_copy_file_range;
	while (len) {
		i64 n;
		if (!no_copy_file_range) {
			i64 o = (i64)off;
			n = sys6(SYS_copy_file_range, in, (i64)&o, out, 0, (i64)len, 0);
			if (n == -EXDEV || n == -EINVAL || n == -ENOSYS || n == -EOPNOTSUPP) {
				no_copy_file_range = 1;
				continue;
			}
		} else {
			i64 o = (i64)off;
			n = sys4(SYS_sendfile, out, in, &o, len > 0x7ffff000UL ? 0x7ffff000UL : len);
		}
		if (n == -EINTR || n == -EAGAIN) continue;
		if (n <= 0) return n < 0 ? (int)n : -EINVAL;
		off += (u64)n, len -= (u64)n;
	}
	return 0;
}

/* File descriptors the program did not open should not take the numbers it expects (0-2 if
 * closed, 3 onwards): keep ours at the top of the first 1024. */
static int first_high_fd(u32 count)
{
	u64 lim[2];
	if (sys4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, lim) < 0) return 3;
	u64 top = lim[0] < 1024 ? lim[0] : 1024;
	return top > (u64)count + 8 + 3 ? (int)(top - count - 1) : 3;
}

static int move_high(int fd, int *next)
{
	i64 hi = sys3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, *next);
	if (hi < 0) return fd;
	sys1(SYS_close, fd);
	*next = (int)hi + 1;
	return (int)hi;
}

struct kstatx {
	u32 mask, blksize;
	u64 attributes;
	u32 nlink, uid, gid;
	u16 mode, spare0;
	u64 ino, size, blocks, attributes_mask;
	u8 times[64];
	u32 rdev_major, rdev_minor, dev_major, dev_minor;
	u8 rest[112];
};
_Static_assert(sizeof(struct kstatx) == 256, "statx layout");

/* Cached attributes are enough (AT_STATX_DONT_SYNC): a FUSE mount need not be asked again. */
static int stat_at(int dirfd, const char *path, int flags, struct kstatx *st)
{
	return (int)sys6(SYS_statx, dirfd, (i64)path, flags | AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT,
			 STATX_BASIC_STATS, (i64)st, 0);
}

#define OBJECT_NAME_MAX 80 /* "sha256-" + 64 hex digits + NUL */

/* The object's file name on a mount, from its tagged whole-object digest; 0 if it has none. */
static size_t object_name(const struct mf_object *o, char *out)
{
	static const char hex[] = "0123456789abcdef";
	if (o->digest_len != 33 || o->digest[0] != 1 /* SHA-256 */) return 0;
	static const char alg[] = "sha256-";
	size_t n = 0;
	for (const char *s = alg; *s; s++) out[n++] = *s;
	for (int i = 1; i < 33; i++) out[n++] = hex[o->digest[i] >> 4], out[n++] = hex[o->digest[i] & 15];
	out[n] = 0;
	return n;
}

/*
 * The objects directory of the mount holding the slinked file, or -1. The mount root is the
 * highest directory above the file on the same device (no mount table to parse: reading
 * /proc/self/mountinfo costs ~50 us, these cached lookups ~1 us each). Only anonymous devices
 * (FUSE and the like) are considered, so files on ordinary disks cost nothing here. The
 * directory is trusted only when owned by root or by the user running the program and writable
 * by nobody else: a directory anyone else could fill must never supply code.
 */
static int open_objects_dir(u32 *owner)
{
	struct kstatx st;
	static char path[4096 + 32];
	i64 n = sys4(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", path, 4096);
	if (n <= 1 || n >= 4096 || path[0] != '/') return -1;
	path[n] = 0;
	/* A deleted or renamed file fails here or lands elsewhere: the objects are still checked. */
	if (stat_at(AT_FDCWD, path, 0, &st) < 0 || st.dev_major != 0) return -1;
	u32 dev_minor = st.dev_minor;
	size_t len = (size_t)n, root = (size_t)-1;
	for (;;) {
		while (len > 0 && path[len - 1] != '/') len--;
		if (len > 1) len--;           /* drop the slash: path[0, len) is the parent */
		if (len == 0) break;
		char saved = path[len];
		path[len] = 0;
		int r = stat_at(AT_FDCWD, path, 0, &st);
		path[len] = saved;
		if (r < 0 || st.dev_major != 0 || st.dev_minor != dev_minor) break;
		root = len;
		if (len == 1) break; /* "/" itself */
	}
	if (root == (size_t)-1) return -1;
	static const char tail[] = "/.slinky/objects";
	size_t at = root == 1 ? 0 : root;
	for (size_t i = 0; i < sizeof tail; i++) path[at + i] = tail[i];
	i64 dir = sys4(SYS_openat, AT_FDCWD, path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (dir < 0) return -1;
	i64 uid = sys0(SYS_getuid);
	if (stat_at((int)dir, "", AT_EMPTY_PATH, &st) < 0 || st.dev_major != 0 || st.dev_minor != dev_minor ||
	    (st.mode & S_IFMT) != S_IFDIR || (st.mode & 022) || (st.uid != 0 && st.uid != (u32)uid)) {
		sys1(SYS_close, dir);
		return -1;
	}
	*owner = st.uid;
	return (int)dir;
}

/* An object file is usable when it is a regular file of the right size that nobody can write. */
static int object_on_mount(int dir, u32 owner, const struct mf_object *o)
{
	char name[OBJECT_NAME_MAX];
	struct kstatx st;
	if (!object_name(o, name)) return 0;
	if (stat_at(dir, name, AT_SYMLINK_NOFOLLOW, &st) < 0) return 0;
	return (st.mode & S_IFMT) == S_IFREG && (st.mode & 0222) == 0 && st.uid == owner && st.size == o->size;
}

static void prepare_object_sources(struct image *im)
{
	int next = first_high_fd(im->library_count + 2);
	u32 owner = 0, found = 0;
	sources.dir = open_objects_dir(&owner);
	for (u32 i = 0; i < im->hdr->object_count; i++) {
		sources.fd[i] = -1;
		sources.on_mount[i] = sources.dir >= 0 && object_on_mount(sources.dir, owner, &im->objects[i]);
		found += sources.on_mount[i];
	}
	if (sources.dir >= 0) {
		if (found) sources.dir = move_high(sources.dir, &next);
		else sys1(SYS_close, sources.dir), sources.dir = -1;
	}
	for (u32 i = 0; i < im->hdr->object_count; i++) {
		const struct mf_object *o = &im->objects[i];
		/* The interpreter is mapped by the stub itself (see stub_main), never opened by path. */
		if (o->role == ROLE_INTERPRETER || sources.on_mount[i]) continue;
		const char *name = mf_string(im, o->name_str);
		i64 m = sys2(SYS_memfd_create, *name ? name : "slinky-object", MFD_CLOEXEC);
		if (m < 0) die("memfd_create failed", m);
		m = move_high((int)m, &next);
		int err = copy_range_to((int)m, self_fd(im), o->offset, o->size);
		if (err) die("cannot copy an embedded object into memory", err);
		sources.fd[i] = (int)m;
	}
}

/* Maps the loader from its object file on the mount when there is one, else from the slinked
 * file itself (in place: the loader is never copied). */
static void map_interpreter_from_source(struct image *im, struct loader *ld)
{
	u32 i = im->interpreter;
	char name[OBJECT_NAME_MAX];
	if (sources.on_mount[i] && object_name(&im->objects[i], name)) {
		i64 fd = sys4(SYS_openat, sources.dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
		if (fd >= 0) {
			map_interpreter(im, ld, (int)fd, 0);
			sys1(SYS_close, fd);
			return;
		}
	}
	map_interpreter(im, ld, self_fd(im), im->objects[i].offset);
}

/* Writes the path of object i into out (NUL-terminated) and returns its length (without NUL). */
static size_t object_path(const struct image *im, u32 i, char *out)
{
	static const char prefix[] = "/proc/self/fd/";
	char num[24];
	char *digits = fmt_u64(num + sizeof num, (u64)(sources.on_mount[i] ? sources.dir : sources.fd[i]));
	size_t n = 0;
	for (const char *s = prefix; *s; s++) out[n++] = *s;
	while (*digits) out[n++] = *digits++;
	if (sources.on_mount[i]) {
		out[n++] = '/';
		n += object_name(&im->objects[i], out + n);
	}
	out[n] = 0;
	return n;
}
#define OBJECT_PATH_MAX (24 + OBJECT_NAME_MAX)

/* ---- set-id: the loader's secure mode would refuse our preload paths ---------------------- */

static int is_secure(const u64 *auxv)
{
	for (const u64 *a = auxv; a[0]; a += 2)
		if (a[0] == 23 /* AT_SECURE */ && a[1]) return 1;
	return 0;
}

static void drop_privilege(u64 *auxv)
{
	for (u64 *a = auxv; a[0]; a += 2) {
		if (a[0] != 23 /* AT_SECURE */ || a[1] == 0) continue;
		i64 uid = sys0(SYS_getuid), gid = sys0(SYS_getgid);
		if (sys3(SYS_setresgid, gid, gid, gid) < 0 || sys3(SYS_setresuid, uid, uid, uid) < 0)
			die("cannot drop set-id privilege", 0);
		if (uid != 0) {
			/* File capabilities also make a process secure: drop them all. */
			u32 header[2] = {0x20080522, 0};
			u32 data[6] = {0, 0, 0, 0, 0, 0};
			sys2(SYS_capset, header, data);
		}
		a[1] = 0;
	}
}

/* ---- building the loader's stack and jumping to it ---------------------------------------- */

#define AT_NULL 0
#define AT_PHDR 3
#define AT_PHENT 4
#define AT_PHNUM 5
#define AT_BASE 7
#define AT_ENTRY 9

/*
 * Leave for the loader: switch to the real stack, unmap the stub's writable segment (.dynamic,
 * .bss and the private stack the C code ran on: every page of it the stub touched would stay in
 * the process's memory, ~24 KiB of Pss per program, for nothing), and jump. Only the stub's text
 * stays mapped: this code runs from it.
 */
__attribute__((noreturn)) void stub_jump(u64 *sp, u64 entry, u64 unmap_start, u64 unmap_len);
__asm__(".text\n"
	".globl stub_jump\n"
	".type stub_jump,@function\n"
	"stub_jump:\n"
	"	mov %rdi, %rsp\n"
	"	mov %rsi, %r8\n"
	"	mov %rdx, %rdi\n"
	"	mov %rcx, %rsi\n"
	"	mov $11, %eax\n" /* SYS_munmap; a failure leaves the pages mapped, nothing worse */
	"	syscall\n"
	"	xor %eax, %eax\n"
	"	xor %ebx, %ebx\n"
	"	xor %ecx, %ecx\n"
	"	xor %edx, %edx\n" /* no rtld_fini for the loader to register */
	"	xor %ebp, %ebp\n"
	"	xor %edi, %edi\n"
	"	xor %esi, %esi\n"
	"	jmp *%r8\n");

/* Linker-defined bounds of the writable segment: it starts with .dynamic and ends with .bss. */
extern char _DYNAMIC[] __attribute__((visibility("hidden")));
extern char _end[] __attribute__((visibility("hidden")));

static char *push_bytes(char **cursor, const char *s, size_t n)
{
	*cursor -= n + 1;
	memcpy(*cursor, s, n);
	(*cursor)[n] = 0;
	return *cursor;
}

static const char opt_preload[] = "--preload";
static const char opt_argv0[] = "--argv0";

__attribute__((noreturn, used)) void stub_main(u64 *sp)
{
	i64 argc = (i64)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	i64 envc = 0;
	while (envp[envc]) envc++;
	u64 *auxv = (u64 *)(envp + envc + 1);
	i64 auxc = 0;
	while (auxv[2 * auxc] != AT_NULL) auxc++;

	static struct image im;
	im.fd = -1;
	im.auxv = auxv;
	if (!read_mailbox(&im)) {
		im.fd = open_self(auxv);
		read_manifest(&im);
	} else if (is_secure(auxv)) {
		/* A set-id file may be unreadable to the user that drop_privilege leaves us as. */
		self_fd(&im);
	}
	drop_privilege(auxv);
	prepare_object_sources(&im);
	struct loader ld;
	map_interpreter_from_source(&im, &ld);

	/*
	 * New strings go just below the kernel's block (argument and environment strings stay where
	 * the kernel put them, AT_RANDOM too); the new argc/argv/envp/auxv go below the strings. This
	 * C code runs on its own stack (see _start), so nothing here is overwritten.
	 */
	char *cursor = (char *)sp;
	char path[OBJECT_PATH_MAX];
	size_t n = object_path(&im, im.program, path);
	char *program_path = push_bytes(&cursor, path, n);
	char *preload = 0;
	if (im.library_count) {
		size_t total = 0;
		for (u32 i = 0; i < im.library_count; i++) total += object_path(&im, im.libraries[i], path) + 1;
		cursor -= total;
		preload = cursor;
		char *w = cursor;
		for (u32 i = 0; i < im.library_count; i++) {
			n = object_path(&im, im.libraries[i], w);
			w += n;
			*w++ = i + 1 < im.library_count ? ' ' : 0;
		}
	}
	const char *interp_name = mf_string(&im, im.objects[im.interpreter].path_str);
	char *loader_argv0 = push_bytes(&cursor, interp_name, str_len(interp_name));

	i64 new_argc = 1 + (preload ? 2 : 0) + (argc > 0 ? 2 : 0) + 1 + (argc > 1 ? argc - 1 : 0);
	u64 words = 1 + (u64)new_argc + 1 + (u64)envc + 1 + 2 * ((u64)auxc + 1);
	u64 *nsp = (u64 *)(((u64)cursor - words * 8) & ~15UL);
	u64 *w = nsp;
	*w++ = (u64)new_argc;
	*w++ = (u64)loader_argv0;
	if (preload) *w++ = (u64)opt_preload, *w++ = (u64)preload;
	if (argc > 0) *w++ = (u64)opt_argv0, *w++ = (u64)argv[0];
	*w++ = (u64)program_path;
	for (i64 i = 1; i < argc; i++) *w++ = (u64)argv[i];
	*w++ = 0;
	for (i64 i = 0; i < envc; i++) *w++ = (u64)envp[i];
	*w++ = 0;
	for (i64 i = 0; i < auxc; i++) {
		u64 type = auxv[2 * i], val = auxv[2 * i + 1];
		switch (type) {
		case AT_PHDR: val = ld.phdr; break;
		case AT_PHENT: val = sizeof(struct elf64_phdr); break;
		case AT_PHNUM: val = ld.phnum; break;
		case AT_BASE: val = 0; break;
		/* The loader treats itself as the program when AT_ENTRY is its own entry point. */
		case AT_ENTRY: val = ld.entry; break;
		}
		*w++ = type, *w++ = val;
	}
	*w++ = AT_NULL, *w++ = 0;

	if (im.map) sys2(SYS_munmap, im.map, im.map_len);
	if (im.fd >= 0) sys1(SYS_close, im.fd);
	u64 rw_start = page_down((u64)_DYNAMIC);
	stub_jump(nsp, ld.entry, rw_start, page_up((u64)_end) - rw_start);
}

/* The kernel enters here with the argument block at %rsp. Switch to a private stack so the C code
 * can build the loader's argument block on the real stack without overwriting its own frames. */
__attribute__((visibility("hidden"), aligned(16))) char stub_stack[64 * 1024];
__asm__(".text\n"
	".globl _start\n"
	".type _start,@function\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	mov %rsp, %rdi\n"
	"	lea stub_stack+65536(%rip), %rsp\n"
	"	call stub_main\n"
	"	hlt\n");
