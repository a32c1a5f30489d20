// Engine tests on generated test models (llama.cpp from the setup cache).
#include <dirent.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "common/bytes.h"
#include "common/memfd.h"
#include "engine/engine.h"
#include "engine/internal.h"
#include "tests/support/proc_status.h"
#include "tests/support/wait.h"

namespace modelseal::engine {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string Sha256Hex(const std::string& data) {
  uint8_t d[32];
  unsigned n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
  return ToHex(std::span<const uint8_t>(d, n));
}

std::set<std::string> Listing(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(e.path().string());
  return out;
}

long RssKiB() {
  return static_cast<long>(testenv::ProcStatusBytes("VmRSS") / 1024);
}

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("ms-engine-" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    TestModelOptions o;
    o.layers = 2;
    o.dim = 64;
    o.context_length = 512;
    auto r = WriteTestModel(Model(), o);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string Model() { return (*dir_ / "tiny.gguf").string(); }

  Engine engine_;
  static fs::path* dir_;

  std::string Chat(const std::string& name, SamplingOptions s, GenerateStats* stats = nullptr,
                   const std::string& text = "Hello there") {
    std::string out;
    auto r = engine_.Chat(name, {{"user", text}}, s, [&](std::string_view p) {
      out.append(p);
      return true;
    });
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    if (r.ok() && stats) *stats = *r;
    return out;
  }
};
fs::path* EngineTest::dir_ = nullptr;

TEST_F(EngineTest, TestModelIsDeterministic) {
  TestModelOptions o;
  o.context_length = 512;
  const std::string a = (*dir_ / "a.gguf").string(), b = (*dir_ / "b.gguf").string();
  ASSERT_TRUE(WriteTestModel(a, o).ok());
  EXPECT_EQ(ReadAll(a), ReadAll(Model()));
  o.seed = 2;
  ASSERT_TRUE(WriteTestModel(b, o).ok());
  EXPECT_NE(ReadAll(a), ReadAll(b));
  o.type = "q4_k";  // needs dim 256
  auto bad = WriteTestModel(b, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().reason, "invalid-argument");
  o.type = "q2_k";
  EXPECT_EQ(WriteTestModel(b, o).error().reason, "invalid-argument");
}

TEST_F(EngineTest, LoadFileFillsTheRegistry) {
  LoadOptions lo;
  lo.name = "tiny";
  auto info = engine_.LoadFile(Model(), lo);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->architecture, "llama");
  EXPECT_EQ(info->trained_context_length, 512u);
  EXPECT_EQ(info->context_length, 512u);
  EXPECT_FALSE(info->measured);
  EXPECT_EQ(info->sha256_hex, Sha256Hex(ReadAll(Model())));
  EXPECT_EQ(info->sha384_hex.size(), 96u);
  EXPECT_EQ(info->size_bytes, fs::file_size(Model()));
  EXPECT_NE(info->chat_template.find("[INST]"), std::string::npos);
  EXPECT_FALSE(info->default_template);
  EXPECT_EQ(info->parallel, 4);
  EXPECT_EQ(info->file_type, "F16");
  EXPECT_EQ(info->embedding_length, 64u);
  EXPECT_EQ(info->pooling, "none");
  EXPECT_GT(info->n_params, 0u);
  EXPECT_EQ(info->source, "file:" + Model());
  ASSERT_EQ(engine_.List().size(), 1u);

  auto again = engine_.LoadFile(Model(), lo);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().reason, "model-exists");

  // A plain file is never measured (only the load pipeline can make a Measurement).
  EXPECT_FALSE(engine_.Get("tiny")->measured);
  EXPECT_TRUE(engine_.Get("tiny")->pcr15_after_hex.empty());
}

TEST_F(EngineTest, NotAModelFailsToLoad) {
  const std::string junk = (*dir_ / "junk.gguf").string();
  std::ofstream(junk) << "this is not a gguf file";
  LoadOptions lo;
  lo.name = "junk";
  auto r = engine_.LoadFile(junk, lo);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "load-failed");
  EXPECT_TRUE(engine_.List().empty());
}

TEST_F(EngineTest, LoadFromMemfdCreatesNoFile) {
  const std::string bytes = ReadAll(Model());
  const fs::path scratch = *dir_ / "scratch";
  fs::create_directories(scratch);
  const fs::path old_cwd = fs::current_path();
  fs::current_path(scratch);
  setenv("TMPDIR", scratch.c_str(), 1);
  const auto before = Listing(scratch);
  const auto tmp_before = Listing(fs::temp_directory_path());

  auto mf = Memfd::Create("model", bytes.size());
  ASSERT_TRUE(mf.ok());
  auto map = mf->MapWritable();
  ASSERT_TRUE(map.ok());
  std::memcpy(map->data(), bytes.data(), bytes.size());
  ASSERT_TRUE(mf->Seal().ok());
  const std::string path = mf->path();
  EXPECT_EQ(path.rfind("/proc/self/fd/", 0), 0u);
  char target[256] = {};
  ASSERT_GT(readlink(path.c_str(), target, sizeof(target) - 1), 0);
  EXPECT_EQ(std::string(target).rfind("/memfd:", 0), 0u) << target;

  LoadOptions lo;
  lo.name = "inmem";
  auto info = engine_.LoadMemfd(std::move(*mf), lo);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->source, "memory");
  EXPECT_EQ(info->sha256_hex, Sha256Hex(bytes));
  SamplingOptions s;
  s.seed = 1;
  s.max_tokens = 8;
  EXPECT_FALSE(Chat("inmem", s).empty());
  EXPECT_EQ(Listing(scratch), before);
  EXPECT_EQ(Listing(fs::temp_directory_path()), tmp_before);
  ASSERT_TRUE(engine_.Unload("inmem").ok());
  EXPECT_EQ(Listing(scratch), before);
  fs::current_path(old_cwd);
  unsetenv("TMPDIR");
}

