/* slinky_fusell: an N-API binding to libfuse3's low-level (inode-based) API, used by
 * src/fs/lowlevel.ts.
 *
 * Reading the device. Requests are read with fuse_session_receive_buf and decoded by
 * fuse_session_process_buf into our ll_* callbacks, which copy what JS needs into a `struct rq`,
 * queue it and return at once; nothing ever waits for JS, so any number of requests can be in
 * flight. Who reads:
 *  - by default the JS thread itself: the device is non-blocking and watched by a libuv poll
 *    handle, and each wake-up reads what is there (up to 64 requests) and dispatches the batch
 *    (device_readable). The kernel wakes the thread that answers, with no hand-off.
 *  - optionally a session thread (`mainThreadLoop` false): it polls the device and an eventfd
 *    (to stop) and wakes the JS thread through a threadsafe function only when the queue goes
 *    from empty to non-empty, so one wake-up carries a whole batch. Measured slower for
 *    metadata (one more thread hand-off per request), kept for comparison.
 * Either way a session thread mounts (as a non-root user that execs fusermount3).
 *
 * Answering. JS gets a numeric id per request and answers it later with one of the reply
 * functions (fuse_reply_* may be called from any thread). Ids are slot index + generation, so a
 * second or stale answer is refused instead of touching freed memory. A large write keeps its
 * receive buffer and reaches JS without a copy; the Buffer is detached when answered.
 *
 * Immutable inodes. JS may mark inodes whose contents and attributes never change
 * (setImmutable: the page cache's published objects). Their read-only opens are answered here,
 * in the callback, with handle IMMUTABLE_FH, the kernel's page cache kept and no FLUSH at close;
 * their releases (and flushes) of that handle are answered here too. A program start opens
 * several such files, and each answer from JS cost a turn of the JS thread (napi call, handler,
 * promise) while the caller waits. Reads still go to JS, with fh IMMUTABLE_FH; any other open
 * of those inodes (for writing, O_TRUNC) goes to JS as before, which decides. Their GETATTRs are
 * answered here too once JS has answered one (imm_learn): the attributes never change.
 *
 * Passthrough (kernel 6.9+, FUSE_PASSTHROUGH). JS may give an immutable inode a backing file
 * whose bytes it has verified to be the inode's (setBacking: a system library identical to an
 * embedded object). Its opens are then answered with FOPEN_PASSTHROUGH: reads and mmap go to
 * the backing file's page cache without a request, so a slinked program shares libc's pages
 * with every dynamic program. The kernel refuses to mix
 * passthrough and cached opens of one inode, so the mode is decided by the first open and kept
 * while any open counted here lasts. libfuse 3.14 knows none of this: io_read sees whether the
 * kernel offers it, io_writev adds it to the INIT reply and the backing id to OPEN replies.
 *
 * Invalidation runs on a notifier thread, started on first use: the kernel may block those
 * calls on locks held by requests that only the JS thread can answer.
 *
 * The device fd is written by the JS thread (replies) and the notifier; it is closed only after
 * both stopped using it, so a reply can never land in a reused descriptor. libfuse's signal
 * handlers are not installed: signals are the JS side's business. */
#define FUSE_USE_VERSION 312
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <uchar.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Request kinds delivered to JS; the order is part of the contract with src/fs/lowlevel.ts,
 * which checks it against `opNames` at load time. */
enum {
  OP_INIT, OP_ENDED, OP_MOUNT_FAILED, OP_NOTIFY_DONE, OP_MOUNTED,
  OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR, OP_UNLINK,
  OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE,
  OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR, OP_STATFS, OP_ACCESS, OP_CREATE,
  OP_READDIRPLUS, OP_FALLOCATE, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR,
  OP_COPY_FILE_RANGE, OP_LSEEK,
  OP_COUNT
};
static const char *const OP_NAMES[OP_COUNT] = {
  "init", "ended", "mountFailed", "notifyDone", "mounted",
  "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink",
  "rmdir", "symlink", "rename", "link", "open", "read", "write", "flush", "release",
  "fsync", "opendir", "readdir", "releasedir", "fsyncdir", "statfs", "access", "create",
  "readdirplus", "fallocate", "setxattr", "getxattr", "listxattr", "removexattr",
  "copyFileRange", "lseek",
};

/* Layout of the Float64Array JS fills before replyEntry/replyAttr/replyCreate/replyStatfs. */
enum {
  SC_INO, SC_MODE, SC_NLINK, SC_UID, SC_GID, SC_RDEV, SC_SIZE, SC_BLOCKS, SC_BLKSIZE, SC_ATIME, SC_MTIME,
  SC_CTIME, SC_GENERATION, SC_ATTR_TIMEOUT, SC_ENTRY_TIMEOUT, SC_FH, SC_OPEN_FLAGS, SC_COUNT
};
enum {
  SF_BSIZE, SF_FRSIZE, SF_BLOCKS, SF_BFREE, SF_BAVAIL, SF_FILES, SF_FFREE, SF_FAVAIL, SF_FSID,
  SF_FLAG, SF_NAMEMAX
};
/* Bits of SC_OPEN_FLAGS. */
#define OPEN_DIRECT_IO 1
#define OPEN_KEEP_CACHE 2
#define OPEN_NONSEEKABLE 4
#define OPEN_CACHE_DIR 8
#define OPEN_NOFLUSH 16

/* Write payloads at least this big keep their receive buffer and reach JS without a copy;
 * smaller ones are copied so the buffer goes straight back to the loop. */
#ifndef ZERO_COPY_MIN
#define ZERO_COPY_MIN 16384
#endif
#define POOL_MAX 32
#define LOG_MAX 512
/* The handle of an open immutable inode; JS must not hand out this number for other opens. */
#define IMMUTABLE_FH 0

struct session;

/* An immutable inode; `backing` > 0 is its passthrough backing id (see "Passthrough"). */
struct imm {
  uint64_t ino;
  int32_t backing;
  uint32_t opens; /* opens answered here and not yet released */
  bool passthrough; /* how those opens were answered */
  bool has_attr; /* `st` is what JS last answered for it (see imm_learn) */
  double attr_timeout;
  struct stat st;
};

/* Passthrough's kernel ABI (linux/fuse.h of 6.9+; Debian 12's headers are 6.1). */
#define SLINKY_FUSE_INIT_EXT (1u << 30)
#define SLINKY_FUSE_PASSTHROUGH_FLAGS2 (1u << 5) /* FUSE_PASSTHROUGH is bit 37 */
#define SLINKY_FOPEN_PASSTHROUGH (1u << 7)
#define SLINKY_INIT_OUT_FLAGS2 32
#define SLINKY_INIT_OUT_MAX_STACK_DEPTH 36
#define SLINKY_OPEN_OUT_BACKING_ID 12
struct slinky_backing_map { int32_t fd; uint32_t flags; uint64_t padding; };
#define SLINKY_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct slinky_backing_map)
#define SLINKY_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* One request on its way to JS, or an internal event. Strings live in `strs`. */
struct rq {
  struct rq *next;
  int op;
  fuse_req_t req;
  uint32_t uid, gid, pid, umask;
  uint64_t ino, ino2, fh, fh2; /* fh2: copy_file_range's destination handle */
  bool has_fh;
  int64_t off, off2;
  uint64_t size;
  int flags, to_set;
  uint32_t mode, mask;
  uint32_t set_uid, set_gid;
  uint64_t rdev;
  double atime, mtime, ctime;
  const char *name, *name2;
  char *data;        /* write payload: inside rbuf (zero-copy) or malloc'ed */
  void *rbuf;        /* receive buffer owned by this request, back to the pool when answered */
  napi_ref ab_ref;   /* the ArrayBuffer over rbuf handed to JS: detached when answered */
  struct fuse_forget_data *forgets;
  size_t nforgets;
  napi_deferred deferred; /* OP_NOTIFY_DONE */
  int result;
  char strs[];
};

struct slot {
  struct rq *r;
  uint32_t gen;
  uint32_t next_free;
};

struct notify {
  struct notify *next;
  int kind; /* 0 inval inode, 1 inval entry, 2 delete */
  uint64_t ino, ino2;
  int64_t off, len;
  napi_deferred deferred;
  char name[];
};

struct session {
  napi_env env;
  int refs; /* the JS handle + the threadsafe function (whose finalizer runs last) */
  struct fuse_session *se;
  char *mountpoint;
  unsigned conn_minor; /* the connection's number under /sys/fs/fuse/connections (0 = unknown) */

  /* configuration, fixed before the session thread starts */
  unsigned max_write, max_readahead;
  bool writeback, cache_symlinks, no_parallel_dirops, readdirplus_wanted, posix_acl;
  /* Read the device on the JS thread through libuv instead of on a session thread: one
   * thread hand-off less per request (see device_readable). */
  bool main_loop;

  pthread_t thread;
  bool thread_started;
  int wake_fd;
  napi_threadsafe_function tsfn;
  napi_ref dispatch_ref;
  napi_ref scratch_ref;
  double *scratch;

  pthread_mutex_t qlock;
  struct rq *qhead, *qtail;
  bool wake_pending;

  pthread_mutex_t plock;
  void *pool[POOL_MAX];
  int pool_n;

  /* session thread only */
  bool patch_parallel; /* see io_writev */
  bool init_reply_pending, init_seen; /* the INIT exchange is still to come */
  void *loop_buf;
  bool loop_buf_taken;
  char log[LOG_MAX];

  /* JS thread only */
  uv_poll_t poll;
  bool polling;
  uv_idle_t spin; /* keeps the loop polling without sleeping for a moment after a request */
  bool spin_ready;
  uint64_t spin_ns, spin_until;
  struct fuse_buf mbuf;
  napi_async_context actx;
  napi_ref resource_ref;
  struct slot *slots;
  uint32_t nslots, free_head, live;
  bool stopping, ended, torn_down, teardown_started;
  napi_deferred closed; /* resolved when everything is released */

  /* notifier */
  pthread_mutex_t nlock;
  pthread_cond_t ncond;
  struct notify *nhead, *ntail;
  bool notifier_started, notifier_stop, notifier_busy;
  pthread_t notifier;

  /* immutable inodes: set on the JS thread, read by whichever thread reads the device. An
   * open-addressing table keyed by inode number (0 is never an inode: free; IMM_GONE: removed). */
  pthread_mutex_t ilock;
  struct imm *imm;
  uint32_t imm_cap, imm_n, imm_used; /* slots, members, members + removed */
  uint64_t fast_opens, fast_flushes, fast_releases, passthrough_opens, fast_getattrs;

  /* passthrough: offered by the kernel (seen in INIT), then granted by our INIT reply */
  bool passthrough_wanted, passthrough_offered, passthrough_on;
  /* The kernel enforces POSIX ACLs, which JS stores (set by ll_init, before any request). */
  bool posix_acl_on;

  struct session *gnext; /* in g_mounted while mounted */
};

/* Sessions still mounted, for the exit handler: process.exit() and fatal exceptions end the
 * process without running N-API cleanup hooks, which would leave a dead mount behind. Whoever
 * takes a session off this list (teardown, cleanup hook, exit handler) unmounts it. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *g_mounted;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void g_add(struct session *s)
{
  pthread_mutex_lock(&g_lock);
  s->gnext = g_mounted;
  g_mounted = s;
  pthread_mutex_unlock(&g_lock);
}

/* Unmount `s` unless someone else already did; true if this call did it. */
static bool g_unmount(struct session *s)
{
  bool found = false;
  pthread_mutex_lock(&g_lock);
  for (struct session **p = &g_mounted; *p; p = &(*p)->gnext) {
    if (*p == s) {
      *p = s->gnext;
      found = true;
      break;
    }
  }
  if (found) fuse_session_unmount(s->se);
  pthread_mutex_unlock(&g_lock);
  return found;
}

static void g_exit(void)
{
  pthread_mutex_lock(&g_lock);
  for (struct session *s = g_mounted; s; s = s->gnext) fuse_session_unmount(s->se);
  g_mounted = NULL;
  pthread_mutex_unlock(&g_lock);
}

static void g_register_exit(void)
{
  atexit(g_exit);
}

