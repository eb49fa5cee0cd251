// OpenMindSpore's CPU kernels: MindSpore Custom "aot" operators for the CNN and MLP training step.
//
// float32, channels-last (NHWC) activations. Matrix products go through the sgemm of the oneDNN library
// that MindSpore itself ships (row-major dnnl_sgemm); im2col/col2im, bias, ReLU and max-pooling are
// plain loops. Each function has MindSpore's aot signature:
//   int f(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream,
//         void *extra)
// with params = inputs then outputs. Small integer settings (kernel, stride, ...) come as an int32 input.
//
// Work is split over g_threads threads (oms_set_threads) by images or rows; every reduction over the
// batch is summed per fixed-size chunk and the chunks are added in order, so results do not depend on
// the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "kernel_common.h"

namespace {

inline void relu_inplace(float *v, int64_t n) {
  for (int64_t j = 0; j < n; ++j) v[j] = v[j] > 0.0f ? v[j] : 0.0f;
}

// dy masked by y > 0 (the ReLU fused into the forward) into buf; returns the gradient to use
inline const float *relu_grad(const float *dy, const float *y, int64_t n, bool relu, float *buf) {
  if (!relu) return dy;
  for (int64_t j = 0; j < n; ++j) buf[j] = y[j] > 0.0f ? dy[j] : 0.0f;
  return buf;
}

struct ConvGeom {
  int64_t n, h, w, c, cout, k, s, p, ho, wo, K, M;  // K = k*k*c, M = ho*wo (per image)
  int64_t chunk, chunks;                              // images per chunk (~1 MB of columns), chunk count
};

// ws: the weight's shape [cout, c, k, k]
ConvGeom conv_geom(const int64_t *xs, const int64_t *ws, const int32_t *attr) {
  ConvGeom g;
  g.n = xs[0], g.h = xs[1], g.w = xs[2], g.c = xs[3];
  g.cout = ws[0], g.k = ws[2], g.K = g.k * g.k * g.c;
  g.s = attr[0], g.p = attr[1];
  g.ho = (g.h + 2 * g.p - g.k) / g.s + 1;
  g.wo = (g.w + 2 * g.p - g.k) / g.s + 1;
  g.M = g.ho * g.wo;
  g.chunk = std::min(g.n, std::max<int64_t>(1, (256 * 1024) / std::max<int64_t>(1, g.M * g.K)));
  g.chunks = (g.n + g.chunk - 1) / g.chunk;
  return g;
}

// weight [cout, c, k, k] <-> matrix [cout, K] with K ordered (kernel row, kernel col, channel)
void weight_to_matrix(const ConvGeom &g, const float *w, float *wm) {
  for (int64_t o = 0; o < g.cout; ++o)
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int64_t j = 0; j < g.k * g.k; ++j) wm[(o * g.k * g.k + j) * g.c + ci] = w[(o * g.c + ci) * g.k * g.k + j];
}

void matrix_to_weight(const ConvGeom &g, const float *wm, float *w) {
  for (int64_t o = 0; o < g.cout; ++o)
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int64_t j = 0; j < g.k * g.k; ++j) w[(o * g.c + ci) * g.k * g.k + j] = wm[(o * g.k * g.k + j) * g.c + ci];
}

// columns [imgs*M, K] of images [i0, i0+imgs), K ordered (kernel row, kernel col, channel)
void im2col(const ConvGeom &g, const float *x, int64_t i0, int64_t imgs, float *cols) {
  for (int64_t i = 0; i < imgs; ++i) {
    const float *xi = x + (i0 + i) * g.h * g.w * g.c;
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        float *row = cols + ((i * g.ho + oh) * g.wo + ow) * g.K;
        for (int64_t kr = 0; kr < g.k; ++kr) {
          const int64_t r = oh * g.s + kr - g.p;
          for (int64_t kc = 0; kc < g.k; ++kc) {
            const int64_t cc = ow * g.s + kc - g.p;
            float *dst = row + (kr * g.k + kc) * g.c;
            if (r < 0 || r >= g.h || cc < 0 || cc >= g.w)
              std::memset(dst, 0, g.c * sizeof(float));
            else
              std::memcpy(dst, xi + (r * g.w + cc) * g.c, g.c * sizeof(float));
          }
        }
      }
  }
}

