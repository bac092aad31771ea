/*
 * status.c: the error message buffer and library info of libkn_cpu.so (common/status_impl.h).
 */
#include "../common/status_impl.h"
