/* presso native CPU kernel: paged attention for one-token (decode) queries, read straight from the pages.

   The torch path (kernels/attention/cpu.py) gathers each decode row's context into a padded
   (Bd, L, Hkv, D) copy, converts it to fp32 and transposes it for two batched matmuls: six full passes
   over the context per layer. Here every (row, kv head) pair reads its keys and values once from the
   pages, in place, and keeps the scores of its g = H / Hkv grouped query heads in a small buffer.
   The readable twin is attend_padded() / the reference paged_attention; tests compare them.

   q      (Bd, H, D) fp32                       the decode rows' queries
   kc, vc (S, Hkv, D) bf16 or fp32             the pages, flattened over (block, offset) = slot S
   slots  (Bd, L) int64                          flat slot of each context column of each row
   mask   (Bd, L) uint8 or NULL                  1 = column visible (NULL: all visible)
   out    (Bd, H, D) fp32
   Scores are scale * q.k, soft-capped as cap * tanh(x / cap) when cap > 0, softmaxed over the visible
   columns (fp32 throughout, like the torch path). A row with no visible column gets zeros. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void load_row(const void *base, int64_t index, int bf16, int64_t d, float *dst) {
    if (bf16) {
        const uint16_t *src = (const uint16_t *)base + index * d;
        for (int64_t i = 0; i < d; i++) {
            uint32_t bits = (uint32_t)src[i] << 16;
            memcpy(&dst[i], &bits, sizeof(float));
        }
    } else {
        memcpy(dst, (const float *)base + index * d, (size_t)d * sizeof(float));
    }
}

static void attend_pair(const float *q, const void *kc, const void *vc, int bf16, const int64_t *slots,
                        const uint8_t *mask, int64_t hkv, int64_t kh, int64_t g, int64_t d, int64_t len,
                        float scale, float cap, float *scores, float *row, float *out) {
    float best[64];
    float total[64];
    for (int64_t i = 0; i < g; i++) best[i] = -INFINITY;
    for (int64_t j = 0; j < len; j++) {
        if (mask && !mask[j]) continue;
        load_row(kc, slots[j] * hkv + kh, bf16, d, row);
        for (int64_t i = 0; i < g; i++) {
            const float *qi = q + i * d;
            float acc = 0.0f;
            for (int64_t c = 0; c < d; c++) acc += qi[c] * row[c];
            acc *= scale;
            if (cap > 0.0f) acc = cap * tanhf(acc / cap);
            scores[i * len + j] = acc;
            if (acc > best[i]) best[i] = acc;
        }
    }
    memset(out, 0, (size_t)(g * d) * sizeof(float));
    for (int64_t i = 0; i < g; i++) total[i] = 0.0f;
    for (int64_t j = 0; j < len; j++) {
        if (mask && !mask[j]) continue;
        load_row(vc, slots[j] * hkv + kh, bf16, d, row);
        for (int64_t i = 0; i < g; i++) {
            float p = expf(scores[i * len + j] - best[i]);
            total[i] += p;
            float *oi = out + i * d;
            for (int64_t c = 0; c < d; c++) oi[c] += p * row[c];
        }
    }
    for (int64_t i = 0; i < g; i++) {
        if (total[i] > 0.0f) {
            float inv = 1.0f / total[i];
            for (int64_t c = 0; c < d; c++) out[i * d + c] *= inv;
        }
    }
}

/* Returns 0, or -1 when g > 64 or the scratch memory could not be allocated (the caller falls back). */
int presso_paged_decode(const float *q, const void *kc, const void *vc, int bf16, const int64_t *slots,
                        const uint8_t *mask, int64_t bd, int64_t h, int64_t hkv, int64_t d, int64_t len,
                        float scale, float cap, float *out, int threads) {
    int64_t g = h / hkv;
    if (g > 64 || threads < 1) return -1;
    size_t per = (size_t)(g * len + d);  /* one thread's scores (g, L) and one decoded row (D) */
    float *scratch = malloc((size_t)threads * per * sizeof(float));
    if (!scratch) return -1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t task = 0; task < bd * hkv; task++) {
        int64_t b = task / hkv, kh = task % hkv;
        float *scores = scratch + (size_t)omp_get_thread_num() * per;
        attend_pair(q + (b * h + kh * g) * d, kc, vc, bf16, slots + b * len, mask ? mask + b * len : NULL,
                    hkv, kh, g, d, len, scale, cap, scores, scores + g * len, out + (b * h + kh * g) * d);
    }
    free(scratch);
    return 0;
}