#define NO_SLOT UINT32_MAX
#define SLOT_BITS 24
#define SLOT_MASK ((1u << SLOT_BITS) - 1)

/* ---- small helpers ------------------------------------------------------------------------ */

/* While set, libfuse's messages from this thread become the text of the error we report
 * (mounting, parsing options); otherwise errors go to stderr. */
static __thread char *t_log;

static void on_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
  char line[LOG_MAX];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n && line[n - 1] == '\n') line[--n] = 0;
  if (t_log) snprintf(t_log, LOG_MAX, "%s", line);
  else if (level <= FUSE_LOG_ERR) fprintf(stderr, "slinky_fusell: %s\n", line);
}

/* Length of the valid UTF-8 sequence at p (its code point in *cp), or 0 if p does not start one. */
static int utf8_seq(const unsigned char *p, unsigned *cp)
{
  unsigned c = p[0];
  if (c < 0x80) { *cp = c; return 1; }
  int n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
  if (!n) return 0;
  unsigned v = c & (0x3f >> n);
  for (int i = 1; i <= n; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
    v = v << 6 | (p[i] & 0x3f);
  }
  if ((n == 2 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) || (n == 3 && (v < 0x10000 || v > 0x10ffff))) return 0;
  *cp = v;
  return n + 1;
}

/* Names are bytes and JavaScript strings UTF-16 (src/store/names.ts has the same mapping): a
 * name that is valid UTF-8 crosses as its text, and each byte of one that is not valid UTF-8
 * crosses as the lone surrogate U+DC00 + byte ("surrogateescape"), so every name survives. */
static napi_value name_value(napi_env env, const char *name)
{
  const unsigned char *p = (const unsigned char *)name;
  unsigned cp;
  int k;
  while (*p && (k = utf8_seq(p, &cp)) > 0) p += k;
  napi_value out = NULL;
  size_t len = strlen(name);
  char16_t *u = *p ? malloc((len + 1) * sizeof *u) : NULL;
  if (!u) { /* valid UTF-8 (nearly every name), or out of memory: the text */
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &out);
    return out;
  }
  p = (const unsigned char *)name;
  size_t n = 0;
  while (*p) {
    k = utf8_seq(p, &cp);
    if (!k) { u[n++] = (char16_t)(0xdc00 + *p++); continue; }
    p += k;
    if (cp >= 0x10000) {
      u[n++] = (char16_t)(0xd800 + ((cp - 0x10000) >> 10));
      u[n++] = (char16_t)(0xdc00 + ((cp - 0x10000) & 0x3ff));
    } else {
      u[n++] = (char16_t)cp;
    }
  }
  napi_create_string_utf16(env, u, n, &out);
  free(u);
  return out;
}

/* The bytes of a name string (the inverse of name_value), NUL-terminated, in malloc'd memory;
 * NULL if `v` is not a string or memory ran out. */
static char *get_name(napi_env env, napi_value v, size_t *len_out)
{
  size_t n;
  if (napi_get_value_string_utf16(env, v, NULL, 0, &n) != napi_ok) return NULL;
  char16_t *u = malloc((n + 1) * sizeof *u);
  char *out = malloc(3 * n + 1);
  if (!u || !out) { free(u); free(out); return NULL; }
  napi_get_value_string_utf16(env, v, u, n + 1, &n);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned c = u[i];
    if (c >= 0xdc80 && c <= 0xdcff) { out[o++] = (char)(c - 0xdc00); continue; }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (u[i + 1] & 0xfc00) == 0xdc00) {
      c = 0x10000 + ((c - 0xd800) << 10) + (u[++i] - 0xdc00);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      c = 0xfffd;
    }
    if (c < 0x80) out[o++] = (char)c;
    else if (c < 0x800) { out[o++] = (char)(0xc0 | c >> 6); out[o++] = (char)(0x80 | (c & 0x3f)); }
    else if (c < 0x10000) { out[o++] = (char)(0xe0 | c >> 12); out[o++] = (char)(0x80 | ((c >> 6) & 0x3f)); out[o++] = (char)(0x80 | (c & 0x3f)); }
    else { out[o++] = (char)(0xf0 | c >> 18); out[o++] = (char)(0x80 | ((c >> 12) & 0x3f)); out[o++] = (char)(0x80 | ((c >> 6) & 0x3f)); out[o++] = (char)(0x80 | (c & 0x3f)); }
  }
  out[o] = 0;
  free(u);
  if (len_out) *len_out = o;
  return out;
}

static double ts_ms(const struct timespec *t)
{
  return (double)t->tv_sec * 1e3 + (double)t->tv_nsec / 1e6;
}

static void ms_ts(double ms, struct timespec *t)
{
  if (!isfinite(ms)) ms = 0;
  double sec = floor(ms / 1e3);
  long long ns = llround((ms - sec * 1e3) * 1e6);
  if (ns >= 1000000000LL) { sec += 1; ns -= 1000000000LL; }
  if (ns < 0) ns = 0;
  t->tv_sec = (time_t)sec;
  t->tv_nsec = (long)ns;
}

static struct rq *rq_new(int op, fuse_req_t req, const char *name, const char *name2)
{
  size_t l1 = name ? strlen(name) + 1 : 0, l2 = name2 ? strlen(name2) + 1 : 0;
  struct rq *r = calloc(1, sizeof *r + l1 + l2);
  if (!r) return NULL;
  r->op = op;
  r->req = req;
  if (name) { memcpy(r->strs, name, l1); r->name = r->strs; }
  if (name2) { memcpy(r->strs + l1, name2, l2); r->name2 = r->strs + l1; }
  if (req) {
    const struct fuse_ctx *c = fuse_req_ctx(req);
    r->uid = c->uid; r->gid = c->gid; r->pid = c->pid; r->umask = c->umask;
  }
  return r;
}

/* ---- receive-buffer pool (session thread takes, JS thread gives back) --------------------- */

static void *pool_take(struct session *s)
{
  void *p = NULL;
  pthread_mutex_lock(&s->plock);
  if (s->pool_n) p = s->pool[--s->pool_n];
  pthread_mutex_unlock(&s->plock);
  return p; /* NULL: libfuse allocates one of the session's buffer size */
}

static void pool_give(struct session *s, void *p)
{
  if (!p) return;
  pthread_mutex_lock(&s->plock);
  if (s->pool_n < POOL_MAX) { s->pool[s->pool_n++] = p; p = NULL; }
  pthread_mutex_unlock(&s->plock);
  free(p);
}

/* ---- immutable inodes ---------------------------------------------------------------------- */

/* The backing id of the OPEN reply being sent by this thread (see io_writev). */
static __thread int32_t t_open_backing;

#define IMM_GONE UINT64_MAX

static uint32_t imm_slot(uint64_t ino, uint32_t cap)
{
  uint64_t h = ino * 0x9e3779b97f4a7c15ull; /* Fibonacci hashing: inode numbers are dense */
  return (uint32_t)(h >> 32) & (cap - 1);
}

/* Caller holds ilock. */
static struct imm *imm_find(struct session *s, uint64_t ino)
{
  if (!s->imm_n) return NULL;
  for (uint32_t i = imm_slot(ino, s->imm_cap);; i = (i + 1) & (s->imm_cap - 1)) {
    if (s->imm[i].ino == ino) return &s->imm[i];
    if (!s->imm[i].ino) return NULL;
  }
}

/* Caller holds ilock. false: out of memory. */
static bool imm_add(struct session *s, uint64_t ino)
{
  if (imm_find(s, ino)) return true;
  if ((s->imm_used + 1) * 2 > s->imm_cap) {
    /* Rebuild at most a quarter full (dropping removed slots): grows or just cleans up. */
    uint32_t cap = 64;
    while ((uint64_t)(s->imm_n + 1) * 4 > cap) {
      if (cap >= 1u << 30) return false;
      cap *= 2;
    }
    struct imm *t = calloc(cap, sizeof *t);
    if (!t) return false;
    for (uint32_t j = 0; j < s->imm_cap; j++) {
      struct imm *e = &s->imm[j];
      if (!e->ino || e->ino == IMM_GONE) continue;
      uint32_t i = imm_slot(e->ino, cap);
      while (t[i].ino) i = (i + 1) & (cap - 1);
      t[i] = *e;
    }
    free(s->imm);
    s->imm = t;
    s->imm_cap = cap;
    s->imm_used = s->imm_n;
  }
  uint32_t i = imm_slot(ino, s->imm_cap);
  while (s->imm[i].ino && s->imm[i].ino != IMM_GONE) i = (i + 1) & (s->imm_cap - 1);
  if (!s->imm[i].ino) s->imm_used++;
  s->imm[i] = (struct imm){ .ino = ino };
  s->imm_n++;
  return true;
}

/* Caller holds ilock. The backing id it had (0: none), for the caller to close. */
static int32_t imm_remove(struct session *s, uint64_t ino)
{
  struct imm *e = imm_find(s, ino);
  if (!e) return 0;
  int32_t backing = e->backing;
  *e = (struct imm){ .ino = IMM_GONE };
  s->imm_n--;
  return backing;
}

/* True (and counted, unless `counter` is NULL) when `ino` is immutable: the caller answers the
 * request itself. */
static bool imm_take(struct session *s, uint64_t ino, uint64_t *counter)
{
  pthread_mutex_lock(&s->ilock);
  bool yes = imm_find(s, ino) != NULL;
  if (yes && counter) (*counter)++;
  pthread_mutex_unlock(&s->ilock);
  return yes;
}

/* An open of immutable `ino` answered here: false if it is not immutable; else *backing is the
 * backing id to answer with (0: the kernel's own page cache of the inode). */
static bool imm_open(struct session *s, uint64_t ino, int32_t *backing)
{
  pthread_mutex_lock(&s->ilock);
  struct imm *e = imm_find(s, ino);
  if (e) {
    s->fast_opens++;
    /* The first open decides; later ones follow it while any is open (no mixing). */
    if (!e->opens) e->passthrough = e->backing > 0 && s->passthrough_on;
    e->opens++;
    *backing = e->passthrough ? e->backing : 0;
    if (*backing) s->passthrough_opens++;
  }
  pthread_mutex_unlock(&s->ilock);
  return e != NULL;
}

/* Attributes JS just answered for `st->st_ino` (a GETATTR or LOOKUP reply): kept if the inode is
 * immutable, whose attributes never change, so that its next GETATTRs are answered here. They
 * come often with passthrough: every passthrough read or mmap makes the kernel drop the cached
 * atime, so the loader's fstat after reading an object would otherwise wake JS each time. */
static void imm_learn(struct session *s, const struct stat *st, double timeout)
{
  pthread_mutex_lock(&s->ilock);
  struct imm *e = imm_find(s, (uint64_t)st->st_ino);
  if (e) {
    e->st = *st;
    e->attr_timeout = timeout;
    e->has_attr = true;
  }
  pthread_mutex_unlock(&s->ilock);
}

/* The attributes of immutable `ino` if JS has answered them once (counted). */
static bool imm_attr(struct session *s, uint64_t ino, struct stat *st, double *timeout)
{
  pthread_mutex_lock(&s->ilock);
  struct imm *e = imm_find(s, ino);
  bool yes = e && e->has_attr;
  if (yes) {
    *st = e->st;
    *timeout = e->attr_timeout;
    s->fast_getattrs++;
  }
  pthread_mutex_unlock(&s->ilock);
  return yes;
}

/* The release of an open imm_open answered: false if `ino` is not immutable (any more). */
static bool imm_release(struct session *s, uint64_t ino)
{
  pthread_mutex_lock(&s->ilock);
  struct imm *e = imm_find(s, ino);
  if (e) {
    s->fast_releases++;
    if (e->opens) e->opens--;
  }
  pthread_mutex_unlock(&s->ilock);
  return e != NULL;
}

/* ---- queue to the JS thread --------------------------------------------------------------- */

static void post(struct session *s, struct rq *r)
{
  bool wake;
  r->next = NULL;
  pthread_mutex_lock(&s->qlock);
  if (s->qtail) s->qtail->next = r; else s->qhead = r;
  s->qtail = r;
  wake = !s->wake_pending;
  s->wake_pending = true;
  pthread_mutex_unlock(&s->qlock);
  /* If the function is already closing, teardown drains the queue itself. */
  if (wake) napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
}

