#include "CReinKernels.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// Eight lanes, whatever the build: the baseline compiles them to two SSE halves, the AVX2 build to
// one ymm register, with FMA contracting `a * b + c`.
typedef float v8f __attribute__((vector_size(32)));
// The helpers below pass v8f by value between static functions of this file only (all inlined),
// never across an ABI boundary, so clang's note that the baseline passes it differently from an
// AVX build does not apply.
#pragma clang diagnostic ignored "-Wpsabi"
typedef int v8i __attribute__((vector_size(32)));

#define SPLAT(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})

// exp on eight lanes (Cephes' polynomial; the engine's Swift exp8).
#define DEFINE_EXP8(NAME, ATTR)                                                                   \
    static inline __attribute__((always_inline)) ATTR v8f NAME(v8f x) {                                                          \
        x = __builtin_elementwise_min(__builtin_elementwise_max(x, SPLAT(-87.0f)), SPLAT(88.0f)); \
        const v8f magic = SPLAT(12582912.0f);                                                     \
        v8f t = x * 1.4426950408889634f + magic;                                                  \
        v8f n = t - magic;                                                                        \
        v8f r = x - n * 0.693359375f + n * 2.1219444e-4f;                                         \
        v8f p = SPLAT(1.9875691500e-4f);                                                          \
        p = p * r + 1.3981999507e-3f;                                                             \
        p = p * r + 8.3334519073e-3f;                                                             \
        p = p * r + 4.1665795894e-2f;                                                             \
        p = p * r + 1.6666665459e-1f;                                                             \
        p = p * r + 5.0000001201e-1f;                                                             \
        p = p * (r * r) + r + 1.0f;                                                               \
        v8i k = (v8i)t - (v8i)magic;                                                              \
        return p * (v8f)((k + 127) << 23);                                                        \
    }

// erf on eight lanes: the rational approximation Eigen and XLA use (absolute error ≈ 1e-7),
// inputs clamped to [−4, 4].
#define DEFINE_ERF8(NAME, ATTR)                                                                 \
    static inline __attribute__((always_inline)) ATTR v8f NAME(v8f x) {                                                        \
        x = __builtin_elementwise_min(__builtin_elementwise_max(x, SPLAT(-4.0f)), SPLAT(4.0f)); \
        v8f x2 = x * x;                                                                         \
        v8f p = SPLAT(-2.72614225801306e-10f);                                                  \
        p = p * x2 + 2.77068142495902e-08f;                                                     \
        p = p * x2 - 2.10102402082508e-06f;                                                     \
        p = p * x2 - 5.69250639462346e-05f;                                                     \
        p = p * x2 - 7.34990630326855e-04f;                                                     \
        p = p * x2 - 2.95459980854025e-03f;                                                     \
        p = p * x2 - 1.60960333262415e-02f;                                                     \
        v8f q = SPLAT(-1.45660718464996e-05f);                                                  \
        q = q * x2 - 2.13374055278905e-04f;                                                     \
        q = q * x2 - 1.68282697438203e-03f;                                                     \
        q = q * x2 - 7.37332916720468e-03f;                                                     \
        q = q * x2 - 1.42647390514189e-02f;                                                     \
        return x * p / q;                                                                       \
    }

