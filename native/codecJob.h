/* A codec job on the libuv threadpool, shared by the slinky_native (zstd) and slinky_xz addons:
 * the promise, the references that keep input and output alive while a pool thread works, and
 * turning the outcome into a resolved Buffer or a rejected error with a `code`. Each codec embeds
 * codec_job as the first member of its own job struct and supplies `run`, which executes on a
 * pool thread and must touch no JS value. */
#ifndef SLINKY_CODEC_JOB_H
#define SLINKY_CODEC_JOB_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes carried by rejected/thrown errors' `code` property; src/ maps them to typed errors. */
#define SLINKY_ERR_CORRUPT "SLINKY_CORRUPT_CHUNK"
#define SLINKY_ERR_ARG "SLINKY_BAD_ARGUMENT"
#define SLINKY_ERR_INTERNAL "SLINKY_NATIVE_INTERNAL"

typedef struct codec_job codec_job;

struct codec_job {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input_ref;  /* keeps the input alive while a pool thread reads it */
  napi_ref output_ref; /* decoding: the Buffer being filled */
  const uint8_t *src;
  size_t src_len;
  /* Decoding: the output Buffer's memory (into_output). Encoding: malloc'd by `run`, copied into
   * the result and freed. */
  uint8_t *dst;
  size_t dst_len;
  bool into_output;
  bool ok;
  const char *err_code;
  char msg[200];
  void (*run)(codec_job *job);
  /* Optional: frees what the codec's own struct owns, on the JS thread, just before the job. */
  void (*cleanup)(codec_job *job);
};

/* A zeroed job of `size` bytes (the codec's struct) with `run` set; NULL (and a thrown error)
 * when out of memory. */
void *codec_job_new(napi_env env, size_t size, void (*run)(codec_job *job));

/* Decode into a new Buffer of exactly `expected` bytes. On failure frees the job, throws and
 * returns false. */
bool codec_job_output(napi_env env, codec_job *job, size_t expected);

/* Queue the job, reading `input` (a Uint8Array whose bytes are src/src_len). Returns the promise,
 * or NULL with a pending exception (the job is freed). */
napi_value codec_job_queue(napi_env env, codec_job *job, napi_value input, const char *name);

/* Record a failure from `run`. */
void codec_job_fail(codec_job *job, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
