// GPU offload: llama.cpp's CUDA backend, loaded at run time when the machine has one.
//
// The CPU build in the llama.cpp cache is what the program links. On a machine with an
// NVIDIA GPU, scripts/setup.d/20-llama.sh also unpacks node-llama-cpp's prebuilt CUDA
// backend (same llama.cpp release) into <cache>/cuda/<runtime>/libggml-cuda.so, next to
// a libggml-base.so link to the cache's own, so it binds to the libggml-base already in
// the process. The engine loads the first of those that the system's CUDA runtime and
// driver can satisfy; with none, inference stays on the CPU and GpuStatus says why.
//
// MODELSEAL_GPU=off keeps everything on the CPU; MODELSEAL_GPU_BACKEND=FILE names the
// backend library to load instead of searching the cache.
#pragma once

#include <string>
#include <vector>

namespace modelseal::engine {

struct GpuStatus {
  bool available = false;            // a GPU backend is loaded and has devices
  std::string backend;               // the library loaded, when one was
  std::vector<std::string> devices;  // "CUDA0: NVIDIA H100 80GB HBM3 (81079 MiB)"
  std::string reason;                // why there is no GPU, when there is none
};

// Loads the GPU backend once (thread-safe) and reports what is there.
const GpuStatus& Gpu();

}  // namespace modelseal::engine