static struct rq *take_queue(struct session *s)
{
  pthread_mutex_lock(&s->qlock);
  struct rq *r = s->qhead;
  s->qhead = s->qtail = NULL;
  s->wake_pending = false;
  pthread_mutex_unlock(&s->qlock);
  return r;
}

/* Queue a request; if memory runs out answer it here so the caller is not left waiting. */
#define POST_OR_FAIL(s, r, req)                                                                \
  do {                                                                                         \
    if (!(r)) { fuse_reply_err((req), ENOMEM); return; }                                       \
    post((s), (r));                                                                            \
  } while (0)

#define SESSION(req) ((struct session *)fuse_req_userdata(req))

/* ---- libfuse callbacks (session thread) --------------------------------------------------- */

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
  struct session *s = userdata;
  unsigned want_on = FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
  if (!s->no_parallel_dirops) want_on |= FUSE_CAP_PARALLEL_DIROPS;
  s->patch_parallel = !s->no_parallel_dirops && (conn->capable & FUSE_CAP_PARALLEL_DIROPS);
  if (s->writeback) want_on |= FUSE_CAP_WRITEBACK_CACHE;
  if (s->cache_symlinks) want_on |= FUSE_CAP_CACHE_SYMLINKS;
  /* ACLs: the kernel enforces them and leaves the umask to us, since a default ACL replaces it. */
  if (s->posix_acl && (conn->capable & FUSE_CAP_DONT_MASK)) want_on |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
  conn->want |= want_on & conn->capable;
  s->posix_acl_on = (conn->want & FUSE_CAP_POSIX_ACL) != 0;
  /* Splice would need write_buf and pipes; EXPORT_SUPPORT would promise stable lookups of "."
   * and ".." we do not implement; with HANDLE_KILLPRIV off the kernel clears setuid/setgid
   * itself (by a setattr) instead of relying on every write handler; with ATOMIC_O_TRUNC off an
   * O_TRUNC open arrives as setattr(size 0) followed by a plain open. */
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
                  FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_ATOMIC_O_TRUNC);
  if (!s->readdirplus_wanted) conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
  /* Only ever lower max_write: libfuse sized its receive buffers from the kernel's limit. */
  if (s->max_write && s->max_write < conn->max_write) conn->max_write = s->max_write;
  if (s->max_readahead && s->max_readahead < conn->max_readahead) conn->max_readahead = s->max_readahead;
  struct rq *r = rq_new(OP_INIT, NULL, NULL, NULL);
  if (!r) return;
  r->ino = conn->proto_major;
  r->ino2 = conn->proto_minor;
  r->size = conn->max_write;
  r->mode = conn->capable;
  r->mask = conn->want;
  r->off = conn->max_readahead;
  post(s, r);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct rq *r = rq_new(OP_LOOKUP, req, name, NULL);
  if (r) r->ino = parent;
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
  struct session *s = SESSION(req);
  struct rq *r = rq_new(OP_FORGET, NULL, NULL, NULL);
  fuse_reply_none(req);
  if (!r) return;
  r->ino = ino;
  r->size = nlookup;
  post(s, r);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
  struct session *s = SESSION(req);
  struct rq *r = rq_new(OP_FORGET, NULL, NULL, NULL);
  if (r) {
    r->forgets = malloc(count * sizeof *forgets);
    if (r->forgets) {
      memcpy(r->forgets, forgets, count * sizeof *forgets);
      r->nforgets = count;
    }
  }
  fuse_reply_none(req);
  if (!r) return;
  if (!r->forgets) { free(r); return; }
  post(s, r);
}

static void set_fh(struct rq *r, struct fuse_file_info *fi)
{
  if (fi) { r->fh = fi->fh; r->has_fh = true; r->flags = fi->flags; }
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct stat st;
  double timeout;
  if (imm_attr(SESSION(req), ino, &st, &timeout)) {
    fuse_reply_attr(req, &st, timeout);
    return;
  }
  struct rq *r = rq_new(OP_GETATTR, req, NULL, NULL);
  if (r) { r->ino = ino; set_fh(r, fi); }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
  struct rq *r = rq_new(OP_SETATTR, req, NULL, NULL);
  if (r) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    r->ino = ino;
    set_fh(r, fi);
    r->to_set = to_set;
    r->mode = attr->st_mode;
    r->set_uid = attr->st_uid;
    r->set_gid = attr->st_gid;
    r->size = attr->st_size;
    r->atime = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? ts_ms(&now) : ts_ms(&attr->st_atim);
    r->mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? ts_ms(&now) : ts_ms(&attr->st_mtim);
    r->ctime = (to_set & FUSE_SET_ATTR_CTIME) ? ts_ms(&attr->st_ctim) : ts_ms(&now);
  }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
  struct rq *r = rq_new(OP_READLINK, req, NULL, NULL);
  if (r) r->ino = ino;
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
  struct rq *r = rq_new(OP_MKNOD, req, name, NULL);
  if (r) { r->ino = parent; r->mode = mode; r->rdev = rdev; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
  struct rq *r = rq_new(OP_MKDIR, req, name, NULL);
  /* The kernel passes mkdir's mode without S_IFDIR. */
  if (r) { r->ino = parent; r->mode = (mode & ~S_IFMT) | S_IFDIR; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_unlink_or_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name, int op)
{
  struct rq *r = rq_new(op, req, name, NULL);
  if (r) r->ino = parent;
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) { ll_unlink_or_rmdir(req, parent, name, OP_UNLINK); }
static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) { ll_unlink_or_rmdir(req, parent, name, OP_RMDIR); }

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
  struct rq *r = rq_new(OP_SYMLINK, req, name, link);
  if (r) r->ino = parent;
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags)
{
  struct rq *r = rq_new(OP_RENAME, req, name, newname);
  if (r) { r->ino = parent; r->ino2 = newparent; r->flags = (int)flags; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
  struct rq *r = rq_new(OP_LINK, req, newname, NULL);
  if (r) { r->ino = ino; r->ino2 = newparent; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_open_like(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
  struct rq *r = rq_new(op, req, NULL, NULL);
  if (r) { r->ino = ino; r->flags = fi->flags; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct session *s = SESSION(req);
  int32_t backing = 0;
  if ((fi->flags & O_ACCMODE) == O_RDONLY && !(fi->flags & O_TRUNC) && imm_open(s, ino, &backing)) {
    fi->fh = IMMUTABLE_FH;
    fi->direct_io = 0;
    fi->keep_cache = !backing; /* the kernel allows passthrough with nothing but NOFLUSH */
    fi->noflush = 1;
    fi->nonseekable = 0;
    /* An interrupted caller leaves nothing to undo: the kernel releases what it was given. */
    t_open_backing = backing;
    fuse_reply_open(req, fi);
    t_open_backing = 0;
    return;
  }
  ll_open_like(req, ino, fi, OP_OPEN);
}
static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { ll_open_like(req, ino, fi, OP_OPENDIR); }

static void ll_read_like(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi, int op)
{
  struct rq *r = rq_new(op, req, NULL, NULL);
  if (r) { r->ino = ino; set_fh(r, fi); r->off = off; r->size = size; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) { ll_read_like(req, ino, size, off, fi, OP_READ); }
static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) { ll_read_like(req, ino, size, off, fi, OP_READDIR); }
static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) { ll_read_like(req, ino, size, off, fi, OP_READDIRPLUS); }

/* Give `r` its own copy of a payload the request's buffer holds only until the callback returns
 * (a write's or setxattr's bytes). false: out of memory. */
static bool rq_copy_data(struct rq *r, const char *buf, size_t size)
{
  r->data = malloc(size ? size : 1);
  if (!r->data) return false;
  memcpy(r->data, buf, size);
  r->size = size;
  return true;
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
  struct session *s = SESSION(req);
  struct rq *r = rq_new(OP_WRITE, req, NULL, NULL);
  if (!r) { fuse_reply_err(req, ENOMEM); return; }
  r->ino = ino;
  set_fh(r, fi);
  r->off = off;
  r->size = size;
  r->mask = fi->writepage;
  const char *lb = s->loop_buf;
  /* Without splice the payload always sits in the buffer the loop just read into. */
  if (size >= ZERO_COPY_MIN && lb && !s->loop_buf_taken && buf >= lb) {
    r->rbuf = s->loop_buf;
    r->data = (char *)buf;
    s->loop_buf_taken = true;
  } else if (!rq_copy_data(r, buf, size)) {
    free(r);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  post(s, r);
}

static void ll_fh_op(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op, int extra)
{
  struct rq *r = rq_new(op, req, NULL, NULL);
  if (r) { r->ino = ino; set_fh(r, fi); r->mask = (uint32_t)extra; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct session *s = SESSION(req);
  if (fi->fh == IMMUTABLE_FH && imm_take(s, ino, &s->fast_flushes)) { fuse_reply_err(req, 0); return; }
  ll_fh_op(req, ino, fi, OP_FLUSH, 0);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct session *s = SESSION(req);
  if (fi->fh == IMMUTABLE_FH && imm_release(s, ino)) { fuse_reply_err(req, 0); return; }
  ll_fh_op(req, ino, fi, OP_RELEASE, 0);
}
static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { ll_fh_op(req, ino, fi, OP_RELEASEDIR, 0); }
static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) { ll_fh_op(req, ino, fi, OP_FSYNC, datasync); }
static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) { ll_fh_op(req, ino, fi, OP_FSYNCDIR, datasync); }

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi)
{
  struct rq *r = rq_new(OP_FALLOCATE, req, NULL, NULL);
  if (r) { r->ino = ino; set_fh(r, fi); r->flags = mode; r->off = offset; r->size = (uint64_t)length; }
  POST_OR_FAIL(SESSION(req), r, req);
}

/* copy_file_range(2) within the mount: source (ino, fh, off), destination (ino2, fh2, off2). */
static void ll_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
                               fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len, int flags)
{
  struct rq *r = rq_new(OP_COPY_FILE_RANGE, req, NULL, NULL);
  if (r) {
    r->ino = ino_in; set_fh(r, fi_in); r->off = off_in;
    r->ino2 = ino_out; r->fh2 = fi_out ? fi_out->fh : 0; r->off2 = off_out;
    r->size = (uint64_t)len; r->flags = flags;
  }
  POST_OR_FAIL(SESSION(req), r, req);
}

/* lseek(2) with SEEK_DATA or SEEK_HOLE (the kernel answers the other kinds itself). An error
 * here must never be ENOSYS: the kernel would stop asking for the rest of the mount's life. */
static void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
  struct rq *r = rq_new(OP_LSEEK, req, NULL, NULL);
  if (r) { r->ino = ino; set_fh(r, fi); r->off = off; r->flags = whence; }
  POST_OR_FAIL(SESSION(req), r, req);
}

/* Extended attributes. A value to set is copied (at most XATTR_SIZE_MAX, 64 KiB); getxattr and
 * listxattr carry the caller's buffer size, 0 asking for the size only (JS answers with
 * replyXattrSize then).
 *
 * Names the filesystem never stores (Filesystem.setxattrIno refuses them too): system.* other
 * than POSIX ACLs (and those too unless the kernel enforces them), and file capabilities, which
 * a nosuid mount ignores. The kernel asks for security.capability before every write; it is
 * answered here, without a turn of JS. */
static bool is_acl_name(const char *name)
{
  return strcmp(name, "system.posix_acl_access") == 0 || strcmp(name, "system.posix_acl_default") == 0;
}

