// Shared by OpenMindSpore's kernel sources (cpu_kernels.cpp, transformer_kernels.cpp); each source is its own
// shared library, so each gets its own thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

extern "C" int dnnl_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                          int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

static int g_threads = 1;
extern "C" void oms_set_threads(int n) { g_threads = n > 0 ? n : 1; }
extern "C" int oms_get_threads() { return g_threads; }

namespace {

// fn(begin, end) over [0, n) (images, rows or fixed tasks) in up to g_threads contiguous ranges. Threads are
// started per call (no pool that a fork could break) and inherit the caller's CPU affinity.
template <class F>
void parallel_for(int64_t n, F fn) {
  int64_t t = std::min<int64_t>(g_threads, n);
  if (t <= 1) {
    if (n > 0) fn(int64_t(0), n);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < t; ++w) pool.emplace_back(fn, n * w / t, n * (w + 1) / t);
  fn(int64_t(0), n / t);
  for (auto &th : pool) th.join();
}

template <class T>
T *in(void **params, int i) { return static_cast<T *>(params[i]); }

}  // namespace
