/* zstd compression of single chunks with Debian's libzstd: synchronous calls for small work on
 * the caller's thread and napi_async_work variants that run on the libuv threadpool so the
 * mount daemon's event loop keeps answering FUSE while chunks are (de)compressed.
 *
 * Decompression never trusts the frame: output goes into a buffer of exactly the length the
 * caller expects (from its own metadata), and anything that does not decode to exactly that
 * many bytes is reported as a corrupt chunk. */
#include "addon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <openssl/sha.h> /* from Node's headers: node exports its OpenSSL */
#include <zstd_errors.h>

/* Largest chunk the addon accepts in either direction; far above any chunker maxSize. */
#define MAX_CHUNK_BYTES (1u << 30)

/* One context per thread (the JS thread and each threadpool thread), created on first use and
 * kept for the life of the thread: contexts are expensive to create relative to an 8 KiB chunk. */
static __thread ZSTD_CCtx *tls_cctx;
static __thread ZSTD_DCtx *tls_dctx;

static ZSTD_CCtx *cctx(void)
{
  if (!tls_cctx) tls_cctx = ZSTD_createCCtx();
  return tls_cctx;
}

static ZSTD_DCtx *dctx(void)
{
  if (!tls_dctx) tls_dctx = ZSTD_createDCtx();
  return tls_dctx;
}

/* Compress into dst (capacity ZSTD_compressBound(len)); returns size or a zstd error code. */
static size_t do_compress(void *dst, size_t cap, const void *src, size_t len, int level)
{
  ZSTD_CCtx *c = cctx();
  if (!c) return (size_t)-ZSTD_error_memory_allocation;
  return ZSTD_compressCCtx(c, dst, cap, src, len, level);
}

/* Decode exactly `expected` bytes or fail; writes at most `expected` bytes into dst. On failure
 * fills msg. */
