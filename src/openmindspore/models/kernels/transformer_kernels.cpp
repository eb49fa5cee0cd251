// OpenMindSpore's CPU kernels for vision transformers (ViT, YOLOS): MindSpore Custom "aot" operators.
//
// float32, row-major. Matrix products go through the sgemm of the oneDNN library MindSpore ships
// (row-major dnnl_sgemm); GELU, LayerNorm and the softmax are plain loops written so that g++ vectorises
// them (a branch-free exp, no libm calls in the hot loops). Each function has MindSpore's aot signature:
//   int f(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream,
//         void *extra)
// with params = inputs then outputs.
//
// Work is split over g_threads threads (oms_set_threads) into a FIXED set of tasks (row blocks, column
// blocks, (batch, head) pairs) whose shapes do not depend on the thread count; every reduction is summed
// per task in a fixed order, so results are bitwise the same for any thread count.
// no-trapping-math lets g++ vectorise the clamps and floor of the exp below (it changes no result: the
// code never reads floating-point exception flags)
#pragma GCC optimize("no-trapping-math")
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "kernel_common.h"

namespace {

// exp(x) for x in float range, branch-free (vectorises): Cody-Waite reduction and Cephes' expf polynomial
// (~1 ulp); inputs are clamped to [-87.3, 88.3] (results below 2^-126 become ~1e-38 instead of 0).
inline float fast_exp(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// erf(x): Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the formula PyTorch's vectorised CPU erf uses.
inline float fast_erf(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float r = 1.061405429f;
  r = r * t - 1.453152027f;
  r = r * t + 1.421413741f;
  r = r * t - 0.284496736f;
  r = r * t + 0.254829592f;
  const float y = 1.0f - r * t * fast_exp(-a * a);
  return std::copysign(y, x);
}

// Sum and maximum of v[0..n) with 16 independent partial results (lane k takes v[k], v[k+16], ...) combined in
// a fixed order: vectorises and breaks the add-latency chain, and the order never depends on threads.
constexpr int64_t kLanes = 16;

inline float lane_sum(const float *v, int64_t n) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) acc[k] += v[j + k];
  for (int64_t k = 0; j + k < n; ++k) acc[k] += v[j + k];
  float s = 0.0f;
  for (int64_t k = 0; k < kLanes; ++k) s += acc[k];
  return s;
}

inline float lane_max(const float *v, int64_t n) {
  float acc[kLanes];
  for (int64_t k = 0; k < kLanes; ++k) acc[k] = v[0];
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) acc[k] = v[j + k] > acc[k] ? v[j + k] : acc[k];
  for (int64_t k = 0; j + k < n; ++k) acc[k] = v[j + k] > acc[k] ? v[j + k] : acc[k];
  float m = acc[0];
  for (int64_t k = 1; k < kLanes; ++k) m = acc[k] > m ? acc[k] : m;
  return m;
}

constexpr float kSqrt1_2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr int64_t kRowBlock = 128;   // rows (tokens) per LayerNorm task
constexpr int64_t kElemBlock = 1 << 14;
constexpr int64_t kQueryBlock = 256;  // attention: query rows per task

inline int64_t nblocks(int64_t n, int64_t b) { return (n + b - 1) / b; }

// Matrix-product tasks: C [M, N] (+)= A [M, K] B [K, N] split into parts x parts EQUAL tiles (balanced for any
// thread count dividing their number) as large as possible: each task is one sgemm, which packs its A and B
// tiles, so small tiles pay packing again and again (measured single-threaded at ViT-B's shapes: 128 x 512
// tiles ran at 85-100 GFLOP/s, ~400 x 400 and larger at 102-110). A dimension is cut into a power of two of
// parts, each >= kMinTile long, at most kMaxParts; columns (the vectorised dimension) on multiples of 16.
// The tiling is a function of the shape only, never of the thread count.
constexpr int64_t kMinTile = 384;
constexpr int64_t kMaxParts = 8;
constexpr int64_t kMinTasks = 4;  // weight gradients: cut the sum when the tiles are fewer

inline int64_t parts(int64_t n) {
  int64_t p = 1;
  while (p < kMaxParts && n / (2 * p) >= kMinTile) p *= 2;
  return p;
}