static bool xattr_never_stored(const struct session *s, const char *name)
{
  if (strncmp(name, "system.", 7) == 0) return !(s->posix_acl_on && is_acl_name(name));
  return strcmp(name, "security.capability") == 0;
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
  if (xattr_never_stored(SESSION(req), name)) { fuse_reply_err(req, EOPNOTSUPP); return; }
  struct rq *r = rq_new(OP_SETXATTR, req, name, NULL);
  if (r && !rq_copy_data(r, value, size)) { free(r); r = NULL; }
  if (r) { r->ino = ino; r->flags = flags; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
  struct session *s = SESSION(req);
  /* Immutable inodes (published objects) have no ACL: a user other than their owner makes the
   * kernel ask while it checks permissions, on every program start once the attributes age. */
  if (xattr_never_stored(s, name) || (is_acl_name(name) && imm_take(s, ino, NULL))) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  struct rq *r = rq_new(OP_GETXATTR, req, name, NULL);
  if (r) { r->ino = ino; r->size = size; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
  struct rq *r = rq_new(OP_LISTXATTR, req, NULL, NULL);
  if (r) { r->ino = ino; r->size = size; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
  struct rq *r = rq_new(OP_REMOVEXATTR, req, name, NULL);
  if (r) r->ino = ino;
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
  struct rq *r = rq_new(OP_STATFS, req, NULL, NULL);
  if (r) r->ino = ino;
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
  struct rq *r = rq_new(OP_ACCESS, req, NULL, NULL);
  if (r) { r->ino = ino; r->mask = (uint32_t)mask; }
  POST_OR_FAIL(SESSION(req), r, req);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
  struct rq *r = rq_new(OP_CREATE, req, name, NULL);
  if (r) { r->ino = parent; r->mode = mode; r->flags = fi->flags; }
  POST_OR_FAIL(SESSION(req), r, req);
}

/* ---- the session thread ------------------------------------------------------------------- */

/* Device I/O as libfuse would do it, except for one fix: libfuse before 3.17.1 (Debian 12 has
 * 3.14) enables FUSE_CAP_PARALLEL_DIROPS but never puts FUSE_PARALLEL_DIROPS into its INIT
 * reply (upstream commit c9905341), so the kernel serialises every lookup and readdir in a
 * directory. The INIT reply is the first message the session sends, written from ll_init's
 * thread right after ll_init returns; we add the flag the kernel offered and we asked for. */
static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
  struct session *s = userdata;
  bool ok_reply = count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header) &&
                  ((struct fuse_out_header *)iov[0].iov_base)->error == 0;
  if (s->init_reply_pending) {
    s->init_reply_pending = false;
    char *out = ok_reply ? iov[1].iov_base : NULL;
    if (out && s->patch_parallel && iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t))
      ((struct fuse_init_out *)out)->flags |= FUSE_PARALLEL_DIROPS;
    /* Passthrough needs the extended flags and a stack depth: ours is one above the backing
     * files' filesystem (ext4 and the like, depth 0). Writeback caching excludes it. */
    if (out && s->passthrough_wanted && s->passthrough_offered && !s->writeback &&
        iov[1].iov_len >= SLINKY_INIT_OUT_MAX_STACK_DEPTH + sizeof(uint32_t)) {
      uint32_t flags2, depth = 1;
      ((struct fuse_init_out *)out)->flags |= SLINKY_FUSE_INIT_EXT;
      memcpy(&flags2, out + SLINKY_INIT_OUT_FLAGS2, sizeof flags2);
      flags2 |= SLINKY_FUSE_PASSTHROUGH_FLAGS2;
      memcpy(out + SLINKY_INIT_OUT_FLAGS2, &flags2, sizeof flags2);
      memcpy(out + SLINKY_INIT_OUT_MAX_STACK_DEPTH, &depth, sizeof depth);
      s->passthrough_on = true;
    }
  } else if (t_open_backing && ok_reply && iov[1].iov_len >= SLINKY_OPEN_OUT_BACKING_ID + sizeof(int32_t)) {
    char *out = iov[1].iov_base;
    ((struct fuse_open_out *)out)->open_flags |= SLINKY_FOPEN_PASSTHROUGH;
    memcpy(out + SLINKY_OPEN_OUT_BACKING_ID, &t_open_backing, sizeof t_open_backing);
  }
  return writev(fd, iov, count);
}

/* Notes whether the kernel's INIT offers passthrough (the first request read). */
static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
  struct session *s = userdata;
  ssize_t n = read(fd, buf, len);
  if (s->init_reply_pending && !s->init_seen && n >= (ssize_t)(sizeof(struct fuse_in_header) + 5 * sizeof(uint32_t))) {
    const struct fuse_in_header *h = buf;
    if (h->opcode == FUSE_INIT) {
      s->init_seen = true;
      uint32_t in[5]; /* major, minor, max_readahead, flags, flags2 */
      memcpy(in, (const char *)buf + sizeof *h, sizeof in);
      s->passthrough_offered = (in[3] & SLINKY_FUSE_INIT_EXT) && (in[4] & SLINKY_FUSE_PASSTHROUGH_FLAGS2);
    }
  }
  return n;
}

static const struct fuse_custom_io device_io = { .writev = io_writev, .read = io_read };

/* The connection number is the minor of the mount's st_dev; read it from mountinfo rather than
 * by stat(), which would be a request to ourselves before anyone serves it. */
static unsigned find_conn_minor(const char *mountpoint)
{
  FILE *f = fopen("/proc/self/mountinfo", "r");
  if (!f) return 0;
  char line[4096];
  unsigned found = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned maj, min;
    char mp[4096];
    /* id parent major:minor root mountpoint ... ; mountpoints escape spaces as \040 */
    if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mp) != 3) continue;
    if (strcmp(mp, mountpoint) == 0 && strstr(line, " - fuse")) found = min; /* last one wins */
  }
  fclose(f);
  return found;
}

static void *session_main(void *arg)
{
  struct session *s = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the JS side's business */
  t_log = s->log;
  int mounted = fuse_session_mount(s->se, s->mountpoint);
  t_log = NULL;
  if (mounted != 0) {
    struct rq *r = rq_new(OP_MOUNT_FAILED, NULL, s->log[0] ? s->log : "fuse_session_mount failed", NULL);
    if (r) post(s, r);
    return NULL;
  }
  g_add(s);
  s->conn_minor = find_conn_minor(s->mountpoint);
  int fd = fuse_session_fd(s->se);
  s->init_reply_pending = true;
  /* Same descriptor, our read/writev (see io_writev). */
  if (fuse_session_custom_io(s->se, &device_io, fd) != 0) {
    g_unmount(s);
    struct rq *r = rq_new(OP_MOUNT_FAILED, NULL, "fuse_session_custom_io failed", NULL);
    if (r) post(s, r);
    return NULL;
  }
  /* Non-blocking: a request that vanished between poll and read (interrupted) must not leave
   * us stuck in read() where the eventfd cannot reach us. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  if (s->main_loop) {
    struct rq *r = rq_new(OP_MOUNTED, NULL, NULL, NULL);
    if (r) post(s, r);
    return NULL;
  }

  struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN }, { .fd = s->wake_fd, .events = POLLIN } };
  struct fuse_buf fbuf;
  memset(&fbuf, 0, sizeof fbuf);
  int error = 0;
  while (!fuse_session_exited(s->se)) {
    int n = poll(pfd, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    if (pfd[1].revents) break;
    if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) break; /* unmounted or aborted */
    if (!(pfd[0].revents & POLLIN)) continue;
    if (!fbuf.mem) fbuf.mem = pool_take(s);
    int res = fuse_session_receive_buf(s->se, &fbuf);
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res <= 0) { error = -res; break; } /* 0: the connection is gone (ENODEV) */
    s->loop_buf = fbuf.mem;
    s->loop_buf_taken = false;
    fuse_session_process_buf(s->se, &fbuf);
    if (s->loop_buf_taken) fbuf.mem = NULL;
    s->loop_buf = NULL;
  }
  free(fbuf.mem);
  struct rq *r = rq_new(OP_ENDED, NULL, NULL, NULL);
  if (r) {
    r->result = error;
    post(s, r);
  }
  return NULL;
}

/* ---- the notifier thread ------------------------------------------------------------------ */

static void *notifier_main(void *arg)
{
  struct session *s = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&s->nlock);
  for (;;) {
    while (!s->nhead && !s->notifier_stop) pthread_cond_wait(&s->ncond, &s->nlock);
    struct notify *n = s->nhead;
    if (!n) break;
    s->nhead = n->next;
    if (!s->nhead) s->ntail = NULL;
    int res = -ENOTCONN;
    if (!s->notifier_stop) {
      s->notifier_busy = true;
      pthread_mutex_unlock(&s->nlock);
      if (n->kind == 0) res = fuse_lowlevel_notify_inval_inode(s->se, n->ino, n->off, n->len);
      else if (n->kind == 1) res = fuse_lowlevel_notify_inval_entry(s->se, n->ino, n->name, strlen(n->name));
      else res = fuse_lowlevel_notify_delete(s->se, n->ino, n->ino2, n->name, strlen(n->name));
      pthread_mutex_lock(&s->nlock);
      s->notifier_busy = false;
    }
    struct rq *r = rq_new(OP_NOTIFY_DONE, NULL, NULL, NULL);
    if (r) {
      r->deferred = n->deferred;
      r->result = res;
      post(s, r);
    } /* else the promise stays pending: nothing better to do without memory */
    free(n);
  }
  pthread_mutex_unlock(&s->nlock);
  return NULL;
}

/* ---- JS thread: requests, slots and replies ----------------------------------------------- */

static void session_unref(struct session *s);

static void rq_free(napi_env env, struct session *s, struct rq *r)
{
  if (r->ab_ref) {
    napi_value ab;
    if (napi_get_reference_value(env, r->ab_ref, &ab) == napi_ok && ab)
      napi_detach_arraybuffer(env, ab); /* JS must not read the buffer after the answer */
    napi_delete_reference(env, r->ab_ref);
  }
  if (r->rbuf) pool_give(s, r->rbuf);
  else free(r->data);
  free(r->forgets);
  free(r);
}

static uint32_t slot_alloc(struct session *s, struct rq *r)
{
  if (s->free_head == NO_SLOT) {
    uint32_t n = s->nslots ? s->nslots * 2 : 256;
    if (n > SLOT_MASK + 1u) return NO_SLOT;
    struct slot *ns = realloc(s->slots, n * sizeof *ns);
    if (!ns) return NO_SLOT;
    for (uint32_t i = s->nslots; i < n; i++) {
      ns[i].r = NULL;
      ns[i].gen = 0;
      ns[i].next_free = i + 1 < n ? i + 1 : NO_SLOT;
    }
    s->slots = ns;
    s->free_head = s->nslots;
    s->nslots = n;
  }
  uint32_t i = s->free_head;
  s->free_head = s->slots[i].next_free;
  s->slots[i].r = r;
  s->live++;
  return i;
}

static double slot_id(struct session *s, uint32_t i)
{
  return (double)s->slots[i].gen * (double)(1u << SLOT_BITS) + (double)i;
}

/* The request behind a JS id, removed from the table; NULL if already answered or unknown. */
static struct rq *slot_take(struct session *s, double id)
{
  if (!(id >= 0) || id > 9007199254740991.0) return NULL;
  uint64_t v = (uint64_t)id;
  uint32_t i = (uint32_t)(v & SLOT_MASK);
  uint32_t gen = (uint32_t)(v >> SLOT_BITS);
  if (i >= s->nslots || !s->slots[i].r || s->slots[i].gen != gen) return NULL;
  struct rq *r = s->slots[i].r;
  s->slots[i].r = NULL;
  s->slots[i].gen = (s->slots[i].gen + 1) & 0x1fffffff;
  s->slots[i].next_free = s->free_head;
  s->free_head = i;
  s->live--;
  return r;
}

/* Answer every request JS still holds (unmount, or the session ended). */
static void fail_live(napi_env env, struct session *s, int err)
{
  for (uint32_t i = 0; i < s->nslots; i++) {
    if (!s->slots[i].r) continue;
    struct rq *r = slot_take(s, slot_id(s, i));
    if (err) fuse_reply_err(r->req, err);
    else fuse_reply_none(r->req);
    rq_free(env, s, r);
  }
}

static void fail_queued(napi_env env, struct session *s, struct rq *r, int err)
{
  if (r->req) {
    if (err) fuse_reply_err(r->req, err);
    else fuse_reply_none(r->req);
  }
  rq_free(env, s, r);
}

