/* Chunking and hashing of a write batch as one threadpool job: the cuts of a window of file bytes
 * (the Rabin rule plus object boundaries, exactly src/chunking/chunker.ts nextFileCut) and the
 * SHA-256 of every chunk. A commit used to do both on the JS thread, where they took most of the
 * time the daemon spent on a large copy; here they run beside the event loop, which goes on
 * taking the next writes. */
#include "addon.h"

#include <openssl/sha.h> /* from Node's headers: node exports its OpenSSL (SHA-NI where present) */
#include <stdlib.h>
#include <string.h>

/* Object boundaries (chunker.ts OBJECT_ALIGN, ELF64_LE): a cut is forced at every file offset that
 * is a multiple of 4096 where an ELF64 little-endian header begins. */
#define OBJECT_ALIGN 4096
static const uint8_t ELF64_LE[7] = {0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01};

/* One output record: chunk length (u32 LE) then the SHA-256 of its bytes. */
#define RECORD 36

typedef struct {
  codec_job base;
  const rabin_chunker *c;
  size_t start, end;     /* window-relative: chunk from start; data[0..end) is the window */
  uint64_t file_base;    /* file offset of data[0] */
  bool final;            /* the window ends at the end of the file */
  size_t stop_from;      /* window-relative: from here on, stop after a cut in `stops` */
  double *stops;         /* sorted window-relative offsets (old cut points), malloc'd */
  size_t n_stops;
} hash_job;

/* First object boundary strictly after `start` and before `end`; `end` if none. */
static size_t next_object_boundary(const uint8_t *data, size_t start, size_t end, uint64_t file_base)
{
  uint64_t first_file = ((file_base + start) / OBJECT_ALIGN + 1) * OBJECT_ALIGN;
  for (uint64_t f = first_file; f - file_base < end; f += OBJECT_ALIGN) {
    size_t i = (size_t)(f - file_base);
    if (i + sizeof ELF64_LE <= end && memcmp(data + i, ELF64_LE, sizeof ELF64_LE) == 0) return i;
  }
  return end;
}

static bool is_stop(const hash_job *job, size_t pos, size_t *cursor)
{
  while (*cursor < job->n_stops && job->stops[*cursor] < (double)pos) (*cursor)++;
  return *cursor < job->n_stops && job->stops[*cursor] == (double)pos;
}

static void run_hash(codec_job *base)
{
  hash_job *job = (hash_job *)base;
  const uint8_t *data = base->src;
  const size_t max = slinky_rabin_max_size(job->c);
  size_t cap = 64, n = 0, cursor = 0;
  uint8_t *out = malloc(cap * RECORD);
  if (!out) {
    codec_job_fail(base, SLINKY_ERR_INTERNAL, "out of memory");
    return;
  }
  size_t pos = job->start;
  while (pos < job->end) {
    /* Without the end of the file in the window, a cut is only definite with a whole maximal
     * chunk plus an ELF header's bytes ahead: the caller goes on with a window from `pos`. */
    if (!job->final && pos + max + sizeof ELF64_LE > job->end) break;
    size_t b = next_object_boundary(data, pos, job->end, job->file_base);
    int64_t len = b < job->end ? slinky_rabin_next_cut(job->c, data + pos, b - pos, true)
                               : slinky_rabin_next_cut(job->c, data + pos, job->end - pos, job->final);
    if (len <= 0) break;
    if (n == cap) {
      uint8_t *grown = realloc(out, 2 * cap * RECORD);
      if (!grown) {
        free(out);
        codec_job_fail(base, SLINKY_ERR_INTERNAL, "out of memory");
        return;
      }
      out = grown;
      cap *= 2;
    }
    uint8_t *rec = out + n * RECORD;
    uint32_t l = (uint32_t)len;
    memcpy(rec, &l, 4); /* x86-64 and aarch64 are little-endian, like the format */
    SHA256(data + pos, (size_t)len, rec + 4);
    n++;
    pos += (size_t)len;
    if (pos >= job->stop_from && is_stop(job, pos, &cursor)) break;
  }
  base->dst = out;
  base->dst_len = n * RECORD;
  base->ok = true;
}

static void free_stops(codec_job *base)
{
  free(((hash_job *)base)->stops);
}

/* chunkHashAsync(handle, data, start, fileBase, isFinal, stopFrom, stops: Float64Array)
 *   -> Promise<Buffer>: records of (u32 LE length, 32-byte SHA-256), one per chunk from `start`,
 * for as long as the window decides the cuts; after a cut at or past `stopFrom` that is one of
 * `stops` (sorted, window-relative) it stops. `data` must not change until the promise settles. */
static napi_value chunk_hash_async(napi_env env, napi_callback_info info)
{
  napi_value argv[7];
  if (!slinky_get_args(env, info, 7, argv, "chunkHashAsync(handle, data, start, fileBase, isFinal, stopFrom, stops)")) return NULL;
  rabin_chunker *c;
  uint8_t *data;
  size_t len, start, stop_from;
  int64_t file_base;
  bool final;
  if (!slinky_get_chunker(env, argv[0], &c)) return NULL;
  if (!slinky_get_bytes(env, argv[1], "data", &data, &len)) return NULL;
  if (!slinky_get_index(env, argv[2], "start", len, &start)) return NULL;
  if (!slinky_get_int(env, argv[3], "fileBase", 0, (int64_t)1 << 53, &file_base)) return NULL;
  if (napi_get_value_bool(env, argv[4], &final) != napi_ok) {
    napi_throw_type_error(env, SLINKY_ERR_ARG, "isFinal must be a boolean");
    return NULL;
  }
  if (!slinky_get_index(env, argv[5], "stopFrom", (size_t)1 << 53, &stop_from)) return NULL;
  bool is_typed = false;
  napi_typedarray_type type;
  size_t n_stops = 0;
  void *stops_in = NULL;
  if (napi_is_typedarray(env, argv[6], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[6], &type, &n_stops, &stops_in, NULL, NULL) != napi_ok ||
      type != napi_float64_array) {
    napi_throw_type_error(env, SLINKY_ERR_ARG, "stops must be a Float64Array");
    return NULL;
  }
  hash_job *job = codec_job_new(env, sizeof *job, run_hash);
  if (!job) return NULL;
  job->stops = malloc(n_stops ? n_stops * sizeof(double) : 1);
  if (!job->stops) {
    free(job);
    napi_throw_error(env, SLINKY_ERR_INTERNAL, "out of memory");
    return NULL;
  }
  memcpy(job->stops, stops_in, n_stops * sizeof(double));
  job->n_stops = n_stops;
  job->c = c;
  job->start = start;
  job->end = len;
  job->file_base = (uint64_t)file_base;
  job->final = final;
  job->stop_from = stop_from;
  job->base.src = data;
  job->base.src_len = len;
  job->base.cleanup = free_stops;
  /* The chunker's tables belong to the handle: keep it alive while a pool thread reads them. */
  if (napi_create_reference(env, argv[0], 1, &job->base.output_ref) != napi_ok) {
    free(job->stops);
    free(job);
    napi_throw_error(env, SLINKY_ERR_INTERNAL, "out of memory");
    return NULL;
  }
  return codec_job_queue(env, &job->base, argv[1], "slinky:chunk-hash");
}

napi_status slinky_init_chunkhash(napi_env env, napi_value exports)
{
  napi_property_descriptor props[] = {
      {"chunkHashAsync", NULL, chunk_hash_async, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