struct Grid {
  int64_t m, n, pm, pn;  // pm x pn tiles
  int64_t tasks() const { return pm * pn; }
  int64_t row(int64_t i) const { return m * i / pm; }  // tile row boundaries: exact equal split
  int64_t col(int64_t j) const {                          // on multiples of 16 where the split allows it
    if (j == pn) return n;
    const int64_t c = n * j / pn;
    return n >= 16 * pn ? c / 16 * 16 : c;
  }
};

inline Grid grid(int64_t m, int64_t n) { return Grid{m, n, parts(m), parts(n)}; }

}  // namespace

// ---------------------------------------------------------------- GELU (exact erf form)
// oms_gelu_fwd: x -> y = 0.5 x (1 + erf(x / sqrt 2)), any shape
extern "C" int oms_gelu_fwd(int, void **params, int *ndims, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0);
  float *y = in<float>(params, 1);
  int64_t n = 1;
  for (int i = 0; i < ndims[0]; ++i) n *= shapes[0][i];
  parallel_for(nblocks(n, kElemBlock), [&](int64_t b0, int64_t b1) {
    const int64_t j1 = std::min(n, b1 * kElemBlock);
    for (int64_t j = b0 * kElemBlock; j < j1; ++j) y[j] = 0.5f * x[j] * (1.0f + fast_erf(x[j] * kSqrt1_2));
  });
  return 0;
}

// oms_gelu_bwd: x, dy -> dx = dy * (0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi))
extern "C" int oms_gelu_bwd(int, void **params, int *ndims, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0), *dy = in<const float>(params, 1);
  float *dx = in<float>(params, 2);
  int64_t n = 1;
  for (int i = 0; i < ndims[0]; ++i) n *= shapes[0][i];
  parallel_for(nblocks(n, kElemBlock), [&](int64_t b0, int64_t b1) {
    const int64_t j1 = std::min(n, b1 * kElemBlock);
    for (int64_t j = b0 * kElemBlock; j < j1; ++j) {
      const float v = x[j];
      const float cdf = 0.5f * (1.0f + fast_erf(v * kSqrt1_2));
      dx[j] = dy[j] * (cdf + v * kInvSqrt2Pi * fast_exp(-0.5f * v * v));
    }
  });
  return 0;
}

// ---------------------------------------------------------------- LayerNorm over the last axis
// oms_layernorm_fwd: x [R, D], w [D], b [D], eps float32 [1] -> y [R, D], mean [R], rstd [R]
extern "C" int oms_layernorm_fwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0), *w = in<const float>(params, 1), *b = in<const float>(params, 2);
  const float eps = in<const float>(params, 3)[0];
  float *y = in<float>(params, 4), *mean = in<float>(params, 5), *rstd = in<float>(params, 6);
  const int64_t rows = shapes[0][0], d = shapes[0][1];
  parallel_for(nblocks(rows, kRowBlock), [&](int64_t b0, int64_t b1) {
    for (int64_t r = b0 * kRowBlock; r < std::min(rows, b1 * kRowBlock); ++r) {
      const float *xr = x + r * d;
      float s = 0.0f;
      for (int64_t j = 0; j < d; ++j) s += xr[j];
      const float mu = s / static_cast<float>(d);
      float v = 0.0f;
      for (int64_t j = 0; j < d; ++j) v += (xr[j] - mu) * (xr[j] - mu);
      const float rs = 1.0f / std::sqrt(v / static_cast<float>(d) + eps);
      float *yr = y + r * d;
      for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
      mean[r] = mu;
      rstd[r] = rs;
    }
  });
  return 0;
}

