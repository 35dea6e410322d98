/* Entry point of the slinky_native addon: module registration and the argument checks shared by
 * its parts. Every exported function validates its arguments itself, because a wrong offset
 * handed to C is a memory error rather than an exception. */
#include "addon.h"

#include <math.h>
#include <stdio.h>

void slinky_throw_last(napi_env env, const char *what)
{
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "%s failed: %s", what,
           info && info->error_message ? info->error_message : "unknown N-API error");
  napi_throw_error(env, SLINKY_ERR_INTERNAL, msg);
}

static void throw_type(napi_env env, const char *name, const char *expected)
{
  char msg[160];
  snprintf(msg, sizeof msg, "%s must be %s", name, expected);
  napi_throw_type_error(env, SLINKY_ERR_ARG, msg);
}

bool slinky_get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage)
{
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    slinky_throw_last(env, "napi_get_cb_info");
    return false;
  }
  if (argc != n) {
    napi_throw_type_error(env, SLINKY_ERR_ARG, usage);
    return false;
  }
  return true;
}

bool slinky_get_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len)
{
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) {
    throw_type(env, name, "a Uint8Array");
    return false;
  }
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    throw_type(env, name, "a Uint8Array");
    return false;
  }
  *data = ptr;
  return true;
}

bool slinky_get_int(napi_env env, napi_value v, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    throw_type(env, name, "a number");
    return false;
  }
  if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be an integer in %lld..%lld", name, (long long)lo, (long long)hi);
    napi_throw_range_error(env, SLINKY_ERR_ARG, msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool slinky_get_index(napi_env env, napi_value v, const char *name, size_t max, size_t *out)
{
  int64_t i;
  if (!slinky_get_int(env, v, name, 0, (int64_t)max, &i)) return false;
  *out = (size_t)i;
  return true;
}

static napi_value init(napi_env env, napi_value exports)
{
  if (slinky_init_rabin(env, exports) != napi_ok) return NULL;
  if (slinky_init_zstd(env, exports) != napi_ok) return NULL;
  if (slinky_init_chunkhash(env, exports) != napi_ok) return NULL;
  if (slinky_init_xattr(env, exports) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(slinky_native, init)
