// The probe child (cpu.h): rates the CPU backend variants, or runs one variant's
// matrix kernels with every buffer type it offers and checks the results against a
// reference computed in plain C++. Runs in a process of its own, started by cpu.cpp,
// before main(); it prints its answer and exits.
#include <dirent.h>
#include <dlfcn.h>
#include <ggml-backend.h>
#include <ggml.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/cpu_probe.h"

namespace modelseal::engine {

namespace {

void Quiet(ggml_log_level, const char*, void*) {}

int Rate(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    std::printf("cannot read %s\n", dir.c_str());
    return 2;
  }
  std::vector<std::string> paths;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind("libggml-cpu-", 0) == 0 && name.size() > 15 &&
        name.compare(name.size() - 3, 3, ".so") == 0) {
      paths.push_back(dir + "/" + name);
    }
  }
  closedir(d);
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    int score = 0;
    // The score function is built without the variant's instruction set flags, so it
    // runs on any x86-64 (it only reads CPUID).
    if (void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      using ScoreFn = int (*)();
      if (auto fn = reinterpret_cast<ScoreFn>(dlsym(h, "ggml_backend_score"))) score = fn();
      dlclose(h);
    }
    std::printf("variant %d %s\n", score, p.c_str());
  }
  return 0;
}

uint64_t Next(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float Uniform(uint64_t& s) {  // [-1, 1)
  return static_cast<float>(static_cast<double>(Next(s) >> 11) * 0x1.0p-52 - 1.0);
}

struct CtxFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
struct BufFree {
  void operator()(ggml_backend_buffer* b) const { ggml_backend_buffer_free(b); }
};

// W (type, K x M) times X (f32, K x N) with W in `buft`. Returns "" when the result
// matches the reference, "skip" when the buffer type does not take this product, or
// what was wrong.
std::string CheckMulMat(ggml_backend_t backend, ggml_backend_dev_t dev,
                        ggml_backend_buffer_type_t buft, ggml_type type, int n) {
  constexpr int K = 256, M = 64;
  const ggml_init_params wp{ggml_tensor_overhead() * 2, nullptr, true};
  std::unique_ptr<ggml_context, CtxFree> wctx(ggml_init(wp));
  ggml_tensor* w = ggml_new_tensor_2d(wctx.get(), type, K, M);
  std::unique_ptr<ggml_backend_buffer, BufFree> wbuf(
      ggml_backend_alloc_ctx_tensors_from_buft(wctx.get(), buft));
  if (!wbuf) return "skip";

  const ggml_init_params xp{ggml_tensor_overhead() * 4 + ggml_graph_overhead(), nullptr, true};
  std::unique_ptr<ggml_context, CtxFree> xctx(ggml_init(xp));
  ggml_tensor* x = ggml_new_tensor_2d(xctx.get(), GGML_TYPE_F32, K, n);
  ggml_tensor* y = ggml_mul_mat(xctx.get(), w, x);
  if (!ggml_backend_dev_supports_op(dev, y)) return "skip";
  std::unique_ptr<ggml_backend_buffer, BufFree> xbuf(
      ggml_backend_alloc_ctx_tensors_from_buft(xctx.get(), ggml_backend_dev_buffer_type(dev)));
  if (!xbuf) return "cannot allocate the activations";

  uint64_t seed = 0x5eed0000u + static_cast<uint64_t>(type) * 131 + static_cast<uint64_t>(n);
  std::vector<float> wf(static_cast<size_t>(K) * M), xf(static_cast<size_t>(K) * n);
  for (auto& v : wf) v = Uniform(seed);
  for (auto& v : xf) v = Uniform(seed);
  std::vector<uint8_t> wq(ggml_row_size(type, K) * M);
  if (type == GGML_TYPE_F16) {
    ggml_fp32_to_fp16_row(wf.data(), reinterpret_cast<ggml_fp16_t*>(wq.data()), K * M);
  } else {
    ggml_quantize_chunk(type, wf.data(), wq.data(), 0, M, K, nullptr);
  }
  ggml_backend_tensor_set(w, wq.data(), 0, wq.size());
  ggml_backend_tensor_set(x, xf.data(), 0, xf.size() * sizeof(float));

  ggml_cgraph* gf = ggml_new_graph(xctx.get());
  ggml_build_forward_expand(gf, y);
  if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) return "compute failed";
  std::vector<float> got(static_cast<size_t>(M) * n);
  ggml_backend_tensor_get(y, got.data(), 0, got.size() * sizeof(float));

  // Reference: the weights as stored (dequantised), in double precision.
  std::vector<float> wd(static_cast<size_t>(K) * M);
  ggml_get_type_traits(type)->to_float(wq.data(), wd.data(), static_cast<int64_t>(K) * M);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < M; ++i) {
      double ref = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        const double p = static_cast<double>(wd[static_cast<size_t>(i) * K + k]) *
                         xf[static_cast<size_t>(j) * K + k];
        ref += p;
        mag += std::fabs(p);
      }
      const double v = got[static_cast<size_t>(j) * M + i];
      // The kernels quantise the activations too (8 bits): allow 2% of the magnitude.
      if (!std::isfinite(v) || std::fabs(v - ref) > 0.02 * mag + 1e-3) {
        char msg[256];
        std::snprintf(msg, sizeof(msg), "wrong result for %s x f32[%d] in %s: %g, expected %g",
                      ggml_type_name(type), n, ggml_backend_buft_name(buft), v, ref);
        return msg;
      }
    }
  }
  return "";
}