// oms_layernorm_bwd: x [R, D], w [D], mean [R], rstd [R], dy [R, D] -> dx [R, D], dw [D], db [D]
//   dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy w; dw = sum_r dy xhat; db = sum_r dy
extern "C" int oms_layernorm_bwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0), *w = in<const float>(params, 1);
  const float *mean = in<const float>(params, 2), *rstd = in<const float>(params, 3), *dy = in<const float>(params, 4);
  float *dx = in<float>(params, 5), *dw = in<float>(params, 6), *db = in<float>(params, 7);
  const int64_t rows = shapes[0][0], d = shapes[0][1], nb = nblocks(rows, kRowBlock);
  std::vector<float> pdw(nb * d, 0.0f), pdb(nb * d, 0.0f);  // per-block partial sums, added in order
  parallel_for(nb, [&](int64_t b0, int64_t b1) {
    std::vector<float> g(d), xh(d);
    for (int64_t blk = b0; blk < b1; ++blk) {
      float *bw = pdw.data() + blk * d, *bb = pdb.data() + blk * d;
      for (int64_t r = blk * kRowBlock; r < std::min(rows, (blk + 1) * kRowBlock); ++r) {
        const float *xr = x + r * d, *dyr = dy + r * d;
        const float mu = mean[r], rs = rstd[r];
        float sg = 0.0f, sgx = 0.0f;
        for (int64_t j = 0; j < d; ++j) {
          xh[j] = (xr[j] - mu) * rs;
          g[j] = dyr[j] * w[j];
          sg += g[j];
          sgx += g[j] * xh[j];
          bw[j] += dyr[j] * xh[j];
          bb[j] += dyr[j];
        }
        const float mg = sg / static_cast<float>(d), mgx = sgx / static_cast<float>(d);
        float *dxr = dx + r * d;
        for (int64_t j = 0; j < d; ++j) dxr[j] = rs * (g[j] - mg - xh[j] * mgx);
      }
    }
  });
  std::memcpy(dw, pdw.data(), d * sizeof(float));
  std::memcpy(db, pdb.data(), d * sizeof(float));
  for (int64_t blk = 1; blk < nb; ++blk)
    for (int64_t j = 0; j < d; ++j) {
      dw[j] += pdw[blk * d + j];
      db[j] += pdb[blk * d + j];
    }
  return 0;
}

// ---------------------------------------------------------------- Linear y = x w^T + b
// y = x w^T + b (+ res) (then GELU when gelu): x [R, in], w [out, in], b [out], res [R, out] or null; tasks: the
// Grid of [R, out]; the residual and GELU are applied to each tile while it is in cache (no extra pass)
static void linear_fwd(const float *x, const float *w, const float *b, const float *res, float *y, int64_t rows,
                       int64_t din, int64_t dout, bool gelu) {
  const Grid g = grid(rows, dout);
  parallel_for(g.tasks(), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = g.row(t / g.pn), r1 = g.row(t / g.pn + 1);
      const int64_t o0 = g.col(t % g.pn), o1 = g.col(t % g.pn + 1);
      for (int64_t r = r0; r < r1; ++r) {
        float *yr = y + r * dout;
        if (res == nullptr) {
          std::memcpy(yr + o0, b + o0, (o1 - o0) * sizeof(float));
        } else {
          const float *rr = res + r * dout;
          for (int64_t o = o0; o < o1; ++o) yr[o] = rr[o] + b[o];
        }
      }
      dnnl_sgemm('N', 'T', r1 - r0, o1 - o0, din, 1.0f, x + r0 * din, din, w + o0 * din, din, 1.0f, y + r0 * dout + o0,
                 dout);
      if (gelu)
        for (int64_t r = r0; r < r1; ++r) {
          float *yr = y + r * dout;
          for (int64_t o = o0; o < o1; ++o) yr[o] = 0.5f * yr[o] * (1.0f + fast_erf(yr[o] * kSqrt1_2));
        }
    }
  });
}

// oms_linear_fwd: x [R, in], w [out, in], b [out] -> y [R, out]
extern "C" int oms_linear_fwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  linear_fwd(in<const float>(params, 0), in<const float>(params, 1), in<const float>(params, 2), nullptr,
             in<float>(params, 3), shapes[0][0], shapes[0][1], shapes[1][0], false);
  return 0;
}

// oms_linear_res_fwd: x [R, in], w [out, in], b [out], res [R, out] -> y = res + x w^T + b [R, out] (a residual
// connection fused into the product; the gradient of res is dy)
extern "C" int oms_linear_res_fwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  linear_fwd(in<const float>(params, 0), in<const float>(params, 1), in<const float>(params, 2),
             in<const float>(params, 3), in<float>(params, 4), shapes[0][0], shapes[0][1], shapes[1][0], false);
  return 0;
}

