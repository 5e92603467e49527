/* flash_plan.h - the sizes the flash attention kernels need, known from the
 * shapes alone (no device), so that the memory plan can price them in any
 * build: the split of a kv head's query heads into parts in the backward,
 * and the backward's workspace. The kernels (nn/cuda/flash_attention.cu)
 * use the same functions. */
#ifndef TUNE_FLASH_PLAN_H
#define TUNE_FLASH_PLAN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parts a kv head's group of query heads is split into in the backward when
 * one block per kv head would run longer than the rest (132 SMs assumed);
 * each part beyond one writes fp32 partial dk, dv. */
int tn_flash_parts(int B, int S, int nh, int nkv, int hd, int window);
/* dq_acc [B·S·nh·hd] fp32, D [B·S·nh] fp32, then with parts > 1 dk_part,
 * dv_part [parts, B·S·nkv·hd] fp32. */
size_t tn_flash_workspace_bytes(int B, int S, int nh, int nkv, int hd);

#ifdef __cplusplus
}
#endif

#endif