int Probe(const std::string& path) {
  ggml_log_set(Quiet, nullptr);
  ggml_backend_reg_t reg = ggml_backend_load(path.c_str());
  if (reg == nullptr || ggml_backend_reg_dev_count(reg) == 0) {
    std::printf("cannot load %s\n", path.c_str());
    return 2;
  }
  ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, 0);
  ggml_backend_t backend = ggml_backend_dev_init(dev, nullptr);
  if (backend == nullptr) {
    std::printf("cannot start %s\n", path.c_str());
    return 2;
  }
  using SetThreads = void (*)(ggml_backend_t, int);
  if (auto set = reinterpret_cast<SetThreads>(
          ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads"))) {
    set(backend, static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u)));
  }
  // The buffer types llama.cpp may put weights in: the extra ones (AMX tiles,
  // repacked layouts) and the plain one.
  std::vector<ggml_backend_buffer_type_t> bufts;
  using ExtraBufts = ggml_backend_buffer_type_t* (*)(ggml_backend_dev_t);
  if (auto extra = reinterpret_cast<ExtraBufts>(
          ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts"))) {
    for (auto* b = extra(dev); b && *b; ++b) bufts.push_back(*b);
  }
  bufts.push_back(ggml_backend_dev_buffer_type(dev));
  int rc = 0;
  for (auto* buft : bufts) {
    for (ggml_type type : {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_F16}) {
      for (int n : {1, 32}) {
        const std::string r = CheckMulMat(backend, dev, buft, type, n);
        if (!r.empty() && r != "skip") {
          std::printf("%s\n", r.c_str());
          rc = 3;
          break;
        }
      }
      if (rc) break;
    }
    if (rc) break;
  }
  ggml_backend_free(backend);
  if (rc == 0) std::printf("ok\n");
  return rc;
}

// Runs before main() in every program that links the engine; does nothing unless
// this process was started as a probe child.
__attribute__((constructor)) void AnswerAsCpuProbe() {
  const char* req = std::getenv(kCpuProbeEnv);
  if (req == nullptr) return;
  const std::string r = req;
  int rc = 2;
  if (r.rfind(kCpuProbeRate, 0) == 0) {
    rc = Rate(r.substr(std::strlen(kCpuProbeRate)));
  } else if (r.rfind(kCpuProbeRun, 0) == 0) {
    rc = Probe(r.substr(std::strlen(kCpuProbeRun)));
  } else {
    std::printf("unknown probe request\n");
  }
  std::fflush(stdout);
  _exit(rc);
}

}  // namespace

// Referenced by cpu.cpp so that this object (and its constructor) is linked into every
// program that can choose a CPU backend.
void LinkCpuProbe() {}

}  // namespace modelseal::engine
