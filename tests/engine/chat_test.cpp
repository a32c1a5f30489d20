// Chat templates through llama.cpp's common chat library: the default template, errors
// a template raises, tools in the prompt and tool calls read back from the answer.
#include <gtest/gtest.h>
#include <llama.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/chat.h"
#include "engine/engine.h"
#include "tests/engine/test_models.h"

namespace modelseal::engine {
namespace {

using nlohmann::json;

std::string ReleaseTemplate(const std::string& name) {
  std::ifstream f(std::string(MODELSEAL_LLAMA_DIR) + "/src/models/templates/" + name + ".jinja");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

const Tool kWeather{"get_weather", "Get the current weather in a city",
                    R"({"type":"object","properties":{"city":{"type":"string",)"
                    R"("enum":["Paris","Berlin"]}},"required":["city"]})"};

class ChatTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new TestDir("chat"); }
  static void TearDownTestSuite() { delete dir_; }

  // Loads a tiny model with `tmpl` ("none": no template) as `name`.
  void LoadWith(const std::string& name, const std::string& tmpl) {
    TestModelOptions o = TinyModel();
    o.chat_template = tmpl;
    const std::string path = (dir_->path() / (name + ".gguf")).string();
    ASSERT_TRUE(WriteTestModel(path, o).ok());
    LoadOptions lo;
    lo.name = name;
    auto r = engine_.LoadFile(path, lo);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }

  Engine engine_;
  static TestDir* dir_;
};
TestDir* ChatTest::dir_ = nullptr;

TEST_F(ChatTest, AModelWithoutATemplateGetsChatML) {
  LoadWith("plain", "none");
  auto info = engine_.Get("plain");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->default_template);
  EXPECT_NE(info->chat_template.find("<|im_start|>"), std::string::npos);
  auto p = engine_.ApplyTemplate(
      "plain", {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}});
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_EQ(*p,
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n"
            "<|im_start|>assistant\n");
  SamplingOptions s;
  s.max_tokens = 4;
  auto r = engine_.Chat("plain", {{"user", "Hi"}}, s, [](std::string_view) { return true; });
  ASSERT_TRUE(r.ok()) << r.error().ToString();
}

TEST_F(ChatTest, ATemplateThatRaisesGivesItsMessageAsABadRequest) {
  // (A template that refuses system messages would not do: like llama-server, the
  // library then folds the system message into the first user message.)
  LoadWith("strict",
           "{% for m in messages %}{% if loop.index0 > 0 and "
           "m['role'] == messages[loop.index0 - 1]['role'] %}"
           "{{ raise_exception('Conversation roles must alternate user/assistant/user/...') }}"
           "{% endif %}{{ m['content'] }}{% endfor %}");
  auto r = engine_.Chat("strict", {{"user", "x"}, {"user", "y"}}, SamplingOptions{},
                        [](std::string_view) { return true; });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "template-error");
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("Conversation roles must alternate user/assistant/user/..."),
            std::string::npos)
      << r.error().message;
  auto ok = engine_.RenderChat("strict", {{{"user", "y"}}});
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->prompt, "y");
  EXPECT_EQ(engine_.counters().failed, 1u);
}

TEST_F(ChatTest, ToolsReachTheTemplate) {
  LoadWith("qwen", ReleaseTemplate("Qwen-Qwen2.5-7B-Instruct"));
  auto info = engine_.Get("qwen");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->supports_tools);
  ChatRequest req;
  req.messages = {{"user", "Weather in Paris?"}};
  req.tools = {kWeather};
  auto p = engine_.RenderChat("qwen", req);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_NE(p->prompt.find("<tools>"), std::string::npos) << p->prompt;
  EXPECT_NE(p->prompt.find("\"name\": \"get_weather\""), std::string::npos) << p->prompt;

  // A turn that called a tool, and the tool's answer, as the model expects them.
  ChatMessage call{"assistant", ""};
  call.tool_calls = {{"call_1", "get_weather", R"({"city": "Paris"})"}};
  ChatMessage result{"tool", R"({"temperature": 21})"};
  result.tool_call_id = "call_1";
  req.messages = {{"user", "Weather in Paris?"}, call, result};
  p = engine_.RenderChat("qwen", req);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_NE(p->prompt.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                           "\"Paris\"}}\n</tool_call>"),
            std::string::npos)
      << p->prompt;
  EXPECT_NE(p->prompt.find("<tool_response>\n{\"temperature\": 21}\n</tool_response>"),
            std::string::npos)
      << p->prompt;
}