// dx[images i0..] += col2im(cols)
void col2im_add(const ConvGeom &g, const float *cols, int64_t i0, int64_t imgs, float *dx) {
  for (int64_t i = 0; i < imgs; ++i) {
    float *xi = dx + (i0 + i) * g.h * g.w * g.c;
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const float *row = cols + ((i * g.ho + oh) * g.wo + ow) * g.K;
        for (int64_t kr = 0; kr < g.k; ++kr) {
          const int64_t r = oh * g.s + kr - g.p;
          if (r < 0 || r >= g.h) continue;
          for (int64_t kc = 0; kc < g.k; ++kc) {
            const int64_t cc = ow * g.s + kc - g.p;
            if (cc < 0 || cc >= g.w) continue;
            const float *src = row + (kr * g.k + kc) * g.c;
            float *dst = xi + (r * g.w + cc) * g.c;
            for (int64_t c = 0; c < g.c; ++c) dst[c] += src[c];
          }
        }
      }
  }
}

// out[r, :] = bias for rows [0, rows)
inline void fill_bias(float *out, const float *bias, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * cols, bias, cols * sizeof(float));
}

}  // namespace

// Optional trailing setting: attr[i] when the attr input has more than i values, else `dflt`
inline bool setting(const int32_t *attr, const int64_t *attr_shape, int64_t i, bool dflt) {
  return attr_shape[0] > i ? attr[i] != 0 : dflt;
}

// Convolution forward.
//   x [n,h,w,c], weight [cout,c,k,k], bias [cout], attr int32 [stride, pad, relu, need_dx(, need_dw)]
//   -> y [n,ho,wo,cout] (= relu(conv + bias) when relu)
extern "C" int oms_conv_fwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0), *bias = in<const float>(params, 2);
  const int32_t *attr = in<const int32_t>(params, 3);
  float *y = in<float>(params, 4);
  const ConvGeom g = conv_geom(shapes[0], shapes[1], attr);
  const bool relu = attr[2] != 0;
  std::vector<float> wmat(g.cout * g.K);
  weight_to_matrix(g, in<const float>(params, 1), wmat.data());
  const float *wm = wmat.data();
  parallel_for(g.chunks, [&](int64_t c0, int64_t c1) {
    std::vector<float> cols(g.chunk * g.M * g.K);
    for (int64_t ch = c0; ch < c1; ++ch) {
      const int64_t i0 = ch * g.chunk, rows = std::min(g.chunk, g.n - i0) * g.M;
      float *out = y + i0 * g.M * g.cout;
      fill_bias(out, bias, rows, g.cout);
      im2col(g, x, i0, rows / g.M, cols.data());
      dnnl_sgemm('N', 'T', rows, g.cout, g.K, 1.0f, cols.data(), g.K, wm, g.K, 1.0f, out, g.cout);
      if (relu) relu_inplace(out, rows * g.cout);
    }
  });
  return 0;
}

