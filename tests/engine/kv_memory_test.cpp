// The KV cache costs memory as it fills, not when a model is loaded
// (scripts/setup.d/llama-patches/ggml-cpu-anonymous-buffers.diff), and a cleared
// CPU buffer reads as zeros whichever way it was cleared.
#include <ggml-backend.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "engine/engine.h"
#include "tests/engine/test_models.h"
#include "tests/support/proc_status.h"

namespace modelseal::engine {
namespace {

long long RssAnonBytes() {
  return testenv::ProcStatusBytes("RssAnon");
}

bool AllBytesAre(const uint8_t* p, size_t n, uint8_t v) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != v) return false;
  }
  return true;
}

TEST(KvMemory, LoadingAModelLeavesItsKvCacheUncommitted) {
  TestDir dir("kv-memory");
  TestModelOptions o;
  o.layers = 2;
  o.dim = 256;
  o.heads = 4;
  o.context_length = 8192;
  const std::string path = (dir.path() / "kv.gguf").string();
  ASSERT_TRUE(WriteTestModel(path, o).ok());

  LoadOptions lo;
  lo.name = "kv";
  lo.parallel = 4;
  lo.context_length = 8192;
  lo.threads = 1;
  // K and V, F16, for every layer and every token of every slot: 64 MiB.
  const long long kv_bytes = 2LL * o.layers * lo.parallel * lo.context_length * o.dim * 2;

  Engine engine;
  // llama.cpp's backends and threads start with the first model: not measured.
  const std::string tiny = (dir.path() / "tiny.gguf").string();
  ASSERT_TRUE(WriteTestModel(tiny, TinyModel()).ok());
  LoadOptions warm;
  warm.name = "warm";
  warm.threads = 1;
  ASSERT_TRUE(engine.LoadFile(tiny, warm).ok());

  const long long before = RssAnonBytes();
  auto info = engine.LoadFile(path, lo);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  const long long after = RssAnonBytes();
  ASSERT_EQ(info->parallel, 4);
  ASSERT_EQ(info->context_length, 8192u);
  // llama.cpp's memset of the whole cache made it all resident: a growth of at
  // least kv_bytes. Now pages become resident as tokens are stored; what does grow
  // is llama.cpp's own allocations (about 6 MiB here, 22 MiB under ASan).
  EXPECT_LT(after - before, kv_bytes / 2) << "RssAnon grew from " << before << " to " << after
                                          << " bytes; the KV cache is " << kv_bytes;

  // A cache that was never written answers as one that was cleared: the same
  // seed gives the same text on a fresh slot and on a reused one.
  SamplingOptions s;
  s.seed = 7;
  s.max_tokens = 24;
  auto chat = [&] {
    std::string out;
    auto r = engine.Chat("kv", {{"user", "Tell me about the sea"}}, s, [&](std::string_view p) {
      out.append(p);
      return true;
    });
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return out;
  };
  const std::string first = chat();
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(chat(), first);
}

TEST(KvMemory, ClearingALargeCpuBufferZeroesItAndReturnsItsPages) {
  const size_t size = 64u << 20;
  ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(ggml_backend_cpu_buffer_type(), size);
  ASSERT_NE(buf, nullptr);
  auto* base = static_cast<uint8_t*>(ggml_backend_buffer_get_base(buf));
  EXPECT_TRUE(AllBytesAre(base, size, 0)) << "a new buffer reads as zeros";

  std::memset(base, 0xAB, size);
  const long long written = RssAnonBytes();
  ggml_backend_buffer_clear(buf, 0);
  const long long cleared = RssAnonBytes();
  EXPECT_TRUE(AllBytesAre(base, size, 0)) << "clear(0) leaves zeros";
  EXPECT_LT(cleared, written - static_cast<long long>(size) / 2)
      << "clear(0) kept the pages: RssAnon " << written << " -> " << cleared;

  ggml_backend_buffer_clear(buf, 7);
  EXPECT_TRUE(AllBytesAre(base, size, 7)) << "clear(7) writes sevens";
  ggml_backend_buffer_free(buf);

  // A small buffer keeps the allocator's memory; clearing it still zeroes it.
  ggml_backend_buffer_t small =
      ggml_backend_buft_alloc_buffer(ggml_backend_cpu_buffer_type(), 4096);
  ASSERT_NE(small, nullptr);
  auto* sb = static_cast<uint8_t*>(ggml_backend_buffer_get_base(small));
  std::memset(sb, 0xCD, 4096);
  ggml_backend_buffer_clear(small, 0);
  EXPECT_TRUE(AllBytesAre(sb, 4096, 0));
  ggml_backend_buffer_free(small);
}

}  // namespace
}  // namespace modelseal::engine
