/* Shared declarations of the slinky_native N-API addon (build/slinky_native.node): the Rabin cut
 * finder (addon_rabin.c), zstd chunk compression (addon_zstd.c) and extended attributes of open
 * files (addon_xattr.c), registered by addon.c.
 * N-API only, so one build works with every Node.js release that has N-API version 8. */
#ifndef SLINKY_ADDON_H
#define SLINKY_ADDON_H

#include "codecJob.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes (SLINKY_ERR_*): codecJob.h. */

/* Evaluate a napi call; on failure leave (with a pending JS exception if there is none). */
#define NAPI_OK(env, call)                                                       \
  do {                                                                           \
    if ((call) != napi_ok) {                                                     \
      slinky_throw_last(env, #call);                                             \
      return NULL;                                                               \
    }                                                                            \
  } while (0)

void slinky_throw_last(napi_env env, const char *what);

/* Argument helpers: each throws a TypeError/RangeError and returns false on bad input. */
/* Exactly `n` arguments into argv, else a TypeError saying `usage`. */
bool slinky_get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage);
bool slinky_get_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
bool slinky_get_index(napi_env env, napi_value v, const char *name, size_t max, size_t *out);
bool slinky_get_int(napi_env env, napi_value v, const char *name, int64_t lo, int64_t hi, int64_t *out);

/* The Rabin cut finder (addon_rabin.c), for the other parts of the addon. */
typedef struct rabin_chunker rabin_chunker;
bool slinky_get_chunker(napi_env env, napi_value v, rabin_chunker **out);
/* Length of the chunk starting at data[0] with `avail` bytes available; -1 = need more bytes. */
int64_t slinky_rabin_next_cut(const rabin_chunker *c, const uint8_t *data, size_t avail, bool final);
size_t slinky_rabin_max_size(const rabin_chunker *c);

napi_status slinky_init_rabin(napi_env env, napi_value exports);
napi_status slinky_init_chunkhash(napi_env env, napi_value exports);
napi_status slinky_init_zstd(napi_env env, napi_value exports);
napi_status slinky_init_xattr(napi_env env, napi_value exports);

#endif
