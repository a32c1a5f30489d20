// Finding and loading the GPU backend (see gpu.h).
#include "engine/gpu.h"

#include <dlfcn.h>
#include <ggml-backend.h>
#include <llama.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>

#ifndef MODELSEAL_LLAMA_DIR
#define MODELSEAL_LLAMA_DIR ""
#endif

namespace modelseal::engine {

namespace {

namespace fs = std::filesystem;

// The cache's CUDA backends, newest CUDA runtime first.
std::vector<std::string> Candidates() {
  std::vector<std::string> out;
  if (const char* f = std::getenv("MODELSEAL_GPU_BACKEND"); f && *f) {
    out.push_back(f);
    return out;
  }
  std::error_code ec;
  const fs::path dir = fs::path(MODELSEAL_LLAMA_DIR) / "cuda";
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const fs::path lib = e.path() / "libggml-cuda.so";
    if (fs::exists(lib, ec)) found.push_back(lib);
  }
  std::sort(found.rbegin(), found.rend());  // "13" before "12"
  for (const auto& p : found) out.push_back(p.string());
  return out;
}

GpuStatus Probe() {
  GpuStatus st;
  const char* mode = std::getenv("MODELSEAL_GPU");
  if (mode && std::string(mode) == "off") {
    st.reason = "MODELSEAL_GPU=off";
    return st;
  }
  const auto candidates = Candidates();
  if (candidates.empty()) {
    st.reason =
        "no GPU backend in the llama.cpp cache; the setup adds one on machines with an "
        "NVIDIA GPU";
    return st;
  }
  for (const auto& path : candidates) {
    // Opened once here for the loader's own words on failure (a missing CUDA runtime or
    // driver library); ggml then loads it for real.
    if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL); h == nullptr) {
      const char* why = dlerror();
      st.reason = "the GPU backend did not load: " + std::string(why ? why : path);
      continue;
    } else {
      dlclose(h);
    }
    ggml_backend_reg_t reg = ggml_backend_load(path.c_str());
    if (!reg) {
      st.reason = "the GPU backend " + path + " is not a ggml backend";
      continue;
    }
    for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i) {
      ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, i);
      if (ggml_backend_dev_type(dev) != GGML_BACKEND_DEVICE_TYPE_GPU) continue;
      size_t free = 0, total = 0;
      ggml_backend_dev_memory(dev, &free, &total);
      char line[512];
      std::snprintf(line, sizeof(line), "%s: %s (%zu MiB)", ggml_backend_dev_name(dev),
                    ggml_backend_dev_description(dev), total >> 20);
      st.devices.push_back(line);
    }
    if (st.devices.empty()) {
      st.reason = "the GPU backend " + path + " loaded but found no GPU";
      ggml_backend_unload(reg);
      continue;
    }
    st.available = true;
    st.backend = path;
    st.reason.clear();
    return st;
  }
  return st;
}

}  // namespace

const GpuStatus& Gpu() {
  static std::once_flag once;
  static GpuStatus status;
  std::call_once(once, [] { status = Probe(); });
  return status;
}

}  // namespace modelseal::engine