// The kernels over n floats: whole vectors, then the tail through a zero-padded vector, so every
// element goes through the same arithmetic.
#define DEFINE_GELU(SUFFIX, ATTR)                                                              \
    DEFINE_EXP8(exp8_##SUFFIX, ATTR)                                                           \
    DEFINE_ERF8(erf8_##SUFFIX, ATTR)                                                           \
    static inline __attribute__((always_inline)) ATTR v8f cdf8_##SUFFIX(v8f x) {                                              \
        return 0.5f * (1.0f + erf8_##SUFFIX(x * 0.7071067811865475f));                        \
    }                                                                                          \
    static ATTR void gelu_forward_##SUFFIX(float *out, const float *x, size_t n) {             \
        size_t i = 0;                                                                          \
        v8f v;                                                                                 \
        for (; i + 8 <= n; i += 8) {                                                           \
            memcpy(&v, x + i, sizeof v);                                                       \
            v8f y = v * cdf8_##SUFFIX(v);                                                      \
            memcpy(out + i, &y, sizeof y);                                                     \
        }                                                                                      \
        if (i < n) {                                                                           \
            v = SPLAT(0.0f);                                                                   \
            memcpy(&v, x + i, (n - i) * sizeof(float));                                        \
            v8f y = v * cdf8_##SUFFIX(v);                                                      \
            memcpy(out + i, &y, (n - i) * sizeof(float));                                      \
        }                                                                                      \
    }                                                                                          \
    static inline __attribute__((always_inline)) ATTR void slope_step_##SUFFIX(v8f v, v8f *y, v8f *s) {                       \
        v8f phi = cdf8_##SUFFIX(v);                                                            \
        *y = v * phi;                                                                          \
        v8f pdf = exp8_##SUFFIX(-0.5f * v * v) * 0.3989422804014327f;                          \
        *s = phi + v * pdf;                                                                    \
    }                                                                                          \
    static ATTR void gelu_output_and_slope_##SUFFIX(float *out, float *x, size_t n) {          \
        size_t i = 0;                                                                          \
        v8f v, y, s;                                                                           \
        for (; i + 8 <= n; i += 8) {                                                           \
            memcpy(&v, x + i, sizeof v);                                                       \
            slope_step_##SUFFIX(v, &y, &s);                                                    \
            memcpy(out + i, &y, sizeof y);                                                     \
            memcpy(x + i, &s, sizeof s);                                                       \
        }                                                                                      \
        if (i < n) {                                                                           \
            v = SPLAT(0.0f);                                                                   \
            memcpy(&v, x + i, (n - i) * sizeof(float));                                        \
            slope_step_##SUFFIX(v, &y, &s);                                                    \
            memcpy(out + i, &y, (n - i) * sizeof(float));                                      \
            memcpy(x + i, &s, (n - i) * sizeof(float));                                        \
        }                                                                                      \
    }

DEFINE_GELU(base, )

#if defined(__x86_64__)
DEFINE_GELU(avx2, __attribute__((target("avx2,fma"))))

static int detect_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static int detect_avx2_fma(void) { return 0; }
#define gelu_forward_avx2 gelu_forward_base
#define gelu_output_and_slope_avx2 gelu_output_and_slope_base
#endif

// Each a one-time answer: -1 until the first call asks.
static _Atomic int has_avx2_fma = -1;
static _Atomic int chosen = -1;

int rein_kernels_cpu_has_avx2_fma(void) {
    int v = atomic_load_explicit(&has_avx2_fma, memory_order_relaxed);
    if (v < 0) {
        v = detect_avx2_fma();
        atomic_store_explicit(&has_avx2_fma, v, memory_order_relaxed);
    }
    return v;
}

int rein_kernels_variant(void) {
    int v = atomic_load_explicit(&chosen, memory_order_relaxed);
    if (v < 0) {
        const char *forced = getenv("REIN_KERNELS");
        v = (forced && strcmp(forced, "avx2") == 0) ? rein_kernels_cpu_has_avx2_fma() : 0;
        atomic_store_explicit(&chosen, v, memory_order_relaxed);
    }
    return v;
}

void rein_gelu_forward_variant(int variant, float *out, const float *x, size_t n) {
    if (variant == 1 && rein_kernels_cpu_has_avx2_fma()) {
        gelu_forward_avx2(out, x, n);
    } else {
        gelu_forward_base(out, x, n);
    }
}

void rein_gelu_output_and_slope_variant(int variant, float *out, float *x, size_t n) {
    if (variant == 1 && rein_kernels_cpu_has_avx2_fma()) {
        gelu_output_and_slope_avx2(out, x, n);
    } else {
        gelu_output_and_slope_base(out, x, n);
    }
}

void rein_gelu_forward(float *out, const float *x, size_t n) {
    rein_gelu_forward_variant(rein_kernels_variant(), out, x, n);
}

void rein_gelu_output_and_slope(float *out, float *x, size_t n) {
    rein_gelu_output_and_slope_variant(rein_kernels_variant(), out, x, n);
}