TEST_F(EngineTest, ChatUsesTheModelsTemplate) {
  LoadOptions lo;
  lo.name = "tiny";
  ASSERT_TRUE(engine_.LoadFile(Model(), lo).ok());
  auto p = engine_.ApplyTemplate("tiny", {{"system", "Be brief."}, {"user", "Hi"}});
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_NE(p->find("[INST]"), std::string::npos) << *p;
  EXPECT_NE(p->find("<<SYS>>"), std::string::npos) << *p;
  EXPECT_NE(p->find("Hi [/INST]"), std::string::npos) << *p;
  auto empty = engine_.ApplyTemplate("tiny", {});
  EXPECT_FALSE(empty.ok());
}

TEST_F(EngineTest, SameSeedSameTokensAndMaxTokens) {
  LoadOptions lo;
  lo.name = "tiny";
  ASSERT_TRUE(engine_.LoadFile(Model(), lo).ok());
  SamplingOptions s;
  s.temperature = 1.0f;
  s.seed = 1234;
  s.max_tokens = 24;
  GenerateStats st;
  const std::string a = Chat("tiny", s, &st);
  EXPECT_EQ(st.completion_tokens, 24);
  EXPECT_EQ(st.finish_reason, "length");
  EXPECT_GT(st.prompt_tokens, 3);
  EXPECT_EQ(Chat("tiny", s), a);
  // The seed is used: of five seeds, not all give the same 24 tokens. (Any single pair
  // may agree on a tiny random model, so no one pair is asserted to differ.)
  std::set<std::string> texts{a};
  for (uint32_t seed : {4321u, 7u, 99u, 2024u}) {
    s.seed = seed;
    texts.insert(Chat("tiny", s));
  }
  EXPECT_GT(texts.size(), 1u);
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_tokens = 16;
  EXPECT_EQ(Chat("tiny", greedy), Chat("tiny", greedy));
}

TEST_F(EngineTest, StopStringEndsGeneration) {
  LoadOptions lo;
  lo.name = "tiny";
  ASSERT_TRUE(engine_.LoadFile(Model(), lo).ok());
  SamplingOptions s;
  s.seed = 9;
  s.max_tokens = 40;
  const std::string full = Chat("tiny", s);
  ASSERT_GE(full.size(), 6u);
  // Stop at a piece of text we know comes: the output ends right before it.
  const std::string stop = full.substr(full.size() / 2, 3);
  s.stop = {stop};
  GenerateStats st;
  const std::string cut = Chat("tiny", s, &st);
  EXPECT_EQ(cut, full.substr(0, full.find(stop)));
  EXPECT_EQ(st.finish_reason, "stop");
}

TEST_F(EngineTest, CallbackAndFlagCancel) {
  LoadOptions lo;
  lo.name = "tiny";
  ASSERT_TRUE(engine_.LoadFile(Model(), lo).ok());
  SamplingOptions s;
  s.seed = 3;
  int pieces = 0;
  auto r =
      engine_.Chat("tiny", {{"user", "go"}}, s, [&](std::string_view) { return ++pieces < 3; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, "cancelled");
  EXPECT_EQ(pieces, 3);
  EXPECT_LT(r->completion_tokens, 10);

  std::atomic<bool> cancel{false};
  r = engine_.Chat(
      "tiny", {{"user", "go"}}, s,
      [&](std::string_view) {
        cancel = true;
        return true;
      },
      &cancel);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, "cancelled");
  EXPECT_EQ(engine_.counters().cancelled, 2u);
  EXPECT_EQ(engine_.counters().active, 0u);
}

TEST_F(EngineTest, EightConcurrentRequestsAllFinish) {
  LoadOptions lo;
  lo.name = "tiny";
  lo.threads = 1;
  lo.parallel = 4;  // eight requests: four wait for a slot
  ASSERT_TRUE(engine_.LoadFile(Model(), lo).ok());
  std::vector<GenerateStats> stats(8);
  std::vector<std::string> text(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      SamplingOptions mine;
      mine.max_tokens = 32;
      mine.seed = static_cast<uint32_t>(i);
      auto r = engine_.Chat("tiny", {{"user", "request " + std::to_string(i)}}, mine,
                            [&](std::string_view p) {
                              text[i].append(p);
                              return true;
                            });
      ASSERT_TRUE(r.ok()) << r.error().ToString();
      stats[i] = *r;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(stats[i].completion_tokens, 32) << i;
    EXPECT_EQ(stats[i].finish_reason, "length") << i;
    EXPECT_FALSE(text[i].empty()) << i;
  }
  EXPECT_EQ(engine_.counters().completed, 8u);
  EXPECT_EQ(engine_.counters().active, 0u);
}

