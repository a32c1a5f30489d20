// Embeddings: pooled as the model declares (the last token when it declares none),
// L2-normalised, several inputs per decode; checked against llama.cpp's own
// llama-embedding tool on the same model and CPU backend variant.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "engine/cpu.h"
#include "engine/engine.h"
#include "tests/engine/test_models.h"

namespace modelseal::engine {
namespace {

using nlohmann::json;

double Norm(const std::vector<float>& v) {
  double n = 0;
  for (float x : v) n += static_cast<double>(x) * x;
  return std::sqrt(n);
}

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d += static_cast<double>(a[i]) * b[i];
  return d / (Norm(a) * Norm(b));
}

// llama.cpp's llama-embedding on `model`: one normalised vector per prompt.
std::vector<std::vector<float>> Reference(const std::string& model, const std::string& pooling,
                                          const std::vector<std::string>& prompts) {
  std::string joined;
  for (const auto& p : prompts) joined += (joined.empty() ? "" : "|") + p;
  const std::string cmd = "GGML_BACKEND_PATH='" + CpuBackend().path + "' " +
                          MODELSEAL_LLAMA_DIR "/prefix/bin/llama-embedding -m '" + model +
                          "' -t 2 -c 512 --pooling " + pooling +
                          " --embd-normalize 2 --embd-output-format array --embd-separator '|'"
                          " -p '" +
                          joined + "' 2>&1";
  // The tool prints its vectors through llama.cpp's asynchronous logger, which at times
  // exits (status 0) before it wrote all of them when the machine is busy: a few tries.
  std::string out;
  for (int attempt = 0; attempt < 5; ++attempt) {
    out.clear();
    if (std::FILE* p = popen(cmd.c_str(), "r")) {
      char buf[65536];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
      pclose(p);
    }
    const auto at = out.find("[[");
    const auto end = at == std::string::npos ? at : out.find("]]", at);
    if (end == std::string::npos) continue;
    const json j = json::parse(out.substr(at, end + 2 - at), nullptr, false);
    if (j.is_array()) return j.get<std::vector<std::vector<float>>>();
  }
  ADD_FAILURE() << cmd << "\n" << out.substr(out.size() > 2000 ? out.size() - 2000 : 0);
  return {};
}

class EmbedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TestDir("embed");
    for (const char* pooling : {"", "mean"}) {
      TestModelOptions o = TinyModel();
      o.dim = 64;
      o.layers = 2;
      o.pooling = pooling;
      ASSERT_TRUE(WriteTestModel(Path(pooling), o).ok());
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Path(const std::string& pooling) {
    return (dir_->path() / ("m" + pooling + ".gguf")).string();
  }
  void Load(const std::string& name, const std::string& pooling) {
    LoadOptions lo;
    lo.name = name;
    lo.threads = 2;
    auto r = engine_.LoadFile(Path(pooling), lo);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }

  Engine engine_;
  static TestDir* dir_;
};
TestDir* EmbedTest::dir_ = nullptr;

const std::vector<std::string> kInputs = {"The sky is blue because of Rayleigh scattering.",
                                          "Bonjour", "a much longer input " + std::string(300, 'x'),
                                          "The sky is blue because of Rayleigh scattering."};

TEST_F(EmbedTest, LastTokenForAChatModelNormalisedAsLlamaCppDoes) {
  Load("chat", "");
  EXPECT_EQ(engine_.Get("chat")->pooling, "none");
  auto r = engine_.Embed("chat", kInputs);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->embeddings.size(), kInputs.size());
  for (const auto& e : r->embeddings) {
    EXPECT_EQ(e.size(), 64u);
    EXPECT_NEAR(Norm(e), 1.0, 1e-5);
  }
  EXPECT_GT(r->prompt_tokens, 20);
  // The same input, the same vector; different inputs, different vectors.
  EXPECT_GT(Cosine(r->embeddings[0], r->embeddings[3]), 0.99999);
  EXPECT_LT(Cosine(r->embeddings[0], r->embeddings[1]), 0.999);
  // Batched or one by one: the same.
  for (size_t i = 0; i < kInputs.size(); ++i) {
    auto one = engine_.Embed("chat", {kInputs[i]});
    ASSERT_TRUE(one.ok());
    EXPECT_GT(Cosine(one->embeddings[0], r->embeddings[i]), 0.99999) << i;
  }
  const auto ref = Reference(Path(""), "last", {kInputs[0], kInputs[1]});
  ASSERT_EQ(ref.size(), 2u) << "llama-embedding gave no vectors";
  EXPECT_GT(Cosine(ref[0], r->embeddings[0]), 0.9999);
  EXPECT_GT(Cosine(ref[1], r->embeddings[1]), 0.9999);
}

TEST_F(EmbedTest, TheModelsDeclaredPooling) {
  Load("mean", "mean");
  EXPECT_EQ(engine_.Get("mean")->pooling, "mean");
  auto r = engine_.Embed("mean", {kInputs[0], kInputs[1]});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  const auto ref = Reference(Path("mean"), "mean", {kInputs[0], kInputs[1]});
  ASSERT_EQ(ref.size(), 2u);
  EXPECT_GT(Cosine(ref[0], r->embeddings[0]), 0.9999);
  EXPECT_GT(Cosine(ref[1], r->embeddings[1]), 0.9999);
  // Mean and last pooling of the same weights differ.
  Load("chat", "");
  auto last = engine_.Embed("chat", {kInputs[0]});
  ASSERT_TRUE(last.ok());
  EXPECT_LT(Cosine(last->embeddings[0], r->embeddings[0]), 0.999);
}

TEST_F(EmbedTest, BadInputsAndLongOnes) {
  Load("chat", "");
  EXPECT_EQ(engine_.Embed("chat", {}).error().reason, "invalid-argument");
  EXPECT_EQ(engine_.Embed("chat", {"ok", ""}).error().reason, "invalid-argument");
  EXPECT_EQ(engine_.Embed("nope", {"x"}).error().reason, "model-not-found");
  std::string huge;
  for (int i = 0; i < 700; ++i) huge += "word" + std::to_string(i % 10) + " ";
  EmbedOptions strict;
  strict.truncate = false;
  auto refused = engine_.Embed("chat", {huge}, strict);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().reason, "prompt-too-long");
  auto cut = engine_.Embed("chat", {huge});
  ASSERT_TRUE(cut.ok()) << cut.error().ToString();
  EXPECT_EQ(cut->prompt_tokens, 512);
  std::atomic<bool> cancel{true};
  EXPECT_EQ(engine_.Embed("chat", {"x"}, {}, &cancel).error().reason, "cancelled");
}

}  // namespace
}  // namespace modelseal::engine
