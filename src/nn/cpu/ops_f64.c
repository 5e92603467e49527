/* ops_f64.c - the operations in double (the _d functions), the same source
 * as ops_f32.c; the finite-difference gradient tests run these. */
#define TN_OPS_DOUBLE 1
#include "nn/cpu/ops_impl.h"