// Convolution backward.
//   x, weight, attr, y (forward output), dy -> dx [n,h,w,c] (zeros unless need_dx), dweight, dbias (zeros
//   when need_dw is 0: an input-only gradient, e.g. saliency maps; dx is the same either way)
extern "C" int oms_conv_bwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0);
  const int32_t *attr = in<const int32_t>(params, 2);
  const float *y = in<const float>(params, 3), *dy = in<const float>(params, 4);
  float *dx = in<float>(params, 5), *db = in<float>(params, 7);
  const ConvGeom g = conv_geom(shapes[0], shapes[1], attr);
  const bool relu = attr[2] != 0, need_dx = attr[3] != 0, need_dw = setting(attr, shapes[2], 4, true);
  if (!need_dw) {
    std::memset(in<float>(params, 6), 0, g.cout * g.K * sizeof(float));
    std::memset(db, 0, g.cout * sizeof(float));
  }
  if (!need_dw && !need_dx) {
    std::memset(dx, 0, g.n * g.h * g.w * g.c * sizeof(float));
    return 0;
  }
  std::vector<float> wmat(g.cout * g.K), dwmat(need_dw ? g.cout * g.K : 0);
  weight_to_matrix(g, in<const float>(params, 1), wmat.data());
  const float *wm = wmat.data();
  float *dw = dwmat.data();
  std::vector<float> pdw(need_dw ? g.chunks * g.cout * g.K : 0), pdb(need_dw ? g.chunks * g.cout : 0, 0.0f);
  std::memset(dx, 0, g.n * g.h * g.w * g.c * sizeof(float));
  parallel_for(g.chunks, [&](int64_t c0, int64_t c1) {
    std::vector<float> cols(need_dw ? g.chunk * g.M * g.K : 0), gbuf(relu ? g.chunk * g.M * g.cout : 0),
        dcols(need_dx ? g.chunk * g.M * g.K : 0);
    for (int64_t ch = c0; ch < c1; ++ch) {
      const int64_t i0 = ch * g.chunk, imgs = std::min(g.chunk, g.n - i0), rows = imgs * g.M;
      const float *gr = relu_grad(dy + i0 * g.M * g.cout, y + i0 * g.M * g.cout, rows * g.cout, relu, gbuf.data());
      if (need_dw) {  // per-chunk partial sums, added in chunk order below
        float *b = pdb.data() + ch * g.cout;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < g.cout; ++o) b[o] += gr[r * g.cout + o];
        im2col(g, x, i0, imgs, cols.data());
        dnnl_sgemm('T', 'N', g.cout, g.K, rows, 1.0f, gr, g.cout, cols.data(), g.K, 0.0f,
                   pdw.data() + ch * g.cout * g.K, g.K);
      }
      if (need_dx) {
        dnnl_sgemm('N', 'N', rows, g.K, g.cout, 1.0f, gr, g.cout, wm, g.K, 0.0f, dcols.data(), g.K);
        col2im_add(g, dcols.data(), i0, imgs, dx);
      }
    }
  });
  if (!need_dw) return 0;
  std::memcpy(dw, pdw.data(), g.cout * g.K * sizeof(float));
  std::memcpy(db, pdb.data(), g.cout * sizeof(float));
  for (int64_t ch = 1; ch < g.chunks; ++ch) {
    const float *s = pdw.data() + ch * g.cout * g.K;
    for (int64_t j = 0; j < g.cout * g.K; ++j) dw[j] += s[j];
    for (int64_t o = 0; o < g.cout; ++o) db[o] += pdb[ch * g.cout + o];
  }
  matrix_to_weight(g, dw, in<float>(params, 6));
  return 0;
}

// Dense layers split their products into fixed blocks of output units / input features (not one block per
// thread: oneDNN's sgemm may sum in a different order for a different shape), so every block is the same
// sgemm call whatever the thread count; each block reads only its own slice of the weight.
constexpr int64_t kDenseBlock = 512;

inline int64_t blocks(int64_t n) { return (n + kDenseBlock - 1) / kDenseBlock; }

// Dense forward: x [n,in], w [out,in], bias [out], attr int32 [relu, need_dx] -> y [n,out]
extern "C" int oms_dense_fwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0), *w = in<const float>(params, 1), *bias = in<const float>(params, 2);
  const int32_t *attr = in<const int32_t>(params, 3);
  float *y = in<float>(params, 4);
  const int64_t n = shapes[0][0], din = shapes[0][1], dout = shapes[1][0];
  fill_bias(y, bias, n, dout);
  parallel_for(blocks(dout), [&](int64_t b0, int64_t b1) {
    const int64_t o0 = b0 * kDenseBlock, o1 = std::min(dout, b1 * kDenseBlock);
    dnnl_sgemm('N', 'T', n, o1 - o0, din, 1.0f, x, din, w + o0 * din, din, 1.0f, y + o0, dout);
    if (attr[0])
      for (int64_t r = 0; r < n; ++r) relu_inplace(y + r * dout + o0, o1 - o0);
  });
  return 0;
}