static bool do_decompress(void *dst, size_t expected, const void *src, size_t len, char *msg, size_t msglen)
{
  ZSTD_DCtx *d = dctx();
  if (!d) {
    snprintf(msg, msglen, "out of memory for a zstd context");
    return false;
  }
  /* Only what encodeChunk writes: a standard frame first. Skippable and legacy-format frames
   * (which zstd would otherwise accept, legacy ones with their own allocations) are corrupt. */
  const uint8_t *s = src;
  if (len < 4 || ((uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24) != ZSTD_MAGICNUMBER) {
    snprintf(msg, msglen, "not a zstd frame");
    return false;
  }
  /* A zero-capacity destination may be NULL; zstd wants a valid pointer. */
  static char empty;
  size_t r = ZSTD_decompressDCtx(d, expected ? dst : &empty, expected, src, len);
  if (ZSTD_isError(r)) {
    snprintf(msg, msglen, "zstd: %s", ZSTD_getErrorName(r));
    return false;
  }
  if (r != expected) {
    snprintf(msg, msglen, "zstd frame decodes to %zu bytes, expected %zu", r, expected);
    return false;
  }
  return true;
}

static bool get_level(napi_env env, napi_value v, int *level)
{
  int64_t l;
  if (!slinky_get_int(env, v, "level", ZSTD_minCLevel(), ZSTD_maxCLevel(), &l)) return false;
  *level = (int)l;
  return true;
}

static bool get_length(napi_env env, napi_value v, size_t *len)
{
  return slinky_get_index(env, v, "expectedLength", MAX_CHUNK_BYTES, len);
}

static bool check_input_size(napi_env env, size_t len)
{
  if (len > MAX_CHUNK_BYTES) {
    napi_throw_range_error(env, SLINKY_ERR_ARG, "chunk larger than 1 GiB");
    return false;
  }
  return true;
}

/* ---- synchronous -------------------------------------------------------------------------- */

/* Scratch output for synchronous compression on the JS thread, grown as needed, so a chunk costs
 * one copy (into an exact-size Buffer) and no malloc. */
static __thread uint8_t *tls_scratch;
static __thread size_t tls_scratch_len;

static void throw_usage(napi_env env, const char *usage)
{
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_type_error(env, SLINKY_ERR_ARG, usage);
}

/* (data, level) of the compress calls, sync and async; false with an exception thrown. */
static bool compress_args(napi_env env, napi_callback_info info, const char *usage, napi_value *data, uint8_t **src,
                          size_t *len, int *level)
{
  napi_value argv[2];
  if (!slinky_get_args(env, info, 2, argv, usage) || !slinky_get_bytes(env, argv[0], "data", src, len) ||
      !check_input_size(env, *len) || !get_level(env, argv[1], level)) {
    throw_usage(env, usage);
    return false;
  }
  *data = argv[0];
  return true;
}

/* (data, expectedLength) of the decompress calls, sync and async. */
static bool decompress_args(napi_env env, napi_callback_info info, const char *usage, napi_value *data, uint8_t **src,
                            size_t *len, size_t *expected)
{
  napi_value argv[2];
  if (!slinky_get_args(env, info, 2, argv, usage) || !slinky_get_bytes(env, argv[0], "data", src, len) ||
      !get_length(env, argv[1], expected)) {
    throw_usage(env, usage);
    return false;
  }
  *data = argv[0];
  return true;
}

/* zstdCompress(data: Uint8Array, level) -> Buffer */
static napi_value zstd_compress_sync(napi_env env, napi_callback_info info)
{
  napi_value data;
  uint8_t *src;
  size_t len;
  int level;
  if (!compress_args(env, info, "zstdCompress(data, level)", &data, &src, &len, &level)) return NULL;
  size_t cap = ZSTD_compressBound(len);
  if (tls_scratch_len < cap) {
    uint8_t *grown = realloc(tls_scratch, cap);
    if (!grown) {
      napi_throw_error(env, SLINKY_ERR_INTERNAL, "out of memory");
      return NULL;
    }
    tls_scratch = grown;
    tls_scratch_len = cap;
  }
  size_t n = do_compress(tls_scratch, cap, src, len, level);
  if (ZSTD_isError(n)) {
    char msg[160];
    snprintf(msg, sizeof msg, "zstd compression failed: %s", ZSTD_getErrorName(n));
    napi_throw_error(env, SLINKY_ERR_INTERNAL, msg);
    return NULL;
  }
  napi_value out;
  NAPI_OK(env, napi_create_buffer_copy(env, n, tls_scratch, NULL, &out));
  return out;
}

/* zstdDecompress(data: Uint8Array, expectedLength) -> Buffer of exactly expectedLength bytes */
static napi_value zstd_decompress_sync(napi_env env, napi_callback_info info)
{
  napi_value data;
  uint8_t *src;
  size_t len, expected;
  if (!decompress_args(env, info, "zstdDecompress(data, expectedLength)", &data, &src, &len, &expected)) return NULL;
  napi_value out;
  void *dst;
  NAPI_OK(env, napi_create_buffer(env, expected, &dst, &out));
  char msg[200];
  if (!do_decompress(dst, expected, src, len, msg, sizeof msg)) {
    napi_throw_error(env, SLINKY_ERR_CORRUPT, msg);
    return NULL;
  }
  return out;
}

/* ---- asynchronous ------------------------------------------------------------------------- */

typedef struct {
  codec_job base;
  int level;
} zstd_job;

/* Decompress into the output Buffer (into_output), or compress into a malloc'd result. */
static void run_zstd(codec_job *base)
{
  zstd_job *job = (zstd_job *)base;
  if (base->into_output) {
    if (!do_decompress(base->dst, base->dst_len, base->src, base->src_len, base->msg, sizeof base->msg)) {
      base->err_code = SLINKY_ERR_CORRUPT;
      return;
    }
    base->ok = true;
    return;
  }
  size_t cap = ZSTD_compressBound(base->src_len);
  base->dst = malloc(cap ? cap : 1);
  if (!base->dst) {
    codec_job_fail(base, SLINKY_ERR_INTERNAL, "out of memory");
    return;
  }
  size_t n = do_compress(base->dst, cap, base->src, base->src_len, job->level);
  if (ZSTD_isError(n)) {
    codec_job_fail(base, SLINKY_ERR_INTERNAL, "zstd compression failed: %s", ZSTD_getErrorName(n));
    return;
  }
  base->dst_len = n;
  base->ok = true;
}

/* zstdCompressAsync(data, level) -> Promise<Buffer> */
static napi_value zstd_compress_async(napi_env env, napi_callback_info info)
{
  napi_value data;
  uint8_t *src;
  size_t len;
  int level;
  if (!compress_args(env, info, "zstdCompressAsync(data, level)", &data, &src, &len, &level)) return NULL;
  zstd_job *job = codec_job_new(env, sizeof *job, run_zstd);
  if (!job) return NULL;
  job->base.src = src;
  job->base.src_len = len;
  job->level = level;
  return codec_job_queue(env, &job->base, data, "slinky:zstd");
}

/* zstdDecompressAsync(data, expectedLength) -> Promise<Buffer> */
static napi_value zstd_decompress_async(napi_env env, napi_callback_info info)
{
  napi_value data;
  uint8_t *src;
  size_t len, expected;
  if (!decompress_args(env, info, "zstdDecompressAsync(data, expectedLength)", &data, &src, &len, &expected)) return NULL;
  zstd_job *job = codec_job_new(env, sizeof *job, run_zstd);
  if (!job || !codec_job_output(env, &job->base, expected)) return NULL;
  job->base.src = src;
  job->base.src_len = len;
  return codec_job_queue(env, &job->base, data, "slinky:zstd");
}

/* ---- batch decode ------------------------------------------------------------------------- */

/* One row of a batch table (little-endian, BATCH_ROW bytes): codec u8, 3 bytes zero, then u32s:
 * source offset, source length, chunk length, output offset, skip, take; then the chunk's
 * SHA-256 (32 bytes). The row's chunk is decoded, verified, and bytes [skip, skip+take) of it
 * land at the output offset. */
#define BATCH_ROW 60

typedef struct {
  codec_job base;
  size_t n;
  uint8_t *table; /* a private copy: JS may reuse its own */
  uint8_t *out;   /* the output Buffer's memory, kept alive by base.output_ref */
} batch_job;

static void free_batch(codec_job *base)
{
  free(((batch_job *)base)->table);
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Per pool thread: where a chunk of which only a part is wanted is decoded first. */
static __thread uint8_t *tls_part;
static __thread size_t tls_part_len;

/* Decode and verify one row; 0 good, 1 corrupt encoding (or no memory), 2 digest mismatch. */
static uint8_t batch_row(batch_job *job, const uint8_t *row)
{
  const uint8_t *src = job->base.src + le32(row + 4);
  size_t src_len = le32(row + 8), len = le32(row + 12), skip = le32(row + 20), take = le32(row + 24);
  uint8_t *target = job->out + le32(row + 16);
  /* A whole chunk goes straight into the output; a part goes through the scratch buffer so
   * only verified bytes are ever copied out. */
  uint8_t *dst = target;
  if (skip != 0 || take != len) {
    if (tls_part_len < len) {
      uint8_t *grown = realloc(tls_part, len);
      if (!grown) return 1;
      tls_part = grown;
      tls_part_len = len;
    }
    dst = tls_part;
  }
  char msg[200];
  if (row[0] == 0) {
    if (src_len != len) return 1;
    memcpy(dst, src, len);
  } else if (!do_decompress(dst, len, src, src_len, msg, sizeof msg)) {
    return 1;
  }
  uint8_t got[32];
  SHA256(dst, len, got);
  if (memcmp(got, row + 28, 32) != 0) return 2;
  if (dst != target) memcpy(target, dst + skip, take);
  return 0;
}

/* One bad chunk must not fail its neighbours: a status per row. */
static void run_batch(codec_job *base)
{
  batch_job *job = (batch_job *)base;
  for (size_t i = 0; i < job->n; i++) base->dst[i] = batch_row(job, job->table + i * BATCH_ROW);
  base->ok = true;
}

/* chunkDecodeVerifyBatchAsync(input, table, out) -> Promise<Buffer of one status per row>:
 * decode many stored chunks (rows of `table`, encoded bytes in `input`), check each against its
 * SHA-256 and place the wanted bytes in `out`, as one threadpool job. Every offset is checked
 * here, before anything is queued. */
static napi_value chunk_decode_verify_batch_async(napi_env env, napi_callback_info info)
{
  const char *usage = "chunkDecodeVerifyBatchAsync(input, table, out)";
  napi_value argv[3];
  uint8_t *in, *table, *out;
  size_t in_len, table_len, out_len;
  if (!slinky_get_args(env, info, 3, argv, usage) || !slinky_get_bytes(env, argv[0], "input", &in, &in_len) ||
      !slinky_get_bytes(env, argv[1], "table", &table, &table_len) || !slinky_get_bytes(env, argv[2], "out", &out, &out_len)) {
    throw_usage(env, usage);
    return NULL;
  }
  if (table_len % BATCH_ROW != 0) {
    napi_throw_range_error(env, SLINKY_ERR_ARG, "batch table length is not a multiple of 60");
    return NULL;
  }
  size_t n = table_len / BATCH_ROW;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *row = table + i * BATCH_ROW;
    uint64_t so = le32(row + 4), sl = le32(row + 8), len = le32(row + 12), at = le32(row + 16), skip = le32(row + 20),
             take = le32(row + 24);
    if (row[0] > 1 || so + sl > in_len || len > MAX_CHUNK_BYTES || skip + take > len || at + take > out_len) {
      napi_throw_range_error(env, SLINKY_ERR_ARG, "batch row outside its buffers or with an unknown codec");
      return NULL;
    }
  }
  batch_job *job = codec_job_new(env, sizeof *job, run_batch);
  if (!job) return NULL;
  job->table = malloc(table_len ? table_len : 1);
  job->base.dst = malloc(n ? n : 1); /* the statuses; copied into the result and freed */
  if (!job->table || !job->base.dst || napi_create_reference(env, argv[2], 1, &job->base.output_ref) != napi_ok) {
    free(job->table);
    free(job->base.dst);
    free(job);
    napi_throw_error(env, SLINKY_ERR_INTERNAL, "out of memory");
    return NULL;
  }
  memcpy(job->table, table, table_len);
  job->n = n;
  job->out = out;
  job->base.dst_len = n;
  job->base.src = in;
  job->base.src_len = in_len;
  job->base.cleanup = free_batch;
  return codec_job_queue(env, &job->base, argv[0], "slinky:zstd-batch");
}

static napi_value zstd_version(napi_env env, napi_callback_info info)
{
  (void)info;
  napi_value v;
  NAPI_OK(env, napi_create_string_utf8(env, ZSTD_versionString(), NAPI_AUTO_LENGTH, &v));
  return v;
}

napi_status slinky_init_zstd(napi_env env, napi_value exports)
{
  napi_property_descriptor props[] = {
      {"zstdCompress", NULL, zstd_compress_sync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zstdDecompress", NULL, zstd_decompress_sync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zstdCompressAsync", NULL, zstd_compress_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zstdDecompressAsync", NULL, zstd_decompress_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zstdVersion", NULL, zstd_version, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chunkDecodeVerifyBatchAsync", NULL, chunk_decode_verify_batch_async, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
