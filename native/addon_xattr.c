/* Extended attributes of an open file (Node has no API for them): list, get, set and remove on a
 * file descriptor, for `slinkyfs digest`, which rewrites a file and must give the new one every
 * attribute of the old. On descriptors rather than paths, so the attributes read and written
 * are those of the very files the caller opened and wrote: no second path lookup, no symbolic
 * link to follow or not, no window in which another file could take the name. Synchronous: each call is one system call on a local inode, made by a command, not the daemon.
 *
 * Names are bytes (Uint8Array without the NUL), values are bytes. A failed call throws an Error
 * like Node's own system errors: `code` the errno's name ("EPERM"), `errno` its negated number,
 * `syscall` the call's name. */
#define _GNU_SOURCE /* strerrorname_np */
#include "addon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

/* linux/limits.h: the longest name, value and list the kernel handles. */
#define NAME_MAX_BYTES 255
#define VALUE_MAX_BYTES 65536
#define LIST_MAX_BYTES 65536

static void throw_errno(napi_env env, int err, const char *syscall)
{
  const char *name = strerrorname_np(err);
  char msg[200];
  snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));
  napi_value code, message, error, num, call;
  if (napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok || napi_create_int32(env, -err, &num) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &call) != napi_ok ||
      napi_set_named_property(env, error, "errno", num) != napi_ok ||
      napi_set_named_property(env, error, "syscall", call) != napi_ok) {
    slinky_throw_last(env, "creating an errno error");
    return;
  }
  napi_throw(env, error);
}

static bool get_fd(napi_env env, napi_value v, int *fd)
{
  int64_t i;
  if (!slinky_get_int(env, v, "fd", 0, INT32_MAX, &i)) return false;
  *fd = (int)i;
  return true;
}

/* The name as a NUL-terminated string in `out` (NAME_MAX_BYTES + 1 bytes). */
static bool get_name(napi_env env, napi_value v, char *out)
{
  uint8_t *bytes;
  size_t len;
  if (!slinky_get_bytes(env, v, "name", &bytes, &len)) return false;
  if (len == 0 || len > NAME_MAX_BYTES || memchr(bytes, 0, len)) {
    napi_throw_range_error(env, SLINKY_ERR_ARG, "name must be 1..255 bytes without NUL");
    return false;
  }
  memcpy(out, bytes, len);
  out[len] = 0;
  return true;
}

/* `n` arguments into argv, the first two a descriptor and a name (into `name`). */
static bool fd_name_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage, int *fd,
                         char *name)
{
  return slinky_get_args(env, info, n, argv, usage) && get_fd(env, argv[0], fd) && get_name(env, argv[1], name);
}

/* Asks for the size, then for the bytes, again if they grew in between. Returns their length,
 * the bytes in *buf (malloc'd, the caller frees), or -1 with errno set. */
static ssize_t read_sized(int fd, const char *name, size_t max, char **buf)
{
  *buf = NULL;
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t size = name ? fgetxattr(fd, name, NULL, 0) : flistxattr(fd, NULL, 0);
    if (size < 0) return -1;
    if ((size_t)size > max) size = (ssize_t)max;
    char *b = malloc(size ? (size_t)size : 1);
    if (!b) {
      errno = ENOMEM;
      return -1;
    }
    ssize_t n = name ? fgetxattr(fd, name, b, (size_t)size) : flistxattr(fd, b, (size_t)size);
    if (n >= 0) {
      *buf = b;
      return n;
    }
    int err = errno;
    free(b);
    errno = err;
    if (err != ERANGE || (size_t)size == max) return -1;
  }
  errno = ERANGE;
  return -1;
}

/* The list (name NULL) or the value of `name` as a Buffer, or an errno error. */
static napi_value sized_buffer(napi_env env, int fd, const char *name)
{
  char *bytes;
  ssize_t n = read_sized(fd, name, name ? VALUE_MAX_BYTES : LIST_MAX_BYTES, &bytes);
  if (n < 0) {
    throw_errno(env, errno, name ? "fgetxattr" : "flistxattr");
    return NULL;
  }
  napi_value out;
  napi_status s = napi_create_buffer_copy(env, (size_t)n, bytes, NULL, &out);
  free(bytes);
  if (s != napi_ok) {
    slinky_throw_last(env, "napi_create_buffer_copy");
    return NULL;
  }
  return out;
}

/* xattrList(fd) -> Buffer: the names, each followed by a NUL (flistxattr's list). */
static napi_value xattr_list(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  int fd;
  if (!slinky_get_args(env, info, 1, argv, "xattrList(fd)") || !get_fd(env, argv[0], &fd)) return NULL;
  return sized_buffer(env, fd, NULL);
}

/* xattrGet(fd, name) -> Buffer: the value. */
static napi_value xattr_get(napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  int fd;
  char name[NAME_MAX_BYTES + 1];
  if (!fd_name_args(env, info, 2, argv, "xattrGet(fd, name)", &fd, name)) return NULL;
  return sized_buffer(env, fd, name);
}

/* xattrSet(fd, name, value, flags): flags 0, XATTR_CREATE (1) or XATTR_REPLACE (2). */
static napi_value xattr_set(napi_env env, napi_callback_info info)
{
  napi_value argv[4];
  int fd;
  char name[NAME_MAX_BYTES + 1];
  uint8_t *value;
  size_t len;
  int64_t flags;
  if (!fd_name_args(env, info, 4, argv, "xattrSet(fd, name, value, flags)", &fd, name) ||
      !slinky_get_bytes(env, argv[2], "value", &value, &len) ||
      !slinky_get_int(env, argv[3], "flags", 0, XATTR_CREATE | XATTR_REPLACE, &flags))
    return NULL;
  if (len > VALUE_MAX_BYTES) {
    napi_throw_range_error(env, SLINKY_ERR_ARG, "value larger than 64 KiB");
    return NULL;
  }
  if (fsetxattr(fd, name, len ? (const void *)value : "", len, (int)flags) != 0) {
    throw_errno(env, errno, "fsetxattr");
    return NULL;
  }
  return NULL;
}

/* xattrRemove(fd, name) */
static napi_value xattr_remove(napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  int fd;
  char name[NAME_MAX_BYTES + 1];
  if (!fd_name_args(env, info, 2, argv, "xattrRemove(fd, name)", &fd, name)) return NULL;
  if (fremovexattr(fd, name) != 0) {
    throw_errno(env, errno, "fremovexattr");
    return NULL;
  }
  return NULL;
}

napi_status slinky_init_xattr(napi_env env, napi_value exports)
{
  napi_property_descriptor props[] = {
      {"xattrList", NULL, xattr_list, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrGet", NULL, xattr_get, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrSet", NULL, xattr_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrRemove", NULL, xattr_remove, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
