/*
 * status_impl.h: the definitions behind status.h and the kn.h library-info symbols. Included by
 * exactly one file of each library (cpu/status.c, cuda/status.cu), so each has one message buffer.
 */
#ifndef KN_STATUS_IMPL_H
#define KN_STATUS_IMPL_H

#include <stdarg.h>
#include <stdio.h>
#include "status.h"

#ifdef __cplusplus
#define KN_THREAD_LOCAL thread_local
#else
#define KN_THREAD_LOCAL _Thread_local
#endif

static KN_THREAD_LOCAL char kn_err_buf[512];

#ifdef __cplusplus
extern "C" {
#endif

KN_API int32_t kn_abi_version(void) { return KN_ABI_VERSION; }

KN_API const char* kn_last_error(void) { return kn_err_buf; }

int32_t kn_fail(int32_t status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(kn_err_buf, sizeof kn_err_buf, fmt, ap);
  va_end(ap);
  return status;
}

#ifdef __cplusplus
}
#endif

#endif /* KN_STATUS_IMPL_H */