TEST_F(EngineTest, EveryCommonWeightTypeLoadsAndChats) {
  const struct {
    const char* type;
    const char* file_type;
  } types[] = {{"f16", "F16"}, {"q8_0", "Q8_0"}, {"q4_0", "Q4_0"}, {"q4_k", "Q4_K_S"}};
  for (const auto& t : types) {
    SCOPED_TRACE(t.type);
    TestModelOptions o;
    o.dim = 256;  // q4_k's rows are made of 256-value blocks
    o.heads = 4;
    o.ff = 512;
    o.type = t.type;
    o.context_length = 256;
    const std::string path = (*dir_ / (std::string(t.type) + ".gguf")).string();
    ASSERT_TRUE(WriteTestModel(path, o).ok());
    LoadOptions lo;
    lo.name = t.type;
    auto info = engine_.LoadFile(path, lo);
    ASSERT_TRUE(info.ok()) << info.error().ToString();
    EXPECT_EQ(info->file_type, t.file_type);
    SamplingOptions s;
    s.seed = 5;
    s.max_tokens = 16;
    GenerateStats st;
    const std::string a = Chat(t.type, s, &st);
    EXPECT_EQ(st.completion_tokens, 16);
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(Chat(t.type, s), a);  // seeded: the same again
    ASSERT_TRUE(engine_.Unload(t.type).ok());
  }
}

// Unload does not wait: it takes the model out of the registry at once, a request
// already running keeps its reference and completes, and the memory goes when it ends.
TEST_F(EngineTest, UnloadLetsARunningRequestCompleteThenFreesTheMemory) {
  TestModelOptions big;
  big.dim = 256;
  big.layers = 4;
  big.type = "f32";
  big.context_length = 256;
  const std::string path = (*dir_ / "big.gguf").string();
  auto size = WriteTestModel(path, big);
  ASSERT_TRUE(size.ok());
  const long base = RssKiB();
  LoadOptions lo;
  lo.name = "big";
  lo.use_mmap = false;  // weights in this process's own memory
  ASSERT_TRUE(engine_.LoadFile(path, lo).ok());
  const long loaded = RssKiB();
  EXPECT_GT(loaded - base, static_cast<long>(*size / 1024 / 2));

  // A request that runs while the model is unloaded still completes.
  std::atomic<int> pieces{0};
  std::atomic<bool> unloaded{false};
  SamplingOptions s;
  s.seed = 1;
  s.max_tokens = 64;
  std::thread t([&] {
    auto r = engine_.Chat("big", {{"user", "x"}}, s, [&](std::string_view) {
      ++pieces;
      (void)testenv::SpinUntil([&] { return pieces != 2 || unloaded; });
      return true;
    });
    EXPECT_TRUE(r.ok());
    if (r.ok()) {
      EXPECT_EQ(r->finish_reason, "length");
    }
  });
  ASSERT_TRUE(testenv::SpinUntil([&] { return pieces >= 2; })) << "no two pieces streamed";
  ASSERT_TRUE(engine_.Unload("big").ok());
  unloaded = true;
  t.join();
  EXPECT_FALSE(engine_.Get("big").ok());
  EXPECT_EQ(engine_.Unload("big").error().reason, "model-not-found");
  malloc_trim(0);  // what the allocator keeps for reuse goes back; what is still held stays
  const long after = RssKiB();
#ifndef __SANITIZE_ADDRESS__  // ASan keeps freed memory in quarantine: RSS says nothing
  EXPECT_LT(after - base, (loaded - base) / 4)
      << "base " << base << " loaded " << loaded << " after " << after;
#else
  (void)after;
#endif
}

TEST(PieceFilterTest, HoldsBackStopPrefixesAndBrokenUtf8) {
  PieceFilter f({"STOP"});
  bool stopped = false;
  EXPECT_EQ(f.Push("hello S", &stopped), "hello ");
  EXPECT_EQ(f.Push("T", &stopped), "");
  EXPECT_EQ(f.Push("x", &stopped), "STx");
  EXPECT_EQ(f.Push("ab\xE2\x82", &stopped), "ab");
  EXPECT_EQ(f.Push("\xAC!", &stopped), "\xE2\x82\xAC!");
  EXPECT_EQ(f.Push("end STO", &stopped), "end ");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(f.Push("P and more", &stopped), "");
  EXPECT_TRUE(stopped);

  PieceFilter g({});
  EXPECT_EQ(g.Push("\xFF"
                   "a",
                   &stopped),
            "\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(g.Push("\xE2\x82", &stopped), "");
  EXPECT_EQ(g.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("ok\xC3("), "ok\xEF\xBF\xBD(");
}

}  // namespace
}  // namespace modelseal::engine
