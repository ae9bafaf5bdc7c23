/* ctxops native CPU kernels for the decode step: paged decode attention and small-batch linears.
 *
 * Built on first use by ctxops/models/native.py with the machine's own compiler (-O3 -march=native -fopenmp), so
 * the loops below vectorize to whatever the CPU has (AVX2+FMA, AVX-512...). Plain C, no torch headers: the
 * Python side passes raw pointers of contiguous tensors. bf16 values are converted to fp32 by a 16-bit shift and
 * every sum is accumulated in fp32.
 *
 * Why: in torch 2.13 a one-query attention over a long bf16 cache goes through a kernel built for many queries
 * (and a gather of the sequence's blocks), and a one-row bf16 linear reaches a fraction of memory bandwidth. A
 * decode step reads every weight and every cached K/V once, so it is memory-bound when done directly.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

static inline float bf16_to_f32(uint16_t x) {
    uint32_t bits = (uint32_t)x << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t f32_to_bf16(float f) { /* round to nearest even, as torch does; NaN stays NaN */
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* e^x for x <= 0 (softmax after subtracting the max): 2^n * 2^f with f in [-0.5, 0.5] and a degree-7 Taylor
 * polynomial of 2^f (relative error < 1e-9 before float rounding). Written branch-free so loops vectorize. */
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    float t = x * 1.4426950408889634f;
    float n = floorf(t + 0.5f);
    float f = (t - n) * 0.6931471805599453f;
    float p = 1.0f + f * (1.0f + f * (0.5f + f * (1.6666667e-1f + f * (4.1666668e-2f +
              f * (8.3333333e-3f + f * (1.3888889e-3f + f * 1.9841270e-4f))))));
    int32_t e = (int32_t)n + 127;
    uint32_t bits = (uint32_t)e << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

#define MAX_DIM 512 /* head_dim */
/* Below this many multiply-adds a call runs on the calling thread: waking the others would cost more than the
 * work (tens of microseconds), and on a busy machine a descheduled thread stalls the whole parallel region. */
#define SERIAL_WORK (1 << 18)

/* One work item: every head of one sequence over its tokens [t0, t1). A cached token's row holds all KV heads
 * side by side, so the item walks each block's memory once, in order. q: the sequence's queries as (KV, Gp, D)
 * fp32, each group padded with zero rows to Gp, a multiple of 4, so that four dot products share each loaded key
 * row as four independent accumulator chains. Writes, per query head h (= kvh * G + g), the unnormalized output
 * acc (H, D), the maximum score m (H) and the sum of exponentials l (H). scores: scratch of KV * Gp * (t1 - t0). */