// oms_linear_gelu_fwd: x [R, in], w [out, in], b [out] -> y = GELU(x w^T + b) [R, out] (inference: the
// pre-activation a backward needs is not kept)
extern "C" int oms_linear_gelu_fwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  linear_fwd(in<const float>(params, 0), in<const float>(params, 1), in<const float>(params, 2), nullptr,
             in<float>(params, 3), shapes[0][0], shapes[0][1], shapes[1][0], true);
  return 0;
}

// oms_linear_bwd: x [R, in], w [out, in], dy [R, out] -> dx [R, in], dw [out, in], db [out]
extern "C" int oms_linear_bwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0), *w = in<const float>(params, 1), *dy = in<const float>(params, 2);
  float *dx = in<float>(params, 3), *dw = in<float>(params, 4), *db = in<float>(params, 5);
  const int64_t rows = shapes[0][0], din = shapes[0][1], dout = shapes[1][0];
  const Grid gx = grid(rows, din), gw = grid(dout, din);
  parallel_for(gx.tasks(), [&](int64_t t0, int64_t t1) {  // dx = dy w: the Grid of [R, in]
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = gx.row(t / gx.pn), r1 = gx.row(t / gx.pn + 1);
      const int64_t c0 = gx.col(t % gx.pn), c1 = gx.col(t % gx.pn + 1);
      dnnl_sgemm('N', 'N', r1 - r0, c1 - c0, dout, 1.0f, dy + r0 * dout, dout, w + c0, din, 0.0f, dx + r0 * din + c0,
                 din);
    }
  });
  // dw = dy^T x: the Grid of [out, in] and, when it has fewer than kMinTasks tiles (a small layer: YOLOS-tiny's
  // 192 x 192 would be one single-threaded task), the rows (the sum) cut into ks equal parts of >= kMinTile rows:
  // part 0 goes into dw, part i > 0 into a buffer; the buffers are added in part order (a function of the shape)
  int64_t ks = 1;
  while (gw.tasks() * ks * 2 <= kMinTasks && rows / (2 * ks) >= kMinTile) ks *= 2;
  std::vector<float> extra((ks - 1) * dout * din);
  parallel_for(gw.tasks() * ks, [&](int64_t t0, int64_t t1) {
    for (int64_t u = t0; u < t1; ++u) {
      const int64_t t = u / ks, kp = u % ks, k0 = rows * kp / ks, k1 = rows * (kp + 1) / ks;
      const int64_t o0 = gw.row(t / gw.pn), o1 = gw.row(t / gw.pn + 1);
      const int64_t c0 = gw.col(t % gw.pn), c1 = gw.col(t % gw.pn + 1);
      float *dst = kp == 0 ? dw : extra.data() + (kp - 1) * dout * din;
      dnnl_sgemm('T', 'N', o1 - o0, c1 - c0, k1 - k0, 1.0f, dy + k0 * dout + o0, dout, x + k0 * din + c0, din, 0.0f,
                 dst + o0 * din + c0, din);
      if (kp == 0 && t % gw.pn == 0) {
        for (int64_t o = o0; o < o1; ++o) db[o] = 0.0f;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = o0; o < o1; ++o) db[o] += dy[r * dout + o];
      }
    }
  });
  if (ks > 1)
    parallel_for(dout, [&](int64_t o0, int64_t o1) {
      for (int64_t kp = 1; kp < ks; ++kp) {
        const float *e = extra.data() + (kp - 1) * dout * din;
        for (int64_t i = o0 * din; i < o1 * din; ++i) dw[i] += e[i];
      }
    });
  return 0;
}

