// The child side of choosing the CPU backend (cpu.h): what the parent asks for.
// Internal to the engine.
#pragma once

namespace modelseal::engine {

// The environment variable that makes this executable answer as a probe child.
inline constexpr char kCpuProbeEnv[] = "MODELSEAL_CPU_PROBE";
// Its value: "rate:<dir>" prints "variant <score> <path>" for each libggml-cpu-*.so in
// <dir>; "probe:<path>" runs that variant's kernels and prints "ok" when they are right.
inline constexpr char kCpuProbeRate[] = "rate:";
inline constexpr char kCpuProbeRun[] = "probe:";

// Does nothing; calling it links the probe child's code (a constructor) into the program.
void LinkCpuProbe();

}  // namespace modelseal::engine
