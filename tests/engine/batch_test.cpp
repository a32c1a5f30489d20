// Continuous batching, the prompt cache and per-request context limits.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <thread>

#include "engine/batch.h"
#include "engine/engine.h"
#include "tests/engine/test_models.h"
#include "tests/support/wait.h"

namespace modelseal::engine {
namespace {

class BatchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TestDir("batch");
    TestModelOptions o;
    o.layers = 2;
    o.dim = 64;
    o.context_length = 1024;
    auto r = WriteTestModel(Model(), o);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Model() { return (dir_->path() / "tiny.gguf").string(); }

  static void Load(Engine& e, int parallel = 4, uint32_t ctx = 1024) {
    LoadOptions lo;
    lo.name = "tiny";
    lo.parallel = parallel;
    lo.context_length = ctx;
    lo.threads = 2;
    auto r = e.LoadFile(Model(), lo);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }

  // A chat turn: the answer's text and its stats.
  static std::string Turn(Engine& e, const std::vector<ChatMessage>& msgs, const SamplingOptions& s,
                          GenerateStats* st = nullptr) {
    std::string out;
    auto r = e.Chat("tiny", msgs, s, [&](std::string_view p) {
      out.append(p);
      return true;
    });
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    if (r.ok() && st) *st = *r;
    return out;
  }

  // Words enough for a prompt of about `n` tokens.
  static std::string Words(int n, const std::string& topic) {
    std::string s;
    for (int i = 0; i < n; ++i) s += topic + std::to_string(i % 10) + " ";
    return s;
  }

  static TestDir* dir_;
};
TestDir* BatchTest::dir_ = nullptr;

SamplingOptions Seeded(uint32_t seed, int max_tokens) {
  SamplingOptions s;
  s.temperature = 1.0f;
  s.seed = seed;
  s.max_tokens = max_tokens;
  return s;
}

TEST_F(BatchTest, ConcurrentRequestsDecodeTogether) {
  Engine e;
  Load(e);
  std::latch start(4);
  std::vector<GenerateStats> st(4);
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      start.arrive_and_wait();
      Turn(e, {{"user", "stream " + std::to_string(i)}}, Seeded(static_cast<uint32_t>(i), 96),
           &st[static_cast<size_t>(i)]);
    });
  }
  for (auto& t : ts) t.join();
  for (const auto& s : st) EXPECT_EQ(s.completion_tokens, 96);
  const EngineCounters c = e.counters();
  // Alone, each step would decode one token; together, up to four.
  EXPECT_GT(c.batch_tokens, c.batch_steps + c.batch_steps / 2)
      << c.batch_tokens << " tokens in " << c.batch_steps << " steps";
}

TEST_F(BatchTest, ASeededRequestAloneIsReproducibleWithOrWithoutTheCache) {
  const std::vector<ChatMessage> msgs = {{"user", Words(160, "alpha")}};
  const SamplingOptions s = Seeded(7, 48);
  Engine e;
  Load(e);
  GenerateStats first, second;
  const std::string a = Turn(e, msgs, s, &first);
  const std::string b = Turn(e, msgs, s, &second);
  ASSERT_GT(first.prompt_tokens, 2 * kPromptChunk);
  EXPECT_EQ(first.cached_tokens, 0);
  // Whole chunks of the same prompt came from the cache.
  EXPECT_EQ(second.cached_tokens, ((first.prompt_tokens - 1) / kPromptChunk) * kPromptChunk);
  EXPECT_EQ(b, a);
  Engine fresh;
  Load(fresh);
  EXPECT_EQ(Turn(fresh, msgs, s), a);
}

TEST_F(BatchTest, NextTurnReusesTheConversationAndAnswersAsWithoutCache) {
  std::vector<ChatMessage> conv = {{"system", "You answer questions."},
                                   {"user", Words(150, "history")}};
  Engine e;
  Load(e);
  GenerateStats t1, t2;
  const std::string answer = Turn(e, conv, Seeded(3, 24), &t1);
  conv.push_back({"assistant", answer});
  conv.push_back({"user", "And then?"});
  const std::string next = Turn(e, conv, Seeded(4, 24), &t2);
  EXPECT_GT(t2.prompt_tokens, t1.prompt_tokens);
  EXPECT_GE(t2.cached_tokens, (t1.prompt_tokens / kPromptChunk) * kPromptChunk);
  EXPECT_EQ(t2.cached_tokens % kPromptChunk, 0);
  // The same turn on an engine that never saw the conversation: the same answer.
  Engine fresh;
  Load(fresh);
  GenerateStats cold;
  EXPECT_EQ(Turn(fresh, conv, Seeded(4, 24), &cold), next);
  EXPECT_EQ(cold.cached_tokens, 0);
}

