// Choosing llama.cpp's CPU backend variant: rating in a child, a probe in a child that
// runs the variant's kernels, and the fallback when a variant dies on its instructions.
#include "engine/cpu.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "tests/engine/test_models.h"

namespace modelseal::engine {
namespace {

namespace fs = std::filesystem;

const std::string kRealDir = MODELSEAL_LLAMA_CPU_DIR;

TEST(ChooseCpuVariant, TakesTheBestWhoseProbePasses) {
  std::vector<std::string> probed;
  const auto probe = [&](const CpuVariant& v, std::string* reason) {
    probed.push_back(v.name);
    if (v.name == "sapphirerapids") {
      *reason = "the probe failed (killed by signal 4 (SIGILL))";
      return false;
    }
    return true;
  };
  const std::vector<CpuVariant> variants = {
      {"sapphirerapids", "/x/libggml-cpu-sapphirerapids.so", 4000},
      {"zen4", "/x/libggml-cpu-zen4.so", 3000},
      {"x64", "/x/libggml-cpu-x64.so", 1}};
  const CpuBackendStatus st = ChooseCpuVariant(variants, probe);
  EXPECT_TRUE(st.error.empty()) << st.error;
  EXPECT_EQ(st.variant, "zen4");
  EXPECT_EQ(st.path, "/x/libggml-cpu-zen4.so");
  ASSERT_EQ(st.skipped.size(), 1u);
  EXPECT_EQ(st.skipped[0], "sapphirerapids: the probe failed (killed by signal 4 (SIGILL))");
  EXPECT_EQ(probed, (std::vector<std::string>{"sapphirerapids", "zen4"}));
}

TEST(ChooseCpuVariant, NeverTakesAVariantTheCpuLacksAndTakesX64WithoutAProbe) {
  int probes = 0;
  const auto fail = [&](const CpuVariant&, std::string* reason) {
    ++probes;
    *reason = "the probe failed (exited with status 3): wrong result";
    return false;
  };
  const std::vector<CpuVariant> variants = {{"icelake", "/x/libggml-cpu-icelake.so", 0},
                                            {"haswell", "/x/libggml-cpu-haswell.so", 60},
                                            {"x64", "/x/libggml-cpu-x64.so", 1}};
  const CpuBackendStatus st = ChooseCpuVariant(variants, fail);
  EXPECT_EQ(st.variant, "x64");
  EXPECT_EQ(probes, 1);  // haswell only: icelake scored 0, x64 needs none
  ASSERT_EQ(st.skipped.size(), 1u);
  EXPECT_EQ(st.skipped[0].rfind("haswell: ", 0), 0u);

  const CpuBackendStatus none =
      ChooseCpuVariant({{"haswell", "/x/libggml-cpu-haswell.so", 60}}, fail);
  EXPECT_TRUE(none.variant.empty());
  EXPECT_NE(none.error.find("haswell: the probe failed"), std::string::npos) << none.error;
}

TEST(CpuVariants, EveryReleaseVariantIsRatedInAChild) {
  std::string error;
  const auto variants = RateCpuVariants(kRealDir, &error);
  ASSERT_GE(variants.size(), 14u) << error;
  std::set<std::string> names;
  for (size_t i = 0; i < variants.size(); ++i) {
    names.insert(variants[i].name);
    if (i > 0) {
      EXPECT_GE(variants[i - 1].score, variants[i].score);
    }
  }
  for (const char* n :
       {"x64", "sse42", "haswell", "skylakex", "icelake", "zen4", "alderlake", "sapphirerapids"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  // x86-64 runs the baseline; this CPU (any the tests run on) rates more than it.
  EXPECT_GT(variants.front().score, 1);
  const auto x64 = std::find_if(variants.begin(), variants.end(),
                                [](const CpuVariant& v) { return v.name == "x64"; });
  ASSERT_NE(x64, variants.end());
  EXPECT_GT(x64->score, 0);

  EXPECT_TRUE(RateCpuVariants("/nonexistent", &error).empty());
  EXPECT_NE(error.find("/nonexistent"), std::string::npos);
}

TEST(CpuVariants, TheBestRatedVariantPassesItsProbe) {
  std::string error;
  const auto variants = RateCpuVariants(kRealDir, &error);
  ASSERT_FALSE(variants.empty()) << error;
  std::string reason;
  EXPECT_TRUE(ProbeCpuVariant(variants.front().path, &reason))
      << variants.front().name << ": " << reason;
}

TEST(CpuVariants, AVariantThatDiesOnAnIllegalInstructionFailsItsProbeOnly) {
  std::string reason;
  EXPECT_FALSE(ProbeCpuVariant(MODELSEAL_FAKE_CPU_VARIANT, &reason));
  EXPECT_NE(reason.find("killed by signal 4 (SIGILL)"), std::string::npos) << reason;
  std::string error;
  EXPECT_FALSE(ProbeCpuVariant("/nonexistent/libggml-cpu-x.so", &error));
  EXPECT_NE(error.find("cannot load"), std::string::npos) << error;
}

// The only test that loads a backend into this process (CpuBackend() decides once).
TEST(CpuBackend, LoadsTheBestVariantThatWorksAndSaysWhatItSkipped) {
  TestDir dir("cpu-variants");
  for (const auto& e : fs::directory_iterator(kRealDir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("libggml-cpu-", 0) == 0) fs::create_symlink(e.path(), dir.path() / n);
  }
  fs::copy_file(MODELSEAL_FAKE_CPU_VARIANT, dir.path() / "libggml-cpu-fakeamx.so");
  setenv("MODELSEAL_LLAMA_CPU_DIR", dir.path().c_str(), 1);
  std::string error;
  const auto real = RateCpuVariants(kRealDir, &error);
  ASSERT_FALSE(real.empty()) << error;

  const CpuBackendStatus& st = CpuBackend();
  ASSERT_TRUE(st.loaded) << st.error;
  EXPECT_EQ(st.variant, real.front().name);
  ASSERT_FALSE(st.skipped.empty());
  EXPECT_EQ(st.skipped[0].rfind("fakeamx: the probe failed (killed by signal 4 (SIGILL))", 0), 0u)
      << st.skipped[0];
  const std::string line = st.Describe();
  EXPECT_EQ(line.rfind(real.front().name + " (libggml-cpu-" + real.front().name + ".so", 0), 0u)
      << line;
  EXPECT_NE(line.find("skipped fakeamx"), std::string::npos) << line;
  unsetenv("MODELSEAL_LLAMA_CPU_DIR");
}

}  // namespace
}  // namespace modelseal::engine
