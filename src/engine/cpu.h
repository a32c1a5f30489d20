// llama.cpp's CPU backend: which build of it runs on this machine.
//
// The llama.cpp cache holds the CPU backend the way llama.cpp's releases ship it
// (GGML_BACKEND_DL with GGML_CPU_ALL_VARIANTS): one libggml-cpu-<variant>.so per x86
// family (x64, sse42, sandybridge, haswell, skylakex, icelake, zen4, alderlake,
// sapphirerapids, ...), each compiled for that family's instructions. Nothing in the
// program is compiled for the build machine, so the binary runs on any x86-64.
//
// Which variant runs is decided here, once per process, before the first model loads:
//   1. each variant rates this CPU with its own ggml_backend_score (CPUID only; 0 when
//      an instruction it needs is missing). The scoring runs in a child process, so a
//      variant library that cannot even be loaded here cannot take the program down.
//   2. the best-rated variant is probed in a child process: it multiplies small
//      quantised matrices (Q8_0, Q4_0, Q4_K, F16; one row and a batch of 32) with every
//      buffer type it offers (AMX tiles, repacked weights, plain) and compares the
//      results with a reference computed here. A CPU can advertise a feature its
//      hypervisor or kernel does not let it use (a VM that lists amx_tile and amx_int8
//      but raises SIGILL on the first tile instruction); such a probe dies or answers
//      wrong, and the next variant is probed instead.
//   3. the first variant whose probe passed is loaded (ggml_backend_load). The baseline
//      "x64" variant needs no probe.
// The outcome (variant, path, what was skipped and why) is reported by CpuBackend();
// `modelseal serve` prints it at startup.
//
// MODELSEAL_CPU_VARIANT=<name> loads that variant without scoring or probing (for
// benchmarks and diagnosis). MODELSEAL_LLAMA_CPU_DIR names another directory of
// variants than the cache's.
//
// The child is this same executable (/proc/self/exe) started with MODELSEAL_CPU_PROBE
// in its environment: a constructor in this module answers before main() runs and
// exits, so the probe works in any program that links the engine, from any thread.
//
// Thread-safety: CpuBackend() loads once (std::call_once) and may be called from any
// thread; the functions below it are for tests.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace modelseal::engine {

struct CpuBackendStatus {
  bool loaded = false;
  std::string variant;  // "zen4"
  std::string path;     // the library loaded
  bool forced = false;  // MODELSEAL_CPU_VARIANT chose it
  // Variants rated higher than the one loaded and why they were passed over, e.g.
  // "sapphirerapids: the probe failed (killed by signal 4, SIGILL)".
  std::vector<std::string> skipped;
  std::string error;  // why none was loaded

  // One line for logs: "zen4 (libggml-cpu-zen4.so; skipped: ...)".
  std::string Describe() const;
};

// Chooses, probes and loads the CPU backend once (see above).
const CpuBackendStatus& CpuBackend();

// ---- the steps, for tests -------------------------------------------------------

struct CpuVariant {
  std::string name;  // "haswell"
  std::string path;  // ".../libggml-cpu-haswell.so"
  int score = 0;     // 0: this CPU lacks an instruction it needs
};

// The variants in `dir` (libggml-cpu-*.so) with their scores, best first, rated in a
// child process. Empty when the directory has none or the child failed (`error`).
std::vector<CpuVariant> RateCpuVariants(const std::string& dir, std::string* error);

// Runs the probe of the variant library at `path` in a child process. Returns true
// when it computed correct results; otherwise false with the reason ("killed by
// signal 4 (SIGILL)", "wrong result for q8_0 ...", ...).
bool ProbeCpuVariant(const std::string& path, std::string* reason);

// The decision of steps 1-3 over `variants` (best first), with the probe given.
// Variants scored 0 are never chosen; "x64" is taken without a probe.
CpuBackendStatus ChooseCpuVariant(
    const std::vector<CpuVariant>& variants,
    const std::function<bool(const CpuVariant&, std::string* reason)>& probe);

}  // namespace modelseal::engine