TEST_F(ChatTest, ARequiredToolCallIsReadBackStreamedAndWhole) {
  // Two things keep a random test model from writing a call. The forced-call grammar
  // starts with the generation prompt (<|im_start|>assistant\n), which llama.cpp's
  // sampler feeds to the grammar as tokens; the test models' Llama 2 SentencePiece
  // vocabulary tokenises it with a leading space, which the grammar refuses. And with
  // Qwen2's vocabulary (and Qwen2.5's <tool_call> tokens in place of its padding) the
  // grammar of this release still lets the answer start with any text up to
  // "<tool_call>\n", which a random model writes until max_tokens; a logit bias on
  // <tool_call> makes it repeat that token instead. A model trained to call is needed.
  GTEST_SKIP() << "needs a model that writes tool calls";
  LoadWith("qwen", ReleaseTemplate("Qwen-Qwen2.5-7B-Instruct"));
  ChatRequest req;
  req.messages = {{"user", "Weather in Paris?"}};
  req.tools = {kWeather};
  req.tool_choice = ToolChoice::kRequired;
  SamplingOptions s;
  s.seed = 11;
  s.max_tokens = 200;
  std::string content;
  std::vector<ToolCallDelta> deltas;
  auto r = engine_.Chat("qwen", req, s, [&](const ChatDelta& d) {
    content += d.content;
    deltas.insert(deltas.end(), d.tool_calls.begin(), d.tool_calls.end());
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // The grammar forced a call; the random model only chose the city.
  ASSERT_EQ(r->message.tool_calls.size(), 1u) << r->message.content;
  const ToolCall& tc = r->message.tool_calls[0];
  EXPECT_EQ(tc.name, "get_weather");
  EXPECT_EQ(tc.id.rfind("call_", 0), 0u) << tc.id;
  const json args = json::parse(tc.arguments, nullptr, false);
  ASSERT_TRUE(args.is_object()) << tc.arguments;
  ASSERT_TRUE(args.contains("city"));
  EXPECT_TRUE(args["city"] == "Paris" || args["city"] == "Berlin") << args;
  // Streamed: the first delta names the call, the rest add up to its arguments.
  ASSERT_FALSE(deltas.empty());
  EXPECT_EQ(deltas[0].index, 0u);
  EXPECT_EQ(deltas[0].id, tc.id);
  EXPECT_EQ(deltas[0].name, "get_weather");
  std::string streamed;
  for (size_t i = 1; i < deltas.size(); ++i) {
    EXPECT_EQ(deltas[i].index, 0u);
    EXPECT_TRUE(deltas[i].name.empty());
    streamed += deltas[i].arguments;
  }
  EXPECT_EQ(deltas[0].arguments + streamed, tc.arguments);
  EXPECT_EQ(content, r->message.content);
}

// What the forced-call test above cannot get from a random model: the answer a Qwen2.5
// model writes when it calls a tool (the format its own template asks for: "a json
// object with function name and arguments within <tool_call></tool_call> XML tags"),
// read back by the library's parser for that template, streamed in small pieces and
// whole, with text before the call.
TEST_F(ChatTest, AQwenToolCallAnswerIsReadBackStreamedAndWhole) {
  LoadWith("qwen", ReleaseTemplate("Qwen-Qwen2.5-7B-Instruct"));
  struct ModelFree {
    void operator()(llama_model* m) const { llama_model_free(m); }
  };
  llama_model_params mp = llama_model_default_params();
  mp.vocab_only = true;
  std::unique_ptr<llama_model, ModelFree> model(
      llama_model_load_from_file((dir_->path() / "qwen.gguf").string().c_str(), mp));
  ASSERT_NE(model, nullptr);
  TemplateInfo info;
  auto templates = LoadChatTemplates(model.get(), &info);
  ASSERT_TRUE(templates.ok()) << templates.error().ToString();
  ASSERT_TRUE(info.supports_tools);
  ChatRequest req;
  req.messages = {{"user", "Weather in Paris?"}};
  req.tools = {kWeather};
  auto plan = RenderChat(**templates, req, std::chrono::system_clock::now());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  ASSERT_NE(plan->syntax, nullptr);

  const std::string answer =
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"Paris\"}}\n</tool_call>";
  for (size_t piece : {size_t{3}, answer.size()}) {
    SCOPED_TRACE("pieces of " + std::to_string(piece) + " bytes");
    ChatReader reader(plan->syntax);
    std::vector<ChatDelta> deltas;
    for (size_t i = 0; i < answer.size(); i += piece) {
      for (auto& d : reader.Push(std::string_view(answer).substr(i, piece))) deltas.push_back(d);
    }
    for (auto& d : reader.Finish()) deltas.push_back(d);
    const ChatMessage& m = reader.message();
    // The text before the call, as llama-server returns it (the line break kept).
    EXPECT_EQ(m.content, "Let me check.\n");
    ASSERT_EQ(m.tool_calls.size(), 1u);
    EXPECT_EQ(m.tool_calls[0].name, "get_weather");
    EXPECT_EQ(json::parse(m.tool_calls[0].arguments), json({{"city", "Paris"}}));
    // The deltas add up to the message: its text, then one call named once.
    std::string content, arguments, name, id;
    for (const auto& d : deltas) {
      content += d.content;
      for (const auto& c : d.tool_calls) {
        EXPECT_EQ(c.index, 0u);
        if (!c.name.empty()) {
          EXPECT_TRUE(name.empty()) << "the call is named twice";
          name = c.name;
          id = c.id;
        }
        arguments += c.arguments;
      }
    }
    EXPECT_EQ(content, m.content);
    EXPECT_EQ(name, "get_weather");
    EXPECT_EQ(id, m.tool_calls[0].id);
    EXPECT_EQ(arguments, m.tool_calls[0].arguments);
  }
}

TEST_F(ChatTest, ToolChoiceNoneLeavesTheAnswerAsText) {
  LoadWith("qwen", ReleaseTemplate("Qwen-Qwen2.5-7B-Instruct"));
  ChatRequest req;
  req.messages = {{"user", "Weather in Paris?"}};
  req.tools = {kWeather};
  req.tool_choice = ToolChoice::kNone;
  SamplingOptions s;
  s.seed = 2;
  s.max_tokens = 12;
  std::string streamed;
  auto r = engine_.Chat("qwen", req, s, [&](const ChatDelta& d) {
    EXPECT_TRUE(d.tool_calls.empty());
    streamed += d.content;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->message.tool_calls.empty());
  EXPECT_EQ(r->message.content, streamed);
  EXPECT_EQ(r->stats.completion_tokens, 12);
}

}  // namespace
}  // namespace modelseal::engine