TEST_F(BatchTest, EachSlotKeepsItsConversation) {
  Engine e;
  Load(e, 2);
  const std::vector<ChatMessage> a = {{"user", Words(140, "apple")}};
  const std::vector<ChatMessage> b = {{"user", Words(140, "banana")}};
  GenerateStats sa, sb, sa2, sb2;
  Turn(e, a, Seeded(1, 4), &sa);
  Turn(e, b, Seeded(1, 4), &sb);
  Turn(e, a, Seeded(1, 4), &sa2);
  Turn(e, b, Seeded(1, 4), &sb2);
  EXPECT_EQ(sb.cached_tokens, 0);  // b took the other slot, not a's
  EXPECT_GT(sa2.cached_tokens, 0);
  EXPECT_GT(sb2.cached_tokens, 0);
}

TEST_F(BatchTest, RequestsWaitForAFreeSlot) {
  Engine e;
  Load(e, 1);
  std::vector<GenerateStats> st(3);
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&, i] {
      Turn(e, {{"user", "q" + std::to_string(i)}}, Seeded(static_cast<uint32_t>(i), 20),
           &st[static_cast<size_t>(i)]);
    });
  }
  for (auto& t : ts) t.join();
  for (const auto& s : st) EXPECT_EQ(s.completion_tokens, 20);
  EXPECT_EQ(e.counters().batch_tokens, e.counters().batch_steps);  // one slot: one at a time
}

TEST_F(BatchTest, AQueuedRequestCanBeCancelled) {
  Engine e;
  Load(e, 1);
  std::atomic<bool> holding{true}, started{false};
  std::thread first([&] {
    SamplingOptions s = Seeded(1, 400);
    auto r = e.Chat("tiny", {{"user", "first"}}, s, [&](std::string_view) {
      started = true;
      return holding.load();  // returns false once the second request was cancelled
    });
    EXPECT_TRUE(r.ok());
  });
  ASSERT_TRUE(testenv::SpinUntil([&] { return started.load(); }))
      << "the first request never streamed";
  std::atomic<bool> cancel{true};
  auto r = e.Chat(
      "tiny", {{"user", "second"}}, Seeded(2, 10), [](std::string_view) { return true; }, &cancel);
  holding = false;
  first.join();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->finish_reason, "cancelled");
  EXPECT_EQ(r->completion_tokens, 0);
}

TEST_F(BatchTest, ContextLimitsPerRequest) {
  Engine e;
  Load(e, 2, 512);
  const std::vector<ChatMessage> msgs = {{"user", "Count with me"}};
  auto rendered = e.RenderChat("tiny", {msgs});
  ASSERT_TRUE(rendered.ok()) << rendered.error().ToString();
  const int n = rendered->prompt_tokens;

  // num_ctx: prompt and answer together; the answer ends at the limit.
  SamplingOptions s = Seeded(1, -1);
  s.num_ctx = static_cast<uint32_t>(n + 5);
  GenerateStats st;
  Turn(e, msgs, s, &st);
  EXPECT_EQ(st.prompt_tokens, n);
  EXPECT_EQ(st.completion_tokens, 5);
  EXPECT_EQ(st.finish_reason, "length");

  // A prompt that leaves no room: refused before anything runs, with the reason.
  s.num_ctx = static_cast<uint32_t>(n);
  auto r = e.Chat("tiny", msgs, s, [](std::string_view) { return true; });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "prompt-too-long");
  auto early = e.RenderChat("tiny", {msgs}, static_cast<uint32_t>(n));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().reason, "prompt-too-long");
  EXPECT_NE(early.error().message.find(std::to_string(n) + " tokens"), std::string::npos);

  // More than the model was trained for: refused; more than the slot: the slot's size.
  s.num_ctx = 100000;
  r = e.Chat("tiny", msgs, s, [](std::string_view) { return true; });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "invalid-argument");
  s.num_ctx = 1000;  // trained 1024, loaded 512
  s.max_tokens = 8;
  Turn(e, msgs, s, &st);
  EXPECT_EQ(st.completion_tokens, 8);

  // A prompt longer than the whole context.
  auto huge = e.Chat("tiny", {{"user", Words(600, "long")}}, Seeded(1, 4),
                     [](std::string_view) { return true; });
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().reason, "prompt-too-long");

  // max_tokens 0: nothing generated.
  Turn(e, msgs, Seeded(1, 0), &st);
  EXPECT_EQ(st.completion_tokens, 0);
  EXPECT_EQ(st.finish_reason, "length");
  EXPECT_EQ(e.counters().active, 0u);
}

}  // namespace
}  // namespace modelseal::engine