static napi_value num(napi_env env, double v)
{
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value str(napi_env env, const char *v)
{
  napi_value out;
  napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value undef(napi_env env)
{
  napi_value out;
  napi_get_undefined(env, &out);
  return out;
}

static napi_value boolean(napi_env env, bool v)
{
  napi_value out;
  napi_get_boolean(env, v, &out);
  return out;
}

static napi_value fh_value(napi_env env, struct rq *r)
{
  return r->has_fh ? num(env, (double)r->fh) : undef(env);
}

static void report_exception(napi_env env, const char *where)
{
  napi_value e, s;
  char msg[512] = "";
  size_t n = 0;
  if (napi_get_and_clear_last_exception(env, &e) != napi_ok) return;
  if (napi_coerce_to_string(env, e, &s) == napi_ok)
    napi_get_value_string_utf8(env, s, msg, sizeof msg, &n);
  fprintf(stderr, "slinky_fusell: exception in %s: %s\n", where, msg);
}

/* Build the JS value for a write payload: zero-copy over the receive buffer when it has one. */
static napi_value write_payload(napi_env env, struct rq *r)
{
  napi_value buf;
  if (r->rbuf) {
    napi_value ab;
    if (napi_create_external_buffer(env, r->size, r->data, NULL, NULL, &buf) == napi_ok &&
        napi_get_typedarray_info(env, buf, NULL, NULL, NULL, &ab, NULL) == napi_ok &&
        napi_create_reference(env, ab, 1, &r->ab_ref) == napi_ok)
      return buf;
    /* external buffers refused (a sandboxed runtime): fall back to a copy */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) report_exception(env, "write payload");
  }
  if (napi_create_buffer_copy(env, r->size, r->data, NULL, &buf) != napi_ok) return NULL;
  if (!r->rbuf) { free(r->data); r->data = NULL; }
  return buf;
}

static void dispatch(napi_env env, struct session *s, napi_value fn, struct rq *r)
{
  napi_value argv[16];
  size_t argc = 7;
  uint32_t slot = NO_SLOT;
  if (r->req) {
    slot = slot_alloc(s, r);
    if (slot == NO_SLOT) { fail_queued(env, s, r, ENOMEM); return; }
  }
  argv[0] = num(env, r->op);
  argv[1] = num(env, slot == NO_SLOT ? 0 : slot_id(s, slot));
  argv[2] = num(env, (double)r->ino);
  argv[3] = num(env, r->uid);
  argv[4] = num(env, r->gid);
  argv[5] = num(env, r->pid);
  argv[6] = num(env, r->umask);
#define A(v) (argv[argc++] = (v))
  switch (r->op) {
  case OP_LOOKUP: case OP_UNLINK: case OP_RMDIR: A(name_value(env, r->name)); break;
  case OP_FORGET: A(num(env, (double)r->size)); break;
  case OP_GETATTR: A(fh_value(env, r)); break;
  case OP_SETATTR:
    A(num(env, r->to_set)); A(fh_value(env, r)); A(num(env, r->mode)); A(num(env, r->set_uid));
    A(num(env, r->set_gid)); A(num(env, (double)r->size)); A(num(env, r->atime)); A(num(env, r->mtime));
    A(num(env, r->ctime));
    break;
  case OP_READLINK: case OP_STATFS: break;
  case OP_MKNOD: A(name_value(env, r->name)); A(num(env, r->mode)); A(num(env, (double)r->rdev)); break;
  case OP_MKDIR: A(name_value(env, r->name)); A(num(env, r->mode)); break;
  case OP_SYMLINK: A(name_value(env, r->name)); A(name_value(env, r->name2)); break;
  case OP_RENAME: A(name_value(env, r->name)); A(num(env, (double)r->ino2)); A(name_value(env, r->name2)); A(num(env, r->flags)); break;
  case OP_LINK: A(num(env, (double)r->ino2)); A(name_value(env, r->name)); break;
  case OP_OPEN: case OP_OPENDIR: A(num(env, r->flags)); break;
  case OP_READ: case OP_READDIR: case OP_READDIRPLUS:
    A(fh_value(env, r)); A(num(env, (double)r->off)); A(num(env, (double)r->size)); break;
  case OP_WRITE: {
    napi_value data = write_payload(env, r);
    if (!data) { slot_take(s, slot_id(s, slot)); fail_queued(env, s, r, ENOMEM); return; }
    A(fh_value(env, r)); A(num(env, (double)r->off)); A(data); A(boolean(env, r->mask != 0));
    break;
  }
  case OP_FLUSH: case OP_RELEASEDIR: A(fh_value(env, r)); break;
  case OP_RELEASE: A(fh_value(env, r)); A(num(env, r->flags)); break;
  case OP_FSYNC: case OP_FSYNCDIR: A(fh_value(env, r)); A(boolean(env, r->mask != 0)); break;
  case OP_SETXATTR: {
    napi_value data = write_payload(env, r);
    if (!data) { slot_take(s, slot_id(s, slot)); fail_queued(env, s, r, ENOMEM); return; }
    A(name_value(env, r->name)); A(data); A(num(env, r->flags));
    break;
  }
  case OP_GETXATTR: A(name_value(env, r->name)); A(num(env, (double)r->size)); break;
  case OP_LISTXATTR: A(num(env, (double)r->size)); break;
  case OP_REMOVEXATTR: A(name_value(env, r->name)); break;
  case OP_FALLOCATE: A(fh_value(env, r)); A(num(env, r->flags)); A(num(env, (double)r->off)); A(num(env, (double)r->size)); break;
  case OP_COPY_FILE_RANGE:
    A(fh_value(env, r)); A(num(env, (double)r->off)); A(num(env, (double)r->ino2)); A(num(env, (double)r->fh2));
    A(num(env, (double)r->off2)); A(num(env, (double)r->size)); A(num(env, r->flags));
    break;
  case OP_LSEEK: A(fh_value(env, r)); A(num(env, (double)r->off)); A(num(env, r->flags)); break;
  case OP_ACCESS: A(num(env, r->mask)); break;
  case OP_CREATE: A(name_value(env, r->name)); A(num(env, r->mode)); A(num(env, r->flags)); break;
  case OP_INIT:
    A(num(env, (double)r->ino2)); A(num(env, (double)r->size)); A(num(env, r->mode)); A(num(env, r->mask));
    A(num(env, (double)r->off));
    break;
  case OP_MOUNT_FAILED: A(str(env, r->name)); break;
  case OP_ENDED: A(num(env, r->result)); break;
  default: break;
  }
#undef A
  napi_value global, ignored;
  napi_get_global(env, &global);
  napi_status st = napi_call_function(env, global, fn, argc, argv, &ignored);
  if (st != napi_ok) {
    report_exception(env, OP_NAMES[r->op]);
    /* Never leave a caller waiting because JS failed before answering. */
    if (slot != NO_SLOT) {
      struct rq *still = slot_take(s, slot_id(s, slot));
      if (still) { fuse_reply_err(still->req, EIO); rq_free(env, s, still); }
    }
  }
  if (slot == NO_SLOT) rq_free(env, s, r);
}

static void start_teardown(napi_env env, struct session *s);
static void start_polling(napi_env env, struct session *s);
static void stop_polling(struct session *s);

static void handle_internal(napi_env env, struct session *s, napi_value fn, struct rq *r)
{
  switch (r->op) {
  case OP_NOTIFY_DONE: {
    napi_value v = num(env, r->result);
    napi_resolve_deferred(env, r->deferred, v);
    rq_free(env, s, r);
    return;
  }
  case OP_MOUNTED:
    rq_free(env, s, r);
    if (s->stopping) {
      struct rq *e = rq_new(OP_ENDED, NULL, NULL, NULL);
      if (e) post(s, e);
    } else {
      start_polling(env, s);
    }
    return;
  case OP_ENDED:
  case OP_MOUNT_FAILED:
    s->ended = true;
    stop_polling(s);
    dispatch(env, s, fn, r); /* tell JS first: it resolves `closed` from start_teardown's promise */
    start_teardown(env, s);
    return;
  default:
    dispatch(env, s, fn, r);
  }
}

static void drain(napi_env env, struct session *s)
{
  napi_value fn;
  if (napi_get_reference_value(env, s->dispatch_ref, &fn) != napi_ok) return;
  struct rq *r = take_queue(s);
  while (r) {
    struct rq *next = r->next;
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    if (r->op < OP_LOOKUP) handle_internal(env, s, fn, r);
    else if (s->stopping || s->ended) fail_queued(env, s, r, r->op == OP_FORGET ? 0 : EIO);
    else dispatch(env, s, fn, r);
    napi_close_handle_scope(env, scope);
    r = next;
  }
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
  (void)js_cb; (void)data;
  struct session *s = context;
  if (!env) return; /* the function is closing: teardown drained the queue */
  if (s->torn_down) return;
  drain(env, s);
}

/* ---- the device read on the JS thread (main_loop) ---------------------------------------- */

static void poll_closed(uv_handle_t *h)
{
  session_unref(h->data);
}

static void stop_spinning(struct session *s)
{
  if (s->spin_ready) uv_idle_stop(&s->spin);
}

static void stop_polling(struct session *s)
{
  if (!s->polling) return;
  s->polling = false;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, poll_closed);
  if (s->spin_ready) {
    s->spin_ready = false;
    uv_idle_stop(&s->spin);
    uv_close((uv_handle_t *)&s->spin, poll_closed);
  }
}

/* Requests come in bursts (a program start, a copy: each reply lets the caller send the next
 * within microseconds), and on a virtual machine without halt polling, waking a sleeping thread
 * costs 50-220 us: more than answering. So for spin_ns after each request the loop keeps polling
 * instead of sleeping (an active idle handle makes libuv poll with a zero timeout): the next
 * request, and the completions of the pool and LMDB threads, find the thread awake. Costs at
 * most spin_ns of CPU after the last request of a burst. */
static void spin_tick(uv_idle_t *h)
{
  struct session *s = h->data;
  if (uv_hrtime() > s->spin_until) uv_idle_stop(h);
}

static void keep_spinning(struct session *s)
{
  if (!s->spin_ready || !s->spin_ns) return;
  s->spin_until = uv_hrtime() + s->spin_ns;
  if (!uv_is_active((uv_handle_t *)&s->spin)) uv_idle_start(&s->spin, spin_tick);
}

/* Read what the device has (non-blocking) and dispatch it in one go. The ll_* callbacks run
 * right here and queue as usual; holding wake_pending keeps them from waking us through the
 * threadsafe function. JS runs inside a callback scope, so promise reactions (the replies of
 * handlers that answered at once) run when it closes. */
static void device_readable(uv_poll_t *h, int status, int events)
{
  (void)events;
  struct session *s = h->data;
  napi_env env = s->env;
  bool ended = status < 0;
  if (!ended) keep_spinning(s);
  pthread_mutex_lock(&s->qlock);
  s->wake_pending = true;
  pthread_mutex_unlock(&s->qlock);
  for (int i = 0; i < 64 && !ended; i++) {
    if (!s->mbuf.mem) s->mbuf.mem = pool_take(s);
    int res = fuse_session_receive_buf(s->se, &s->mbuf);
    if (res == -EAGAIN || res == -EINTR) break;
    if (res <= 0) { ended = true; break; }
    s->loop_buf = s->mbuf.mem;
    s->loop_buf_taken = false;
    fuse_session_process_buf(s->se, &s->mbuf);
    if (s->loop_buf_taken) s->mbuf.mem = NULL;
    s->loop_buf = NULL;
  }
  if (ended) {
    stop_polling(s);
    struct rq *r = rq_new(OP_ENDED, NULL, NULL, NULL);
    if (r) post(s, r);
  }
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value resource;
  napi_open_handle_scope(env, &hs);
  napi_get_reference_value(env, s->resource_ref, &resource);
  if (napi_open_callback_scope(env, resource, s->actx, &cs) == napi_ok) {
    drain(env, s);
    napi_close_callback_scope(env, cs);
  } else {
    drain(env, s);
  }
  napi_close_handle_scope(env, hs);
}

