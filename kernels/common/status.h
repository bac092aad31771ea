/*
 * status.h: how both libraries report failure (not part of the ABI). An op returns a kn.h status code;
 * on failure kn_fail has written a one-line message that kn_last_error() returns (thread-local).
 * The definitions are in status_impl.h, compiled once per library (cpu/status.c, cuda/status.cu).
 */
#ifndef KN_STATUS_H
#define KN_STATUS_H

#include <stdint.h>
#include "../include/kn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Set the thread-local error message (printf format) and return `status`. */
int32_t kn_fail(int32_t status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

/* Return the status of `expr` from the calling function unless it is KN_OK. */
#define KN_TRY(expr)                    \
  do {                                  \
    int32_t kn_st_ = (expr);            \
    if (kn_st_ != KN_OK) return kn_st_; \
  } while (0)

#endif /* KN_STATUS_H */
