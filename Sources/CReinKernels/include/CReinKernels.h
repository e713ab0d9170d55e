#ifndef REIN_KERNELS_H
#define REIN_KERNELS_H

#include <stddef.h>

/// The engine's elementwise kernels that dominate its time outside the matrix products, compiled
/// twice: for the x86-64 baseline (SSE2) and for AVX2 with FMA. The first call picks the baseline,
/// or the AVX2 build with REIN_KERNELS=avx2 on a CPU that has AVX2 and FMA, for the whole process,
/// so results are bit-identical within a process and from run to run on one machine. (The AVX2
/// build rounds differently, and the default reference recipe reached 54% instead of 67% with it on
/// an AMD EPYC Zen 3: it stays opt-in until the recipe is robust to it.)

/// Which build runs: 0 baseline, 1 AVX2+FMA.
int rein_kernels_variant(void);

/// Whether this CPU can run the AVX2+FMA build (whatever REIN_KERNELS says).
int rein_kernels_cpu_has_avx2_fma(void);

/// `out[i] = x[i] · Φ(x[i])` (exact-erf GELU); `out` may be `x`.
void rein_gelu_forward(float *out, const float *x, size_t n);

/// For the backward pass: `out[i] = x[i] · Φ(x[i])` (bit-identical to rein_gelu_forward's) and, in
/// place of x, the GELU's slope `Φ(x) + x·φ(x)`.
void rein_gelu_output_and_slope(float *out, float *x, size_t n);

/// The same kernels with the build named (0 baseline, 1 AVX2+FMA; 1 falls back to 0 on a CPU
/// without AVX2 and FMA): for tests that compare the two.
void rein_gelu_forward_variant(int variant, float *out, const float *x, size_t n);
void rein_gelu_output_and_slope_variant(int variant, float *out, float *x, size_t n);

#endif
