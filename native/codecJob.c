/* See codecJob.h. */
#include "codecJob.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void *codec_job_new(napi_env env, size_t size, void (*run)(codec_job *job))
{
  codec_job *job = calloc(1, size);
  if (!job) {
    napi_throw_error(env, SLINKY_ERR_INTERNAL, "out of memory");
    return NULL;
  }
  job->run = run;
  return job;
}

void codec_job_fail(codec_job *job, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(job->msg, sizeof job->msg, fmt, ap);
  va_end(ap);
  job->err_code = code;
  job->ok = false;
}

bool codec_job_output(napi_env env, codec_job *job, size_t expected)
{
  napi_value out;
  void *dst;
  if (napi_create_buffer(env, expected, &dst, &out) != napi_ok ||
      napi_create_reference(env, out, 1, &job->output_ref) != napi_ok) {
    free(job);
    napi_throw_error(env, SLINKY_ERR_INTERNAL, "allocating the output buffer failed");
    return false;
  }
  job->dst = dst;
  job->dst_len = expected;
  job->into_output = true;
  return true;
}

static void execute(napi_env env, void *data)
{
  (void)env;
  codec_job *job = data;
  job->run(job);
}

static void complete(napi_env env, napi_status status, void *data)
{
  codec_job *job = data;
  napi_value result = NULL;
  if (status != napi_ok) codec_job_fail(job, SLINKY_ERR_INTERNAL, "codec job cancelled");
  if (job->ok) {
    if (job->into_output) {
      if (napi_get_reference_value(env, job->output_ref, &result) != napi_ok) result = NULL;
    } else if (napi_create_buffer_copy(env, job->dst_len, job->dst, NULL, &result) != napi_ok) {
      result = NULL;
    }
    if (!result) codec_job_fail(job, SLINKY_ERR_INTERNAL, "could not create the result buffer");
  }
  if (result) {
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    napi_value code, msg, error;
    napi_create_string_utf8(env, job->err_code ? job->err_code : SLINKY_ERR_INTERNAL, NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, job->msg, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_reference(env, job->input_ref);
  if (job->output_ref) napi_delete_reference(env, job->output_ref);
  if (!job->into_output) free(job->dst);
  napi_delete_async_work(env, job->work);
  if (job->cleanup) job->cleanup(job);
  free(job);
}

napi_value codec_job_queue(napi_env env, codec_job *job, napi_value input, const char *name)
{
  napi_value promise, resource;
  if (napi_create_reference(env, input, 1, &job->input_ref) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource) != napi_ok ||
      napi_create_async_work(env, NULL, resource, execute, complete, job, &job->work) != napi_ok ||
      napi_create_promise(env, &job->deferred, &promise) != napi_ok || napi_queue_async_work(env, job->work) != napi_ok) {
    /* Only reachable when the engine itself is failing; release what was taken. */
    if (job->input_ref) napi_delete_reference(env, job->input_ref);
    if (job->output_ref) napi_delete_reference(env, job->output_ref);
    if (job->work) napi_delete_async_work(env, job->work);
    if (!job->into_output) free(job->dst);
    if (job->cleanup) job->cleanup(job);
    free(job);
    napi_throw_error(env, SLINKY_ERR_INTERNAL, "queueing a codec job failed");
    return NULL;
  }
  return promise;
}
