// NVIDIA GPUs through NVML, loaded with dlopen (libnvidia-ml.so.1 comes with the
// driver): no build or run-time dependency on machines without one.
// Thread-safe; each call initialises and shuts NVML down again.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace modelseal::server {

struct GpuDevice {
  std::string name;
  uint64_t memory_total = 0, memory_used = 0;  // bytes
  unsigned utilization_gpu = 0;                // percent
  unsigned utilization_memory = 0;             // percent
  unsigned temperature_c = 0;
};

struct GpuReport {
  bool available = false;
  std::string reason;  // why not, when not ("no GPU: libnvidia-ml.so.1 not found")
  std::string driver_version;
  std::string cuda_version;  // "12.4"
  std::vector<GpuDevice> devices;
};

GpuReport ReadGpus();

}  // namespace modelseal::server