#define DEFINE_ATTN_ITEM(NAME, T, LOAD)                                                                            \
    static void NAME(const float *q, const T *k_cache, const T *v_cache, const int64_t *table, int64_t t0,      \
                     int64_t t1, int64_t G, int64_t KV, int64_t D, int64_t BS, float scale, float *scores,      \
                     float *acc, float *m, float *l) {                                                           \
        int64_t len = t1 - t0, Gp = (G + 3) / 4 * 4, row_len = KV * D;                                           \
        for (int64_t t = t0; t < t1;) {                                                                          \
            int64_t b = t / BS, stop = (b + 1) * BS < t1 ? (b + 1) * BS : t1;                                    \
            const T *kb = k_cache + table[b] * BS * row_len;                                                     \
            if (stop < t1) __builtin_prefetch(k_cache + table[b + 1] * BS * row_len);                            \
            for (; t < stop; t++) {                                                                              \
                const T *krow = kb + (t - b * BS) * row_len;                                                     \
                for (int64_t kvh = 0; kvh < KV; kvh++) {                                                         \
                    const T *kr = krow + kvh * D;                                                                \
                    for (int64_t g = 0; g < Gp; g += 4) {                                                        \
                        const float *q0 = q + (kvh * Gp + g) * D, *q1 = q0 + D, *q2 = q1 + D, *q3 = q2 + D;      \
                        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;                                        \
                        _Pragma("omp simd reduction(+ : s0, s1, s2, s3)") for (int64_t d = 0; d < D; d++) {      \
                            float r = LOAD(kr[d]);                                                               \
                            s0 += q0[d] * r;                                                                     \
                            s1 += q1[d] * r;                                                                     \
                            s2 += q2[d] * r;                                                                     \
                            s3 += q3[d] * r;                                                                     \
                        }                                                                                        \
                        float *sc = scores + (kvh * Gp + g) * len + (t - t0);                                    \
                        sc[0] = s0 * scale;                                                                      \
                        sc[len] = s1 * scale;                                                                    \
                        sc[2 * len] = s2 * scale;                                                                \
                        sc[3 * len] = s3 * scale;                                                                \
                    }                                                                                            \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
        for (int64_t kvh = 0; kvh < KV; kvh++)                                                                   \
            for (int64_t g = 0; g < G; g++) {                                                                    \
                float *sg = scores + (kvh * Gp + g) * len, mg = -INFINITY, sum = 0.0f;                           \
                _Pragma("omp simd reduction(max : mg)") for (int64_t i = 0; i < len; i++) mg = sg[i] > mg ? sg[i] : mg; \
                _Pragma("omp simd reduction(+ : sum)") for (int64_t i = 0; i < len; i++) {                       \
                    sg[i] = exp_nonpositive(sg[i] - mg);                                                         \
                    sum += sg[i];                                                                                \
                }                                                                                                \
                m[kvh * G + g] = mg;                                                                             \
                l[kvh * G + g] = sum;                                                                            \
            }                                                                                                    \
        memset(acc, 0, sizeof(float) * KV * G * D);                                                              \
        float row[MAX_DIM];                                                                                      \
        for (int64_t t = t0; t < t1;) {                                                                          \
            int64_t b = t / BS, stop = (b + 1) * BS < t1 ? (b + 1) * BS : t1;                                    \
            const T *vb = v_cache + table[b] * BS * row_len;                                                     \
            if (stop < t1) __builtin_prefetch(v_cache + table[b + 1] * BS * row_len);                            \
            for (; t < stop; t++) {                                                                              \
                const T *vrow = vb + (t - b * BS) * row_len;                                                     \
                for (int64_t kvh = 0; kvh < KV; kvh++) {                                                         \
                    const T *vr = vrow + kvh * D;                                                                \
                    for (int64_t d = 0; d < D; d++) row[d] = LOAD(vr[d]);                                        \
                    for (int64_t g = 0; g < G; g++) {                                                            \
                        float p = scores[(kvh * Gp + g) * len + (t - t0)];                                       \
                        float *ag = acc + (kvh * G + g) * D;                                                     \
                        _Pragma("omp simd") for (int64_t d = 0; d < D; d++) ag[d] += p * row[d];                 \
                    }                                                                                            \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
    }

static inline float load_f32(float x) { return x; }
static inline float store_f32(float x) { return x; }
DEFINE_ATTN_ITEM(attn_item_bf16, uint16_t, bf16_to_f32)
DEFINE_ATTN_ITEM(attn_item_f32, float, load_f32)

/* Decode attention, one query token per sequence, over a paged cache.
 * q:      (N, H, D) in T                     k_cache, v_cache: (num_blocks, BS, KV, D) in T
 * tables: (N, max_blocks) int64 block ids    lens: (N,) int64 tokens each sequence attends to (>= 1)
 * out:    (N, H, D) in T
 * Each sequence is cut into `splits` token ranges so that every thread has work even for one long sequence; the
 * partial softmaxes are merged with their maxima at the end (flash-decoding). */
#define DEFINE_DECODE(NAME, ITEM, T, LOAD, STORE)                                                                  \
    int NAME(const T *q, const T *k_cache, const T *v_cache, const int64_t *tables, const int64_t *lens,        \
             int64_t N, int64_t max_blocks, int64_t H, int64_t KV, int64_t D, int64_t BS, float scale, T *out,   \
             int nthreads) {                                                                                     \
        if (D > MAX_DIM || H % KV) return 1;                                                                     \
        int64_t G = H / KV, Gp = (G + 3) / 4 * 4, max_len = 0;                                                   \
        for (int64_t i = 0; i < N; i++) max_len = lens[i] > max_len ? lens[i] : max_len;                         \
        /* enough ranges to feed every thread 4 items, none shorter than 256 tokens */                           \
        int64_t splits = (4 * (int64_t)nthreads + N - 1) / N, by_len = (max_len + 255) / 256;                    \
        if (splits > by_len) splits = by_len;                                                                    \
        if (splits < 1) splits = 1;                                                                              \
        int64_t chunk = ((max_len + splits - 1) / splits + BS - 1) / BS * BS; /* whole blocks per range */      \
        int64_t items = N * splits;                                                                              \
        float *part = malloc(sizeof(float) * items * H * (D + 2));                                               \
        float *qf = calloc(N * KV * Gp * D, sizeof(float)); /* (N, KV, Gp, D): zero rows pad each group */      \
        if (!part || !qf) { free(part); free(qf); return 2; }                                                    \
        for (int64_t n = 0; n < N; n++)                                                                          \
            for (int64_t h = 0; h < H; h++)                                                                      \
                for (int64_t d = 0; d < D; d++)                                                                  \
                    qf[((n * KV + h / G) * Gp + h % G) * D + d] = LOAD(q[(n * H + h) * D + d]);                  \
        int failed = 0;                                                                                          \
        _Pragma("omp parallel num_threads(nthreads) if (N * max_len * H * D >= SERIAL_WORK)") {                 \
            float *scores = malloc(sizeof(float) * KV * Gp * chunk);                                             \
            if (!scores) { _Pragma("omp atomic write") failed = 1; }                                             \
            _Pragma("omp for schedule(dynamic, 1)") for (int64_t it = 0; it < items; it++) {                     \
                int64_t s = it % splits, n = it / splits;                                                        \
                int64_t t0 = s * chunk, t1 = t0 + chunk > lens[n] ? lens[n] : t0 + chunk;                        \
                float *acc = part + it * H * (D + 2), *m = acc + H * D, *l = m + H;                              \
                if (!scores || t0 >= t1) {                                                                       \
                    for (int64_t h = 0; h < H; h++) { m[h] = -INFINITY; l[h] = 0.0f; }                           \
                    continue;                                                                                    \
                }                                                                                                \
                ITEM(qf + n * KV * Gp * D, k_cache, v_cache, tables + n * max_blocks, t0, t1, G, KV, D, BS,      \
                     scale, scores, acc, m, l);                                                                  \
            }                                                                                                    \
            free(scores);                                                                                        \
        }                                                                                                        \
        if (!failed) {                                                                                           \
            for (int64_t n = 0; n < N; n++)                                                                      \
                for (int64_t h = 0; h < H; h++) {                                                                \
                    float mx = -INFINITY, denom = 0.0f, o[MAX_DIM];                                              \
                    for (int64_t s = 0; s < splits; s++) {                                                       \
                        float ms = part[(n * splits + s) * H * (D + 2) + H * D + h];                             \
                        if (ms > mx) mx = ms;                                                                    \
                    }                                                                                            \
                    memset(o, 0, sizeof(float) * D);                                                             \
                    for (int64_t s = 0; s < splits; s++) {                                                       \
                        float *acc = part + (n * splits + s) * H * (D + 2);                                      \
                        float ms = acc[H * D + h], ls = acc[H * D + H + h];                                      \
                        if (ls == 0.0f) continue;                                                                \
                        float w = exp_nonpositive(ms - mx);                                                      \
                        denom += w * ls;                                                                         \
                        for (int64_t d = 0; d < D; d++) o[d] += w * acc[h * D + d];                              \
                    }                                                                                            \
                    T *dst = out + (n * H + h) * D;                                                              \
                    for (int64_t d = 0; d < D; d++) dst[d] = STORE(o[d] / denom);                                \
                }                                                                                                \
        }                                                                                                        \
        free(part);                                                                                              \
        free(qf);                                                                                                \
        return failed ? 2 : 0;                                                                                   \
    }

DEFINE_DECODE(ctxops_decode_attention_bf16, attn_item_bf16, uint16_t, bf16_to_f32, f32_to_bf16)
DEFINE_DECODE(ctxops_decode_attention_f32, attn_item_f32, float, load_f32, store_f32)

/* y = x @ w.T (+ bias) for a few rows: x (M, K), w (N, K), bias (N) or NULL, y (M, N); all bf16.
 * Output columns go to threads in tiles of four weight rows; each x row meets the four weight rows in one loop,
 * four independent accumulator chains (one chain would leave the FMA units waiting on their own latency). With
 * several x rows, the tile is widened to fp32 once and reused by every row. */
#define GEMV_MAX_ROWS 16
int ctxops_linear_bf16(const uint16_t *x, const uint16_t *w, const uint16_t *bias, uint16_t *y, int64_t M,
                       int64_t N, int64_t K, int nthreads) {
    if (M > GEMV_MAX_ROWS || M < 1 || N % 4) return 1;
    float *xf = malloc(sizeof(float) * M * K);
    if (!xf) return 2;
    for (int64_t i = 0; i < M * K; i++) xf[i] = bf16_to_f32(x[i]);
    int failed = 0;
    _Pragma("omp parallel num_threads(nthreads) if (M * N * K >= SERIAL_WORK)") {
        float *tile = M > 1 ? malloc(sizeof(float) * 4 * K) : NULL;
        if (M > 1 && !tile) { _Pragma("omp atomic write") failed = 1; }
        _Pragma("omp for schedule(static)") for (int64_t j = 0; j < N; j += 4) {
            if (M > 1 && !tile) continue;
            const uint16_t *w0 = w + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
            if (M == 1) {
                float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
                _Pragma("omp simd reduction(+ : s0, s1, s2, s3)") for (int64_t k = 0; k < K; k++) {
                    float xv = xf[k];
                    s0 += bf16_to_f32(w0[k]) * xv;
                    s1 += bf16_to_f32(w1[k]) * xv;
                    s2 += bf16_to_f32(w2[k]) * xv;
                    s3 += bf16_to_f32(w3[k]) * xv;
                }
                float sums[4] = {s0, s1, s2, s3};
                for (int64_t c = 0; c < 4; c++)
                    y[j + c] = f32_to_bf16(sums[c] + (bias ? bf16_to_f32(bias[j + c]) : 0.0f));
                continue;
            }
            float *t0 = tile, *t1 = t0 + K, *t2 = t1 + K, *t3 = t2 + K;
            _Pragma("omp simd") for (int64_t k = 0; k < K; k++) {
                t0[k] = bf16_to_f32(w0[k]);
                t1[k] = bf16_to_f32(w1[k]);
                t2[k] = bf16_to_f32(w2[k]);
                t3[k] = bf16_to_f32(w3[k]);
            }
            for (int64_t r = 0; r < M; r++) {
                const float *xr = xf + r * K;
                float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
                _Pragma("omp simd reduction(+ : s0, s1, s2, s3)") for (int64_t k = 0; k < K; k++) {
                    float xv = xr[k];
                    s0 += t0[k] * xv;
                    s1 += t1[k] * xv;
                    s2 += t2[k] * xv;
                    s3 += t3[k] * xv;
                }
                float sums[4] = {s0, s1, s2, s3};
                for (int64_t c = 0; c < 4; c++)
                    y[r * N + j + c] = f32_to_bf16(sums[c] + (bias ? bf16_to_f32(bias[j + c]) : 0.0f));
            }
        }
        free(tile);
    }
    free(xf);
    return failed ? 2 : 0;
}

/* The same product with int8 weights and one bf16 scale per output row (``quantization="int8"``):
 * y = (x @ codes.T) * scale (+ bias). Reads a quarter of fp32's bytes, half of bf16's. */
int ctxops_linear_int8(const uint16_t *x, const int8_t *w, const uint16_t *scale, const uint16_t *bias, uint16_t *y,
                       int64_t M, int64_t N, int64_t K, int nthreads) {
    if (M > GEMV_MAX_ROWS || M < 1 || N % 4) return 1;
    float *xf = malloc(sizeof(float) * M * K);
    if (!xf) return 2;
    for (int64_t i = 0; i < M * K; i++) xf[i] = bf16_to_f32(x[i]);
    _Pragma("omp parallel for num_threads(nthreads) schedule(static) if (M * N * K >= SERIAL_WORK)")
    for (int64_t j = 0; j < N; j += 4) {
        const int8_t *w0 = w + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        for (int64_t r = 0; r < M; r++) {
            const float *xr = xf + r * K;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            _Pragma("omp simd reduction(+ : s0, s1, s2, s3)") for (int64_t k = 0; k < K; k++) {
                float xv = xr[k];
                s0 += (float)w0[k] * xv;
                s1 += (float)w1[k] * xv;
                s2 += (float)w2[k] * xv;
                s3 += (float)w3[k] * xv;
            }
            float sums[4] = {s0, s1, s2, s3};
            for (int64_t c = 0; c < 4; c++) {
                float v = sums[c] * bf16_to_f32(scale[j + c]) + (bias ? bf16_to_f32(bias[j + c]) : 0.0f);
                y[r * N + j + c] = f32_to_bf16(v);
            }
        }
    }
    free(xf);
    return 0;
}

/* RMSNorm of M bf16 rows of D, as Hugging Face computes it: the norm in fp32, rounded to bf16, then times the
 * bf16 weight (rounded again). One call replaces the ~8 small torch ops of a decode row; single-threaded. */
int ctxops_rms_norm_bf16(const uint16_t *x, const uint16_t *w, uint16_t *y, int64_t M, int64_t D, float eps) {
    for (int64_t r = 0; r < M; r++) {
        const uint16_t *xr = x + r * D;
        float sum = 0.0f;
        _Pragma("omp simd reduction(+ : sum)") for (int64_t d = 0; d < D; d++) {
            float v = bf16_to_f32(xr[d]);
            sum += v * v;
        }
        float inv = 1.0f / sqrtf(sum / (float)D + eps);
        for (int64_t d = 0; d < D; d++) {
            float normed = bf16_to_f32(f32_to_bf16(bf16_to_f32(xr[d]) * inv));
            y[r * D + d] = f32_to_bf16(bf16_to_f32(w[d]) * normed);
        }
    }
    return 0;
}