// Dense backward: x, w, attr [relu, need_dx(, need_dw)], y, dy -> dx [n,in] (zeros unless need_dx), dw [out,in],
// db [out] (zeros when need_dw is 0)
extern "C" int oms_dense_bwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0), *w = in<const float>(params, 1);
  const int32_t *attr = in<const int32_t>(params, 2);
  const float *y = in<const float>(params, 3), *dy = in<const float>(params, 4);
  float *dx = in<float>(params, 5), *dw = in<float>(params, 6), *db = in<float>(params, 7);
  const int64_t n = shapes[0][0], din = shapes[0][1], dout = shapes[1][0];
  std::vector<float> gbuf(attr[0] ? n * dout : 0);
  const float *g = relu_grad(dy, y, n * dout, attr[0] != 0, gbuf.data());
  if (setting(attr, shapes[2], 2, true)) {
    parallel_for(blocks(dout), [&](int64_t b0, int64_t b1) {  // dw, db: blocks of output units
      const int64_t o0 = b0 * kDenseBlock, o1 = std::min(dout, b1 * kDenseBlock);
      dnnl_sgemm('T', 'N', o1 - o0, din, n, 1.0f, g + o0, dout, x, din, 0.0f, dw + o0 * din, din);
      for (int64_t o = o0; o < o1; ++o) db[o] = 0.0f;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t o = o0; o < o1; ++o) db[o] += g[r * dout + o];
    });
  } else {  // input-only gradient
    std::memset(dw, 0, dout * din * sizeof(float));
    std::memset(db, 0, dout * sizeof(float));
  }
  if (!attr[1]) {
    std::memset(dx, 0, n * din * sizeof(float));
    return 0;
  }
  parallel_for(blocks(din), [&](int64_t b0, int64_t b1) {  // dx: blocks of input features
    const int64_t c0 = b0 * kDenseBlock, c1 = std::min(din, b1 * kDenseBlock);
    dnnl_sgemm('N', 'N', n, c1 - c0, dout, 1.0f, g, dout, w + c0, din, 0.0f, dx + c0, din);
  });
  return 0;
}

// Max-pooling forward, no padding: x [n,h,w,c], attr int32 [k, stride] -> y [n,ho,wo,c], arg int32 [n,ho,wo,c]
// (arg: index of the first maximum in window order into the image's h*w*c values; NaN wins, like PyTorch)
extern "C" int oms_maxpool_fwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const float *x = in<const float>(params, 0);
  const int32_t *attr = in<const int32_t>(params, 1);
  float *y = in<float>(params, 2);
  int32_t *arg = in<int32_t>(params, 3);
  const int64_t n = shapes[0][0], h = shapes[0][1], w = shapes[0][2], c = shapes[0][3];
  const int64_t k = attr[0], s = attr[1], ho = (h - k) / s + 1, wo = (w - k) / s + 1;
  parallel_for(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float *xi = x + i * h * w * c;
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          float *yo = y + ((i * ho + oh) * wo + ow) * c;
          int32_t *ao = arg + ((i * ho + oh) * wo + ow) * c;
          for (int64_t kr = 0; kr < k; ++kr)
            for (int64_t kc = 0; kc < k; ++kc) {
              const int32_t off = static_cast<int32_t>(((oh * s + kr) * w + ow * s + kc) * c);
              const float *v = xi + off;
              if (kr == 0 && kc == 0) {
                std::memcpy(yo, v, c * sizeof(float));
                for (int64_t ch = 0; ch < c; ++ch) ao[ch] = off + static_cast<int32_t>(ch);
                continue;
              }
              for (int64_t ch = 0; ch < c; ++ch)
                if ((v[ch] > yo[ch] || v[ch] != v[ch]) && yo[ch] == yo[ch]) {
                  yo[ch] = v[ch];
                  ao[ch] = off + static_cast<int32_t>(ch);
                }
            }
        }
    }
  });
  return 0;
}