static void start_polling(napi_env env, struct session *s)
{
  uv_loop_t *loop = NULL;
  if (s->thread_started) {
    pthread_join(s->thread, NULL); /* it only mounted and is exiting */
    s->thread_started = false;
  }
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop ||
      uv_poll_init(loop, &s->poll, fuse_session_fd(s->se)) != 0) {
    struct rq *r = rq_new(OP_ENDED, NULL, NULL, NULL);
    if (r) { r->result = EIO; post(s, r); }
    return;
  }
  s->poll.data = s;
  s->refs++; /* until poll_closed */
  s->polling = true;
  uv_poll_start(&s->poll, UV_READABLE, device_readable);
  if (uv_idle_init(loop, &s->spin) == 0) {
    s->spin.data = s;
    s->refs++; /* until its poll_closed */
    s->spin_ready = true;
  }
}

/* ---- teardown ----------------------------------------------------------------------------- */

/* Abort the connection through fusectl: the only way to release a kernel thread blocked in a
 * notify call that waits on a request we will never read. */
static void abort_connection(struct session *s)
{
  if (!s->conn_minor) return;
  char path[96];
  snprintf(path, sizeof path, "/sys/fs/fuse/connections/%u/abort", s->conn_minor);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  if (write(fd, "1", 1) < 0) { /* nothing more to try */ }
  close(fd);
}

static void stop_threads(struct session *s)
{
  if (s->thread_started) {
    uint64_t one = 1;
    if (write(s->wake_fd, &one, sizeof one) < 0) { /* the loop also stops on POLLERR */ }
    pthread_join(s->thread, NULL);
    s->thread_started = false;
  }
  if (s->notifier_started) {
    pthread_mutex_lock(&s->nlock);
    s->notifier_stop = true;
    bool busy = s->notifier_busy;
    pthread_cond_signal(&s->ncond);
    pthread_mutex_unlock(&s->nlock);
    if (busy) abort_connection(s);
    pthread_join(s->notifier, NULL);
    s->notifier_started = false;
  }
}

/* Runs on a libuv worker: joining, unmounting (which may exec fusermount3) and destroying are
 * blocking, and nothing else uses the session by now. */
static void teardown_execute(napi_env env, void *data)
{
  (void)env;
  struct session *s = data;
  stop_threads(s);
  if (s->se) {
    g_unmount(s);
    fuse_session_destroy(s->se);
    s->se = NULL;
  }
}

static void teardown_complete(napi_env env, napi_status status, void *data)
{
  (void)status;
  struct session *s = data;
  /* Answers that arrived from the notifier or the loop after `ended`. */
  struct rq *r = take_queue(s);
  while (r) {
    struct rq *next = r->next;
    if (r->op == OP_NOTIFY_DONE) napi_resolve_deferred(env, r->deferred, num(env, r->result));
    fail_queued(env, s, r, 0); /* the device is closed: this only frees */
    r = next;
  }
  if (s->closed) {
    napi_resolve_deferred(env, s->closed, undef(env));
    s->closed = NULL;
  }
  /* Its finalizer drops the session's last reference once pending wake-ups are flushed. */
  if (s->tsfn) napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
}

static void start_teardown(napi_env env, struct session *s)
{
  if (s->teardown_started) return;
  s->teardown_started = true;
  /* The loop has stopped reading: callers of requests JS still holds get EIO now, not when
   * the connection is aborted. */
  fail_live(env, s, EIO);
  napi_value name;
  napi_async_work work;
  napi_create_string_utf8(env, "slinky_fusell.teardown", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, teardown_execute, teardown_complete, s, &work) != napi_ok ||
      napi_queue_async_work(env, work) != napi_ok) {
    teardown_execute(env, s);
    teardown_complete(env, napi_ok, s);
  }
}

static void session_free(napi_env env, struct session *s)
{
  free(s->mbuf.mem);
  if (s->actx) napi_async_destroy(env, s->actx);
  if (s->resource_ref) napi_delete_reference(env, s->resource_ref);
  if (s->dispatch_ref) napi_delete_reference(env, s->dispatch_ref);
  if (s->scratch_ref) napi_delete_reference(env, s->scratch_ref);
  for (int i = 0; i < s->pool_n; i++) free(s->pool[i]);
  if (s->wake_fd >= 0) close(s->wake_fd);
  pthread_mutex_destroy(&s->qlock);
  pthread_mutex_destroy(&s->plock);
  pthread_mutex_destroy(&s->nlock);
  pthread_cond_destroy(&s->ncond);
  pthread_mutex_destroy(&s->ilock);
  free(s->imm);
  free(s->slots);
  free(s->mountpoint);
  free(s);
}

static void cleanup_hook(void *arg);

static void session_unref(struct session *s)
{
  if (--s->refs > 0) return;
  napi_remove_env_cleanup_hook(s->env, cleanup_hook, s);
  session_free(s->env, s);
}

/* The environment is shutting down with the filesystem still mounted (process.exit, worker
 * termination): stop everything synchronously so no mount is left behind. */
static void cleanup_hook(void *arg)
{
  struct session *s = arg;
  napi_env env = s->env;
  s->torn_down = true;
  if (!s->teardown_started) {
    s->teardown_started = true;
    s->stopping = true;
    fail_live(env, s, EIO);
    if (s->polling) { s->polling = false; uv_poll_stop(&s->poll); }
    stop_spinning(s);
    stop_threads(s);
    struct rq *r = take_queue(s);
    while (r) { struct rq *next = r->next; fail_queued(env, s, r, r->req ? EIO : 0); r = next; }
    if (s->se) {
      g_unmount(s);
      fuse_session_destroy(s->se);
      s->se = NULL;
    }
  }
  /* What is left is freed with the process; the JS handle may still point here. */
}

static void tsfn_finalize(napi_env env, void *data, void *hint)
{
  (void)env; (void)hint;
  struct session *s = data;
  s->tsfn = NULL;
  if (s->torn_down) return; /* environment teardown: the process frees everything */
  session_unref(s);
}

static void handle_finalize(napi_env env, void *data, void *hint)
{
  (void)env; (void)hint;
  struct session *s = data;
  if (s->torn_down) return;
  session_unref(s);
}

/* ---- exported functions ------------------------------------------------------------------- */

#define ARGS(n)                                                                                \
  size_t argc = (n);                                                                           \
  napi_value argv[(n) > 0 ? (n) : 1];                                                          \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL

static bool get_session(napi_env env, napi_value v, struct session **out)
{
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a fusell session");
    return false;
  }
  *out = p;
  return true;
}

static double get_num(napi_env env, napi_value v, double dflt)
{
  double d;
  return napi_get_value_double(env, v, &d) == napi_ok ? d : dflt;
}

static bool get_bool_prop(napi_env env, napi_value obj, const char *key)
{
  napi_value v;
  bool b = false;
  if (napi_get_named_property(env, obj, key, &v) == napi_ok) napi_get_value_bool(env, v, &b);
  return b;
}

static double get_num_prop(napi_env env, napi_value obj, const char *key, double dflt)
{
  napi_value v;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return dflt;
  return get_num(env, v, dflt);
}

static char *get_string(napi_env env, napi_value v)
{
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static napi_value throw_msg(napi_env env, const char *msg)
{
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* Which libfuse operations to register: an op JS does not implement gets libfuse's own
 * behaviour (e.g. open/opendir/release succeed, flush/fsync/access are ENOSYS, which the kernel
 * remembers), without a round trip through JS. */
static void fill_ops(struct fuse_lowlevel_ops *ops, uint64_t mask)
{
  memset(ops, 0, sizeof *ops);
  ops->init = ll_init;
#define REG(op, field, fn) if (mask & (1ull << (op))) ops->field = fn
  REG(OP_LOOKUP, lookup, ll_lookup);
  REG(OP_FORGET, forget, ll_forget);
  REG(OP_FORGET, forget_multi, ll_forget_multi);
  REG(OP_GETATTR, getattr, ll_getattr);
  REG(OP_SETATTR, setattr, ll_setattr);
  REG(OP_READLINK, readlink, ll_readlink);
  REG(OP_MKNOD, mknod, ll_mknod);
  REG(OP_MKDIR, mkdir, ll_mkdir);
  REG(OP_UNLINK, unlink, ll_unlink);
  REG(OP_RMDIR, rmdir, ll_rmdir);
  REG(OP_SYMLINK, symlink, ll_symlink);
  REG(OP_RENAME, rename, ll_rename);
  REG(OP_LINK, link, ll_link);
  REG(OP_OPEN, open, ll_open);
  REG(OP_READ, read, ll_read);
  REG(OP_WRITE, write, ll_write);
  REG(OP_FLUSH, flush, ll_flush);
  REG(OP_RELEASE, release, ll_release);
  REG(OP_FSYNC, fsync, ll_fsync);
  REG(OP_OPENDIR, opendir, ll_opendir);
  REG(OP_READDIR, readdir, ll_readdir);
  REG(OP_RELEASEDIR, releasedir, ll_releasedir);
  REG(OP_FSYNCDIR, fsyncdir, ll_fsyncdir);
  REG(OP_STATFS, statfs, ll_statfs);
  REG(OP_ACCESS, access, ll_access);
  REG(OP_CREATE, create, ll_create);
  REG(OP_READDIRPLUS, readdirplus, ll_readdirplus);
  REG(OP_FALLOCATE, fallocate, ll_fallocate);
  REG(OP_SETXATTR, setxattr, ll_setxattr);
  REG(OP_GETXATTR, getxattr, ll_getxattr);
  REG(OP_LISTXATTR, listxattr, ll_listxattr);
  REG(OP_REMOVEXATTR, removexattr, ll_removexattr);
  REG(OP_COPY_FILE_RANGE, copy_file_range, ll_copy_file_range);
  REG(OP_LSEEK, lseek, ll_lseek);
#undef REG
}

/* mount(mountpoint, fuseArgs: string[], config, opMask, dispatch, scratch: Float64Array)
 *   -> [handle, closedPromise]
 * Mounting happens on the session thread; its outcome arrives through dispatch as `init` or
 * `mountFailed`, and `ended` when the session stops. */
static napi_value js_mount(napi_env env, napi_callback_info info)
{
  ARGS(6);
  if (argc < 6) return throw_msg(env, "mount: 6 arguments expected");
  struct session *s = calloc(1, sizeof *s);
  if (!s) return throw_msg(env, "out of memory");
  s->env = env;
  s->refs = 2;
  s->wake_fd = -1;
  s->free_head = NO_SLOT;
  pthread_mutex_init(&s->qlock, NULL);
  pthread_mutex_init(&s->plock, NULL);
  pthread_mutex_init(&s->nlock, NULL);
  pthread_cond_init(&s->ncond, NULL);
  pthread_mutex_init(&s->ilock, NULL);
  const char *err = NULL;

  s->mountpoint = get_string(env, argv[0]);
  if (!s->mountpoint) { err = "mountpoint must be a string"; goto fail; }

  uint32_t nargs = 0;
  bool is_array = false;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array || napi_get_array_length(env, argv[1], &nargs) != napi_ok || nargs > 64) {
    err = "fuse arguments must be an array of at most 64 strings";
    goto fail;
  }
  s->max_write = (unsigned)get_num_prop(env, argv[2], "maxWrite", 0);
  s->max_readahead = (unsigned)get_num_prop(env, argv[2], "maxReadahead", 0);
  s->writeback = get_bool_prop(env, argv[2], "writebackCache");
  s->passthrough_wanted = get_bool_prop(env, argv[2], "passthrough");
  s->cache_symlinks = get_bool_prop(env, argv[2], "cacheSymlinks");
  s->posix_acl = get_bool_prop(env, argv[2], "posixAcl");
  s->no_parallel_dirops = get_bool_prop(env, argv[2], "noParallelDirops");
  s->main_loop = get_bool_prop(env, argv[2], "mainThreadLoop");
  double spin_us = get_num_prop(env, argv[2], "spinMicros", 0);
  s->spin_ns = spin_us > 0 ? (uint64_t)(spin_us < 100000 ? spin_us : 100000) * 1000 : 0; /* at most 0.1 s */
  if (s->main_loop) {
    napi_value resource, rname;
    napi_create_object(env, &resource);
    napi_create_string_utf8(env, "slinky_fusell.device", NAPI_AUTO_LENGTH, &rname);
    if (napi_create_reference(env, resource, 1, &s->resource_ref) != napi_ok ||
        napi_async_init(env, resource, rname, &s->actx) != napi_ok) {
      err = "cannot create the async context";
      goto fail;
    }
  }
  uint64_t mask = (uint64_t)get_num(env, argv[3], 0);
  s->readdirplus_wanted = (mask >> OP_READDIRPLUS) & 1;

  bool is_typed = false;
  napi_typedarray_type ttype;
  size_t tlen = 0;
  void *tdata = NULL;
  napi_is_typedarray(env, argv[5], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[5], &ttype, &tlen, &tdata, NULL, NULL) != napi_ok ||
      ttype != napi_float64_array || tlen < SC_COUNT) {
    err = "scratch must be a Float64Array of at least 17 elements";
    goto fail;
  }
  s->scratch = tdata;
  if (napi_create_reference(env, argv[5], 1, &s->scratch_ref) != napi_ok ||
      napi_create_reference(env, argv[4], 1, &s->dispatch_ref) != napi_ok) {
    err = "cannot keep references";
    goto fail;
  }

  char *fargv[66];
  int fargc = 0;
  fargv[fargc++] = "slinkyfs";
  for (uint32_t i = 0; i < nargs; i++) {
    napi_value v;
    napi_get_element(env, argv[1], i, &v);
    fargv[fargc] = get_string(env, v);
    if (!fargv[fargc]) {
      for (int j = 1; j < fargc; j++) free(fargv[j]);
      err = "fuse arguments must be strings";
      goto fail;
    }
    fargc++;
  }
  struct fuse_args args = FUSE_ARGS_INIT(fargc, fargv);
  struct fuse_lowlevel_ops ops;
  fill_ops(&ops, mask);
  t_log = s->log;
  s->log[0] = 0;
  s->se = fuse_session_new(&args, &ops, sizeof ops, s);
  t_log = NULL;
  fuse_opt_free_args(&args);
  for (int j = 1; j < fargc; j++) free(fargv[j]);
  if (!s->se) {
    char msg[LOG_MAX + 64];
    snprintf(msg, sizeof msg, "invalid FUSE options: %s", s->log[0] ? s->log : "fuse_session_new failed");
    napi_throw_error(env, NULL, msg);
    err = "";
    goto fail;
  }

  s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wake_fd < 0) { err = "eventfd failed"; goto fail; }
  napi_value name;
  napi_create_string_utf8(env, "slinky_fusell", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, s, tsfn_finalize, s, call_js, &s->tsfn) != napi_ok) {
    err = "cannot create the threadsafe function";
    goto fail;
  }
  napi_value handle, promise;
  if (napi_create_external(env, s, handle_finalize, NULL, &handle) != napi_ok ||
      napi_create_promise(env, &s->closed, &promise) != napi_ok) {
    /* Both references go with the function's finalizer; the session is not mounted. */
    s->refs = 1;
    fuse_session_destroy(s->se);
    s->se = NULL;
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    return throw_msg(env, "cannot create the session handle");
  }
  napi_add_env_cleanup_hook(env, cleanup_hook, s);
  if (pthread_create(&s->thread, NULL, session_main, s) != 0) {
    /* No thread: end the session through the normal path. */
    struct rq *r = rq_new(OP_MOUNT_FAILED, NULL, "cannot start the session thread", NULL);
    if (r) post(s, r);
  } else {
    s->thread_started = true;
  }
  napi_value out;
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, handle);
  napi_set_element(env, out, 1, promise);
  return out;

