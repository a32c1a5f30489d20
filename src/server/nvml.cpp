#include "server/nvml.h"

#include <dlfcn.h>

namespace modelseal::server {

namespace {

// The few NVML types and entry points used here (nvml.h is not in Debian main).
using nvmlReturn_t = int;
using nvmlDevice_t = void*;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
constexpr nvmlReturn_t kSuccess = 0;
constexpr int kTemperatureGpu = 0;

struct Nvml {
  void* lib = nullptr;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  nvmlReturn_t (*count)(unsigned int*) = nullptr;
  nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int*) = nullptr;
  nvmlReturn_t (*driver)(char*, unsigned int) = nullptr;
  nvmlReturn_t (*cuda)(int*) = nullptr;
  ~Nvml() {
    if (lib) dlclose(lib);
  }
};

template <typename F>
bool Bind(void* lib, const char* symbol, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, symbol));
  return *out != nullptr;
}

}  // namespace

GpuReport ReadGpus() {
  GpuReport r;
  Nvml n;
  n.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (n.lib == nullptr) {
    r.reason = "no GPU: the NVIDIA driver's libnvidia-ml.so.1 is not installed";
    return r;
  }
  if (!Bind(n.lib, "nvmlInit_v2", &n.init) || !Bind(n.lib, "nvmlShutdown", &n.shutdown) ||
      !Bind(n.lib, "nvmlDeviceGetCount_v2", &n.count) ||
      !Bind(n.lib, "nvmlDeviceGetHandleByIndex_v2", &n.handle) ||
      !Bind(n.lib, "nvmlDeviceGetName", &n.name) ||
      !Bind(n.lib, "nvmlDeviceGetMemoryInfo", &n.memory) ||
      !Bind(n.lib, "nvmlDeviceGetUtilizationRates", &n.utilization) ||
      !Bind(n.lib, "nvmlDeviceGetTemperature", &n.temperature) ||
      !Bind(n.lib, "nvmlSystemGetDriverVersion", &n.driver) ||
      !Bind(n.lib, "nvmlSystemGetCudaDriverVersion", &n.cuda)) {
    r.reason = "no GPU: libnvidia-ml.so.1 lacks an NVML entry point this build needs";
    return r;
  }
  if (n.init() != kSuccess) {
    r.reason = "no GPU: NVML could not initialise (no NVIDIA device or driver)";
    return r;
  }
  char buf[96] = {};
  if (n.driver(buf, sizeof(buf)) == kSuccess) r.driver_version = buf;
  int cuda = 0;
  if (n.cuda(&cuda) == kSuccess) {
    r.cuda_version = std::to_string(cuda / 1000) + "." + std::to_string((cuda % 1000) / 10);
  }
  unsigned int count = 0;
  if (n.count(&count) == kSuccess) {
    for (unsigned int i = 0; i < count; ++i) {
      nvmlDevice_t h = nullptr;
      if (n.handle(i, &h) != kSuccess) continue;
      GpuDevice d;
      char name[96] = {};
      if (n.name(h, name, sizeof(name)) == kSuccess) d.name = name;
      nvmlMemory_t mem{};
      if (n.memory(h, &mem) == kSuccess) {
        d.memory_total = mem.total;
        d.memory_used = mem.used;
      }
      nvmlUtilization_t u{};
      if (n.utilization(h, &u) == kSuccess) {
        d.utilization_gpu = u.gpu;
        d.utilization_memory = u.memory;
      }
      unsigned int t = 0;
      if (n.temperature(h, kTemperatureGpu, &t) == kSuccess) d.temperature_c = t;
      r.devices.push_back(std::move(d));
    }
  }
  n.shutdown();
  r.available = !r.devices.empty();
  if (!r.available) r.reason = "no GPU: NVML reports no devices";
  return r;
}

}  // namespace modelseal::server