// Max-pooling backward: x (for its shape), arg, dy -> dx [n,h,w,c]
extern "C" int oms_maxpool_bwd(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const int32_t *arg = in<const int32_t>(params, 1);
  const float *dy = in<const float>(params, 2);
  float *dx = in<float>(params, 3);
  const int64_t n = shapes[0][0], img = shapes[0][1] * shapes[0][2] * shapes[0][3];
  const int64_t per = shapes[2][1] * shapes[2][2] * shapes[2][3];
  parallel_for(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float *di = dx + i * img;
      std::memset(di, 0, img * sizeof(float));
      const int32_t *ai = arg + i * per;
      const float *gi = dy + i * per;
      for (int64_t j = 0; j < per; ++j) di[ai[j]] += gi[j];
    }
  });
  return 0;
}

// 4-D permutes between NHWC and NCHW (each one's gradient is the other):
//   oms_to_nchw: x [n,h,w,c] -> y [n,c,h,w];  oms_to_nhwc: x [n,c,h,w] -> y [n,h,w,c]
static void permute(const float *x, float *y, int64_t n, int64_t a, int64_t b) {  // per image [a,b] -> [b,a]
  parallel_for(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float *xi = x + i * a * b;
      float *yi = y + i * a * b;
      for (int64_t r = 0; r < a; ++r)
        for (int64_t c = 0; c < b; ++c) yi[c * a + r] = xi[r * b + c];
    }
  });
}

extern "C" int oms_to_nchw(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const int64_t *s = shapes[0];
  permute(in<const float>(params, 0), in<float>(params, 1), s[0], s[1] * s[2], s[3]);
  return 0;
}

extern "C" int oms_to_nhwc(int, void **params, int *, int64_t **shapes, const char **, void *, void *) {
  const int64_t *s = shapes[0];
  permute(in<const float>(params, 0), in<float>(params, 1), s[0], s[1], s[2] * s[3]);
  return 0;
}

// One Adam/AdamW step of a float32 array (not a MindSpore operator: called on host arrays by
// train/optim.py). The operations and their order are those of the numpy formulation there, and the
// library is compiled without FMA contraction, so the results are bitwise the same, in one pass:
//   g' = g + wd*p (L2)           m' = m*b1 + g'*(1-b1)         v' = v*b2 + (g'*g')*(1-b2)
//   p' = (decoupled ? p*decay : p) - step_size * (m' / (sqrt(v')/c2 + eps))
namespace {
struct AdamArgs {
  float b1, b2, one_b1, one_b2, wd, decay, step_size, c2, eps;
};

template <bool L2, bool DECOUPLED>
void adam_block(const float *__restrict p, const float *__restrict g, const float *__restrict m,
                const float *__restrict v, float *__restrict p_out, float *__restrict m_out, float *__restrict v_out,
                int64_t n, const AdamArgs a) {
  for (int64_t j = 0; j < n; ++j) {  // vectorised (no aliasing, no branches)
    const float gj = L2 ? g[j] + a.wd * p[j] : g[j];
    const float mj = m[j] * a.b1 + gj * a.one_b1;
    const float vj = v[j] * a.b2 + (gj * gj) * a.one_b2;
    const float denom = std::sqrt(vj) / a.c2 + a.eps;
    m_out[j] = mj;
    v_out[j] = vj;
    p_out[j] = (DECOUPLED ? p[j] * a.decay : p[j]) - a.step_size * (mj / denom);
  }
}
}  // namespace

extern "C" void oms_adam(const float *p, const float *g, const float *m, const float *v, float *p_out, float *m_out,
                         float *v_out, int64_t n, float b1, float b2, float one_b1, float one_b2, float wd, int l2,
                         float decay, int decoupled, float step_size, float c2, float eps) {
  const AdamArgs a{b1, b2, one_b1, one_b2, wd, decay, step_size, c2, eps};
  const auto fn = l2 ? (decoupled ? adam_block<true, true> : adam_block<true, false>)
                     : (decoupled ? adam_block<false, true> : adam_block<false, false>);
  constexpr int64_t kBlock = 1 << 14;
  parallel_for((n + kBlock - 1) / kBlock, [&](int64_t b0, int64_t b1_) {
    const int64_t j0 = b0 * kBlock, j1 = std::min(n, b1_ * kBlock);
    fn(p + j0, g + j0, m + j0, v + j0, p_out + j0, m_out + j0, v_out + j0, j1 - j0, a);
  });
}