// ---------------------------------------------------------------- softmax attention
// q, k, v [B, N, D] (head h in columns h*hd..), attr int32 [heads], scale float32 [1]
//   -> ctx [B, N, D] = per head softmax(scale q k^T) v, lse [B, H, N] (row log-sum-exp, for the backward)
// Tasks: (batch, head, 256-query block); each computes its scores [256, N], exp, (exp) v, and normalises its
// rows of ctx by the row sums.
extern "C" int oms_attention_fwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *qa = in<const float>(params, 0), *ka = in<const float>(params, 1), *va = in<const float>(params, 2);
  const int64_t heads = in<const int32_t>(params, 3)[0];
  const float scale = in<const float>(params, 4)[0];
  float *ctx = in<float>(params, 5), *lse = in<float>(params, 6);
  const int64_t bsz = shapes[0][0], n = shapes[0][1], d = shapes[0][2], hd = d / heads;
  const int64_t qb = nblocks(n, kQueryBlock);
  parallel_for(bsz * heads * qb, [&](int64_t t0, int64_t t1) {
    std::vector<float> s(kQueryBlock * n), inv(kQueryBlock);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bh = t / qb, b = bh / heads, h = bh % heads;
      const int64_t r0 = (t % qb) * kQueryBlock, m = std::min(n, r0 + kQueryBlock) - r0;
      const int64_t off = b * n * d + h * hd;
      const float *q = qa + off + r0 * d, *k = ka + off, *v = va + off;
      dnnl_sgemm('N', 'T', m, n, hd, scale, q, d, k, d, 0.0f, s.data(), n);
      float *l = lse + bh * n + r0;
      for (int64_t i = 0; i < m; ++i) {
        float *row = s.data() + i * n;
        const float mx = lane_max(row, n);
        for (int64_t j = 0; j < n; ++j) row[j] = fast_exp(row[j] - mx);  // vectorised
        const float sum = lane_sum(row, n);
        inv[i] = 1.0f / sum;
        l[i] = mx + std::log(sum);
      }
      float *c = ctx + off + r0 * d;
      dnnl_sgemm('N', 'N', m, hd, n, 1.0f, s.data(), n, v, d, 0.0f, c, d);
      for (int64_t i = 0; i < m; ++i)  // normalise the m x hd result, not the m x N probabilities
        for (int64_t j = 0; j < hd; ++j) c[i * d + j] *= inv[i];
    }
  });
  return 0;
}

// oms_attention_bwd: q, k, v, ctx, lse, dctx, attr, scale -> dq, dk, dv [B, N, D]
// Tasks: (batch, head, 256-query block), as in the forward (a model with few heads, say YOLOS-tiny's 3 at batch 1,
// would otherwise leave a thread idle). Each task writes its rows of dQ and its block's terms of dK and dV: block 0
// into dK, dV themselves, block i > 0 into a buffer of its own; the buffers are then added in block order (a fixed
// order: bitwise the same for any thread count).
extern "C" int oms_attention_bwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *qa = in<const float>(params, 0), *ka = in<const float>(params, 1), *va = in<const float>(params, 2);
  const float *ctx = in<const float>(params, 3), *lse = in<const float>(params, 4), *dctx = in<const float>(params, 5);
  const int64_t heads = in<const int32_t>(params, 6)[0];
  const float scale = in<const float>(params, 7)[0];
  float *dqa = in<float>(params, 8), *dka = in<float>(params, 9), *dva = in<float>(params, 10);
  const int64_t bsz = shapes[0][0], n = shapes[0][1], d = shapes[0][2], hd = d / heads;
  const int64_t qb = nblocks(n, kQueryBlock), nbh = bsz * heads, part = n * hd;
  std::vector<float> extra(qb > 1 ? nbh * (qb - 1) * 2 * part : 0);  // [bh][block-1][dk | dv][n, hd]
  parallel_for(nbh * qb, [&](int64_t t0, int64_t t1) {
    std::vector<float> p(kQueryBlock * n), dp(kQueryBlock * n);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bh = t / qb, blk = t % qb, b = bh / heads, h = bh % heads, off = b * n * d + h * hd;
      const float *k = ka + off, *v = va + off;
      float *dk = dka + off, *dv = dva + off;  // block 0: the result itself (row stride d)
      int64_t ld = d;
      if (blk > 0) {
        dk = extra.data() + ((bh * (qb - 1) + blk - 1) * 2) * part;
        dv = dk + part;
        ld = hd;
      }
      const int64_t r0 = blk * kQueryBlock, m = std::min(n, r0 + kQueryBlock) - r0;
      const float *q = qa + off + r0 * d, *o = ctx + off + r0 * d, *dout = dctx + off + r0 * d;
      const float *l = lse + bh * n + r0;
      dnnl_sgemm('N', 'T', m, n, hd, scale, q, d, k, d, 0.0f, p.data(), n);
      for (int64_t i = 0; i < m; ++i) {
        float *row = p.data() + i * n;
        for (int64_t j = 0; j < n; ++j) row[j] = fast_exp(row[j] - l[i]);
      }
      dnnl_sgemm('T', 'N', n, hd, m, 1.0f, p.data(), n, dout, d, 0.0f, dv, ld);  // dV (this block's) = P^T dO
      dnnl_sgemm('N', 'T', m, n, hd, 1.0f, dout, d, v, d, 0.0f, dp.data(), n);   // dP = dO V^T
      for (int64_t i = 0; i < m; ++i) {                                           // dS = P (dP - <dO, O>)
        float di = 0.0f;
        for (int64_t j = 0; j < hd; ++j) di += dout[i * d + j] * o[i * d + j];
        float *pr = p.data() + i * n, *dr = dp.data() + i * n;
        for (int64_t j = 0; j < n; ++j) dr[j] = pr[j] * (dr[j] - di);
      }
      dnnl_sgemm('N', 'N', m, hd, n, scale, dp.data(), n, k, d, 0.0f, dqa + off + r0 * d, d);  // dQ
      dnnl_sgemm('T', 'N', n, hd, m, scale, dp.data(), n, q, d, 0.0f, dk, ld);                 // dK (this block's)
    }
  });
  if (qb > 1)  // dK, dV += the other blocks' terms, in block order; tasks: (batch, head, 256-key-row block)
    parallel_for(nbh * qb, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t bh = t / qb, b = bh / heads, h = bh % heads, off = b * n * d + h * hd;
        const int64_t r0 = (t % qb) * kQueryBlock, r1 = std::min(n, r0 + kQueryBlock);
        for (int64_t blk = 1; blk < qb; ++blk) {
          const float *ek = extra.data() + ((bh * (qb - 1) + blk - 1) * 2) * part, *ev = ek + part;
          for (int64_t r = r0; r < r1; ++r)
            for (int64_t j = 0; j < hd; ++j) {
              dka[off + r * d + j] += ek[r * hd + j];
              dva[off + r * d + j] += ev[r * hd + j];
            }
        }
      }
    });
  return 0;
}

