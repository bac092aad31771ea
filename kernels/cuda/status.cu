/*
 * status.cu: the error message buffer and library info of libkn_cuda.so (common/status_impl.h).
 */
#include "../common/status_impl.h"
