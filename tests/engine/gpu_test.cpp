// GPU offload falls back to the CPU, saying why, when the backend cannot load. (This
// machine has no GPU; the offload itself is measured with bench_engine on one.)
#include "engine/gpu.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/engine.h"

namespace modelseal::engine {
namespace {

namespace fs = std::filesystem;

// One test per process: the backend is probed once.
TEST(GpuTest, BackendThatCannotLoadLeavesInferenceOnTheCpu) {
  const fs::path dir = fs::temp_directory_path() / ("ms-gpu-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path bogus = dir / "libggml-cuda.so";
  std::ofstream(bogus) << "not a shared library";
  ASSERT_EQ(setenv("MODELSEAL_GPU_BACKEND", bogus.c_str(), 1), 0);

  const GpuStatus& gpu = Gpu();
  EXPECT_FALSE(gpu.available);
  EXPECT_TRUE(gpu.devices.empty());
  EXPECT_NE(gpu.reason.find("the GPU backend did not load"), std::string::npos) << gpu.reason;
  EXPECT_NE(gpu.reason.find(bogus.string()), std::string::npos) << gpu.reason;

  // Models still load and answer, on the CPU, even when every layer is asked for.
  TestModelOptions t;
  ASSERT_TRUE(WriteTestModel((dir / "tiny.gguf").string(), t).ok());
  Engine eng;
  LoadOptions lo;
  lo.name = "tiny";
  lo.threads = 1;
  lo.gpu_layers = -1;
  auto info = eng.LoadFile((dir / "tiny.gguf").string(), lo);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->gpu_layers, 0);
  SamplingOptions so;
  so.max_tokens = 4;
  std::string out;
  auto st = eng.Complete("tiny", "hello", so, [&](std::string_view p) {
    out += p;
    return true;
  });
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_EQ(st->completion_tokens, 4);
  fs::remove_all(dir);
}

// The backend is probed once per process, so the probe runs in a fresh one: the test
// binary started again for this test alone (gtest's "threadsafe" death-test style),
// whatever this process has probed already.
TEST(GpuTest, OffMeansOff) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        if (setenv("MODELSEAL_GPU", "off", 1) != 0) std::_Exit(3);
        const GpuStatus& gpu = Gpu();
        std::fprintf(stderr, "available=%d reason=%s\n", gpu.available ? 1 : 0, gpu.reason.c_str());
        std::_Exit(!gpu.available && gpu.reason == "MODELSEAL_GPU=off" ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "available=0 reason=MODELSEAL_GPU=off");
}

}  // namespace
}  // namespace modelseal::engine