fail:
  if (err && *err) napi_throw_error(env, NULL, err);
  if (s->se) fuse_session_destroy(s->se);
  session_free(env, s);
  return NULL;
}

/* unmount(handle): answer what JS still holds with EIO and stop the session. The `closed`
 * promise from mount() resolves once the mount is gone. */
static napi_value js_unmount(napi_env env, napi_callback_info info)
{
  ARGS(1);
  struct session *s;
  if (argc < 1 || !get_session(env, argv[0], &s)) return NULL;
  if (!s->stopping && !s->ended) {
    s->stopping = true;
    fail_live(env, s, EIO);
    if (s->polling) {
      stop_polling(s);
      struct rq *r = rq_new(OP_ENDED, NULL, NULL, NULL);
      if (r) post(s, r);
    } else {
      uint64_t one = 1;
      if (write(s->wake_fd, &one, sizeof one) < 0) return throw_msg(env, "cannot wake the session thread");
    }
  }
  return undef(env);
}

/* The request behind (handle, id), taken out of the table; NULL if stale. */
static struct rq *reply_target(napi_env env, napi_value *argv, size_t argc, size_t need, struct session **ps)
{
  if (argc < need) { napi_throw_type_error(env, NULL, "missing arguments"); return NULL; }
  if (!get_session(env, argv[0], ps)) return NULL;
  return slot_take(*ps, get_num(env, argv[1], -1));
}

static napi_value result(napi_env env, int res)
{
  return num(env, res);
}

#define STALE (-ESRCH) /* returned for an id that was already answered or belongs to an ended session */

static napi_value js_reply_err(napi_env env, napi_callback_info info)
{
  ARGS(3);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 3, &s);
  if (!r) return result(env, STALE);
  double e = fabs(get_num(env, argv[2], EIO));
  int err = (e >= 0 && e < 4096) ? (int)e : EIO;
  int res = fuse_reply_err(r->req, err);
  rq_free(env, s, r);
  return result(env, res);
}

static void scratch_stat(const double *d, struct stat *st)
{
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)d[SC_INO];
  st->st_mode = (mode_t)d[SC_MODE];
  st->st_nlink = (nlink_t)d[SC_NLINK];
  st->st_uid = (uid_t)d[SC_UID];
  st->st_gid = (gid_t)d[SC_GID];
  st->st_rdev = (dev_t)d[SC_RDEV];
  st->st_size = (off_t)d[SC_SIZE];
  st->st_blocks = (blkcnt_t)d[SC_BLOCKS];
  st->st_blksize = (blksize_t)d[SC_BLKSIZE];
  ms_ts(d[SC_ATIME], &st->st_atim);
  ms_ts(d[SC_MTIME], &st->st_mtim);
  ms_ts(d[SC_CTIME], &st->st_ctim);
}

static void scratch_entry(const double *d, struct fuse_entry_param *e)
{
  memset(e, 0, sizeof *e);
  e->ino = (fuse_ino_t)d[SC_INO];
  e->generation = (uint64_t)d[SC_GENERATION];
  scratch_stat(d, &e->attr);
  e->attr_timeout = d[SC_ATTR_TIMEOUT];
  e->entry_timeout = d[SC_ENTRY_TIMEOUT];
}

static void scratch_open(const double *d, struct fuse_file_info *fi)
{
  memset(fi, 0, sizeof *fi);
  unsigned f = (unsigned)d[SC_OPEN_FLAGS];
  fi->fh = (uint64_t)d[SC_FH];
  fi->direct_io = !!(f & OPEN_DIRECT_IO);
  fi->keep_cache = !!(f & OPEN_KEEP_CACHE);
  fi->nonseekable = !!(f & OPEN_NONSEEKABLE);
  fi->cache_readdir = !!(f & OPEN_CACHE_DIR);
  fi->noflush = !!(f & OPEN_NOFLUSH);
}

/* replyEntry(handle, id): entry from the scratch array (ino 0 = negative entry). */
static napi_value js_reply_entry(napi_env env, napi_callback_info info)
{
  ARGS(2);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 2, &s);
  if (!r) return result(env, STALE);
  struct fuse_entry_param e;
  scratch_entry(s->scratch, &e);
  if (e.ino) imm_learn(s, &e.attr, e.attr_timeout);
  int res = fuse_reply_entry(r->req, &e);
  rq_free(env, s, r);
  return result(env, res);
}

static napi_value js_reply_create(napi_env env, napi_callback_info info)
{
  ARGS(2);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 2, &s);
  if (!r) return result(env, STALE);
  struct fuse_entry_param e;
  struct fuse_file_info fi;
  scratch_entry(s->scratch, &e);
  scratch_open(s->scratch, &fi);
  int res = fuse_reply_create(r->req, &e, &fi);
  rq_free(env, s, r);
  return result(env, res);
}

static napi_value js_reply_attr(napi_env env, napi_callback_info info)
{
  ARGS(2);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 2, &s);
  if (!r) return result(env, STALE);
  struct stat st;
  scratch_stat(s->scratch, &st);
  imm_learn(s, &st, s->scratch[SC_ATTR_TIMEOUT]);
  int res = fuse_reply_attr(r->req, &st, s->scratch[SC_ATTR_TIMEOUT]);
  rq_free(env, s, r);
  return result(env, res);
}

static napi_value js_reply_open(napi_env env, napi_callback_info info)
{
  ARGS(2);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 2, &s);
  if (!r) return result(env, STALE);
  struct fuse_file_info fi;
  scratch_open(s->scratch, &fi);
  int res = fuse_reply_open(r->req, &fi);
  rq_free(env, s, r);
  return result(env, res);
}

/* replyWrite(handle, id, count) and replyXattrSize(handle, id, size): answers that are a count
 * (bytes written; the size a getxattr/listxattr asked for). */
static napi_value reply_count(napi_env env, napi_callback_info info, bool xattr)
{
  ARGS(3);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 3, &s);
  if (!r) return result(env, STALE);
  double n = get_num(env, argv[2], -1);
  int res;
  if (xattr) res = n >= 0 ? fuse_reply_xattr(r->req, (size_t)n) : fuse_reply_err(r->req, EIO);
  else res = (n >= 0 && n <= (double)r->size) ? fuse_reply_write(r->req, (size_t)n) : fuse_reply_err(r->req, EIO);
  rq_free(env, s, r);
  return result(env, res);
}

static napi_value js_reply_write(napi_env env, napi_callback_info info) { return reply_count(env, info, false); }

/* replyLseek(handle, id, offset): the offset SEEK_DATA or SEEK_HOLE found. */
static napi_value js_reply_lseek(napi_env env, napi_callback_info info)
{
  ARGS(3);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 3, &s);
  if (!r) return result(env, STALE);
  double off = get_num(env, argv[2], -1);
  int res = off >= 0 && off <= 9007199254740991.0 ? fuse_reply_lseek(r->req, (off_t)off) : fuse_reply_err(r->req, EIO);
  rq_free(env, s, r);
  return result(env, res);
}
static napi_value js_reply_xattr_size(napi_env env, napi_callback_info info) { return reply_count(env, info, true); }

/* replyBuf(handle, id, data: Uint8Array | string): read and readlink answers. The kernel copies
 * the bytes during the call, so the caller's buffer is free again when this returns. */
static napi_value js_reply_buf(napi_env env, napi_callback_info info)
{
  ARGS(3);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 3, &s);
  if (!r) return result(env, STALE);
  int res;
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t == napi_string) {
    char *v = get_name(env, argv[2], NULL);
    res = v ? fuse_reply_readlink(r->req, v) : fuse_reply_err(r->req, ENOMEM);
    free(v);
  } else {
    void *data = NULL;
    size_t len = 0;
    napi_typedarray_type tt;
    bool typed = false;
    napi_is_typedarray(env, argv[2], &typed);
    if (typed && napi_get_typedarray_info(env, argv[2], &tt, &len, &data, NULL, NULL) == napi_ok && tt == napi_uint8_array) {
      if (r->op == OP_READ && len > r->size) len = r->size;
      res = fuse_reply_buf(r->req, data, len);
    } else {
      res = fuse_reply_err(r->req, EIO);
    }
  }
  rq_free(env, s, r);
  return result(env, res);
}

/* replyDir(handle, id, entries, plus): entries is a flat array. readdir: [name, ino, mode,
 * nextOffset, ...]; readdirplus: [name, nextOffset, ...17 scratch-layout numbers...] per entry.
 * Packs entries until the kernel's buffer is full; returns how many were sent (or -errno). */
