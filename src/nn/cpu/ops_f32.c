/* ops_f32.c - the operations in float: the CPU backend the trainer runs. */
#define TN_OPS_DOUBLE 0
#include "nn/cpu/ops_impl.h"