// ---------------------------------------------------------------- non-overlapping patches (the patch embedding)
// oms_patchify: x [B, C, H, W], attr int32 [p] -> cols [B * (H/p) * (W/p), C*p*p] (row-major patches; features
// ordered (channel, row, col) like a conv weight [D, C, p, p]; trailing rows/cols that fill no patch dropped)
extern "C" int oms_patchify(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0);
  const int64_t p = in<const int32_t>(params, 1)[0];
  float *cols = in<float>(params, 2);
  const int64_t bsz = shapes[0][0], c = shapes[0][1], h = shapes[0][2], w = shapes[0][3], gh = h / p, gw = w / p;
  parallel_for(bsz * gh, [&](int64_t t0, int64_t t1) {  // tasks: one row of patches
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / gh, i = t % gh;
      for (int64_t j = 0; j < gw; ++j) {
        float *dst = cols + (t * gw + j) * c * p * p;
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t r = 0; r < p; ++r)
            std::memcpy(dst + (ch * p + r) * p, x + ((b * c + ch) * h + i * p + r) * w + j * p, p * sizeof(float));
      }
    }
  });
  return 0;
}

// oms_unpatchify (the gradient of oms_patchify): dcols, x (for its shape), attr -> dx [B, C, H, W] (0 where dropped)
extern "C" int oms_unpatchify(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *cols = in<const float>(params, 0);
  const int64_t p = in<const int32_t>(params, 2)[0];
  float *dx = in<float>(params, 3);
  const int64_t bsz = shapes[1][0], c = shapes[1][1], h = shapes[1][2], w = shapes[1][3], gh = h / p, gw = w / p;
  std::memset(dx, 0, bsz * c * h * w * sizeof(float));
  parallel_for(bsz * gh, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / gh, i = t % gh;
      for (int64_t j = 0; j < gw; ++j) {
        const float *src = cols + (t * gw + j) * c * p * p;
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t r = 0; r < p; ++r)
            std::memcpy(dx + ((b * c + ch) * h + i * p + r) * w + j * p, src + (ch * p + r) * p, p * sizeof(float));
      }
    }
  });
  return 0;
}