static napi_value js_reply_dir(napi_env env, napi_callback_info info)
{
  ARGS(4);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 4, &s);
  if (!r) return result(env, STALE);
  bool plus = false;
  napi_get_value_bool(env, argv[3], &plus);
  size_t cap = r->size ? r->size : 4096;
  char *buf = malloc(cap);
  uint32_t n = 0;
  napi_get_array_length(env, argv[2], &n);
  size_t per = plus ? 2 + SC_COUNT : 4;
  size_t pos = 0;
  int count = 0;
  if (!buf) {
    fuse_reply_err(r->req, ENOMEM);
    rq_free(env, s, r);
    return result(env, -ENOMEM);
  }
  for (uint32_t i = 0; i + per <= n; i += per) {
    napi_value v;
    size_t len = 0;
    napi_get_element(env, argv[2], i, &v);
    char *name = get_name(env, v, &len);
    if (!name || len > 1023) { free(name); break; }
    size_t used;
    if (plus) {
      double d[SC_COUNT];
      napi_get_element(env, argv[2], i + 1, &v);
      off_t next = (off_t)get_num(env, v, 0);
      for (size_t k = 0; k < SC_COUNT; k++) {
        napi_get_element(env, argv[2], (uint32_t)(i + 2 + k), &v);
        d[k] = get_num(env, v, 0);
      }
      struct fuse_entry_param e;
      scratch_entry(d, &e);
      used = fuse_add_direntry_plus(r->req, buf + pos, cap - pos, name, &e, next);
    } else {
      struct stat st;
      memset(&st, 0, sizeof st);
      napi_get_element(env, argv[2], i + 1, &v);
      st.st_ino = (ino_t)get_num(env, v, 0);
      napi_get_element(env, argv[2], i + 2, &v);
      st.st_mode = (mode_t)get_num(env, v, 0);
      napi_get_element(env, argv[2], i + 3, &v);
      off_t next = (off_t)get_num(env, v, 0);
      used = fuse_add_direntry(r->req, buf + pos, cap - pos, name, &st, next);
    }
    free(name);
    if (used > cap - pos) break;
    pos += used;
    count++;
  }
  int res = fuse_reply_buf(r->req, buf, pos);
  free(buf);
  rq_free(env, s, r);
  return result(env, res < 0 ? res : count);
}

static napi_value js_reply_statfs(napi_env env, napi_callback_info info)
{
  ARGS(2);
  struct session *s;
  struct rq *r = reply_target(env, argv, argc, 2, &s);
  if (!r) return result(env, STALE);
  const double *d = s->scratch;
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = (unsigned long)d[SF_BSIZE];
  st.f_frsize = (unsigned long)d[SF_FRSIZE];
  st.f_blocks = (fsblkcnt_t)d[SF_BLOCKS];
  st.f_bfree = (fsblkcnt_t)d[SF_BFREE];
  st.f_bavail = (fsblkcnt_t)d[SF_BAVAIL];
  st.f_files = (fsfilcnt_t)d[SF_FILES];
  st.f_ffree = (fsfilcnt_t)d[SF_FFREE];
  st.f_favail = (fsfilcnt_t)d[SF_FAVAIL];
  st.f_fsid = (unsigned long)d[SF_FSID];
  st.f_flag = (unsigned long)d[SF_FLAG];
  st.f_namemax = (unsigned long)d[SF_NAMEMAX];
  int res = fuse_reply_statfs(r->req, &st);
  rq_free(env, s, r);
  return result(env, res);
}

/* notify(handle, kind, ino, ino2OrOff, len, name) -> Promise<0 | -errno>, run on the notifier
 * thread. kind 0: inval_inode(ino, off, len); 1: inval_entry(ino, name); 2: delete(ino, ino2, name). */
static napi_value js_notify(napi_env env, napi_callback_info info)
{
  ARGS(6);
  struct session *s;
  if (argc < 6 || !get_session(env, argv[0], &s)) return NULL;
  int kind = (int)get_num(env, argv[1], -1);
  if (kind < 0 || kind > 2) return throw_msg(env, "bad notify kind");
  char *name = kind ? get_name(env, argv[5], NULL) : NULL;
  if (kind && !name) return throw_msg(env, "name must be a string");
  size_t nl = name ? strlen(name) : 0;
  struct notify *n = calloc(1, sizeof *n + nl + 1);
  if (!n) { free(name); return throw_msg(env, "out of memory"); }
  n->kind = kind;
  n->ino = (uint64_t)get_num(env, argv[2], 0);
  if (kind == 0) {
    n->off = (int64_t)get_num(env, argv[3], 0);
    n->len = (int64_t)get_num(env, argv[4], 0);
  } else {
    n->ino2 = (uint64_t)get_num(env, argv[3], 0);
  }
  if (name) memcpy(n->name, name, nl + 1);
  free(name);
  napi_value promise;
  if (napi_create_promise(env, &n->deferred, &promise) != napi_ok) { free(n); return NULL; }
  if (s->stopping || s->ended || !s->se) {
    napi_resolve_deferred(env, n->deferred, num(env, -ENOTCONN));
    free(n);
    return promise;
  }
  pthread_mutex_lock(&s->nlock);
  if (!s->notifier_started) {
    if (pthread_create(&s->notifier, NULL, notifier_main, s) == 0) s->notifier_started = true;
  }
  bool ok = s->notifier_started;
  if (ok) {
    if (s->ntail) s->ntail->next = n; else s->nhead = n;
    s->ntail = n;
    pthread_cond_signal(&s->ncond);
  }
  pthread_mutex_unlock(&s->nlock);
  if (!ok) {
    napi_resolve_deferred(env, n->deferred, num(env, -EAGAIN));
    free(n);
  }
  return promise;
}

/* An inode number argument: a positive integer that a double holds exactly. */
static bool get_ino(napi_env env, napi_value v, uint64_t *ino)
{
  double d = get_num(env, v, 0);
  if (!(d >= 1) || d > 9007199254740991.0 || d != floor(d)) return false;
  *ino = (uint64_t)d;
  return true;
}

static void backing_close(struct session *s, int32_t id)
{
  ioctl(fuse_session_fd(s->se), SLINKY_DEV_IOC_BACKING_CLOSE, &(uint32_t){ (uint32_t)id });
}

/* setImmutable(handle, ino, on): answer read-only opens, flushes and releases of `ino` here (see
 * the header); false when out of memory (JS keeps answering them then). */
static napi_value js_set_immutable(napi_env env, napi_callback_info info)
{
  ARGS(3);
  struct session *s;
  uint64_t ino;
  if (argc < 3 || !get_session(env, argv[0], &s)) return NULL;
  if (!get_ino(env, argv[1], &ino)) return throw_msg(env, "inode must be a positive integer");
  bool on = false;
  napi_get_value_bool(env, argv[2], &on);
  pthread_mutex_lock(&s->ilock);
  bool ok = true;
  int32_t backing = 0;
  if (on) ok = imm_add(s, ino);
  else backing = imm_remove(s, ino);
  pthread_mutex_unlock(&s->ilock);
  /* Files open on it keep their own reference to the backing file. */
  if (backing > 0) backing_close(s, backing);
  return boolean(env, ok);
}

/* setBacking(handle, ino, fd) -> backing id > 0, or -errno: from now on opens of immutable `ino`
 * pass through to the file open at `fd` (the caller has verified its bytes are the inode's, and
 * may close `fd` afterwards: the kernel keeps its own reference). -ENOTSUP when the kernel did
 * not grant passthrough, -ENOENT when `ino` is not immutable, -EEXIST when it already has one. */
static napi_value js_set_backing(napi_env env, napi_callback_info info)
{
  ARGS(3);
  struct session *s;
  uint64_t ino;
  if (argc < 3 || !get_session(env, argv[0], &s)) return NULL;
  if (!get_ino(env, argv[1], &ino)) return throw_msg(env, "inode must be a positive integer");
  double f = get_num(env, argv[2], -1);
  if (!(f >= 0) || f > INT32_MAX || f != floor(f)) return throw_msg(env, "fd must be a file descriptor");
  if (!s->passthrough_on || s->ended) return num(env, -ENOTSUP);
  pthread_mutex_lock(&s->ilock);
  struct imm *e = imm_find(s, ino);
  int err = !e ? ENOENT : e->backing ? EEXIST : 0;
  pthread_mutex_unlock(&s->ilock);
  if (err) return num(env, -err);
  struct slinky_backing_map map = { .fd = (int32_t)f };
  int id = ioctl(fuse_session_fd(s->se), SLINKY_DEV_IOC_BACKING_OPEN, &map);
  if (id <= 0) return num(env, id < 0 ? -errno : -EIO);
  pthread_mutex_lock(&s->ilock);
  e = imm_find(s, ino); /* the table may have been rebuilt meanwhile */
  if (e && !e->backing) e->backing = id;
  else err = e ? EEXIST : ENOENT;
  pthread_mutex_unlock(&s->ilock);
  if (err) {
    backing_close(s, id);
    return num(env, -err);
  }
  return num(env, id);
}

/* fastPath(handle) -> [opens, flushes, releases, immutable inodes, passthrough opens,
 * passthrough granted (0/1), getattrs]: requests answered here. */
static napi_value js_fast_path(napi_env env, napi_callback_info info)
{
  ARGS(1);
  struct session *s;
  if (argc < 1 || !get_session(env, argv[0], &s)) return NULL;
  pthread_mutex_lock(&s->ilock);
  double v[7] = { (double)s->fast_opens, (double)s->fast_flushes, (double)s->fast_releases, (double)s->imm_n,
                  (double)s->passthrough_opens, s->passthrough_on ? 1 : 0, (double)s->fast_getattrs };
  pthread_mutex_unlock(&s->ilock);
  napi_value out;
  napi_create_array_with_length(env, 7, &out);
  for (uint32_t i = 0; i < 7; i++) napi_set_element(env, out, i, num(env, v[i]));
  return out;
}

/* liveRequests(handle): requests JS has not answered yet (for tests and unmount). */
static napi_value js_live(napi_env env, napi_callback_info info)
{
  ARGS(1);
  struct session *s;
  if (argc < 1 || !get_session(env, argv[0], &s)) return NULL;
  return num(env, s->live);
}

static napi_value init_module(napi_env env, napi_value exports)
{
  fuse_set_log_func(on_fuse_log);
  pthread_once(&g_once, g_register_exit);
  napi_property_descriptor props[] = {
    { "mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL },
    { "unmount", NULL, js_unmount, NULL, NULL, NULL, napi_default, NULL },
    { "replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_default, NULL },
    { "replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_default, NULL },
    { "replyCreate", NULL, js_reply_create, NULL, NULL, NULL, napi_default, NULL },
    { "replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_default, NULL },
    { "replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_default, NULL },
    { "replyWrite", NULL, js_reply_write, NULL, NULL, NULL, napi_default, NULL },
    { "replyLseek", NULL, js_reply_lseek, NULL, NULL, NULL, napi_default, NULL },
    { "replyBuf", NULL, js_reply_buf, NULL, NULL, NULL, napi_default, NULL },
    { "replyXattrSize", NULL, js_reply_xattr_size, NULL, NULL, NULL, napi_default, NULL },
    { "replyDir", NULL, js_reply_dir, NULL, NULL, NULL, napi_default, NULL },
    { "replyStatfs", NULL, js_reply_statfs, NULL, NULL, NULL, napi_default, NULL },
    { "notify", NULL, js_notify, NULL, NULL, NULL, napi_default, NULL },
    { "liveRequests", NULL, js_live, NULL, NULL, NULL, napi_default, NULL },
    { "setImmutable", NULL, js_set_immutable, NULL, NULL, NULL, napi_default, NULL },
    { "setBacking", NULL, js_set_backing, NULL, NULL, NULL, napi_default, NULL },
    { "fastPath", NULL, js_fast_path, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  napi_value names;
  napi_create_array_with_length(env, OP_COUNT, &names);
  for (int i = 0; i < OP_COUNT; i++) napi_set_element(env, names, (uint32_t)i, str(env, OP_NAMES[i]));
  napi_set_named_property(env, exports, "opNames", names);
  napi_set_named_property(env, exports, "scratchLength", num(env, SC_COUNT));
  char version[32];
  snprintf(version, sizeof version, "%d", fuse_version());
  napi_set_named_property(env, exports, "fuseVersion", str(env, version));
  return exports;
}

NAPI_MODULE(slinky_fusell, init_module)
