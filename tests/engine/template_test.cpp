// The chat templates of the pinned llama.cpp release (models/templates/*.jinja), each
// put into a test model: the prompt the engine renders must equal what Python's jinja2
// renders (the reference implementation, set up as Hugging Face transformers renders
// chat templates: render_template.py) for the same messages.
//
// What the engine adds on purpose, and the expected values therefore account for:
// * a leading BOS text is not doubled: when the vocabulary adds BOS itself, the
//   template's own leading bos_token is dropped from the text (as llama-server);
// * datetime / date_string are set to the day the prompt is made (as llama-server).
// Which cases apply follows from the template (asked of Python, not of the engine):
// system messages only where the template renders a system message's text, typed
// content parts where it renders only those, tools where it mentions tools.
#include <gtest/gtest.h>
#include <llama.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/chat.h"
#include "engine/engine.h"
#include "tests/engine/test_models.h"

namespace modelseal::engine {
namespace {

namespace fs = std::filesystem;
// Insertion order, as the chat library keeps it (tools are rendered with tojson).
using json = nlohmann::ordered_json;

std::string RunCommand(const std::string& cmd) {
  std::string out;
  std::FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string Format(std::time_t t, const char* fmt) {
  char buf[64];
  std::strftime(buf, sizeof(buf), fmt, std::localtime(&t));
  return buf;
}

struct Template {
  std::string name, path, source;
  std::string model;  // test model file with it
  bool system = false, typed = false, tools = false;
};

// A conversation as the engine takes it and as the reference renders it.
struct Case {
  std::string label;
  std::vector<ChatMessage> messages;
  bool tools = false;
};

const Tool kWeather{"get_weather", "Get the current weather in a city",
                    R"({"type":"object","properties":{"city":{"type":"string",)"
                    R"("description":"The city"}},"required":["city"]})"};

json ToolsJson() {
  return json::array({{{"type", "function"},
                       {"function",
                        {{"name", kWeather.name},
                         {"description", kWeather.description},
                         {"parameters", json::parse(kWeather.parameters)}}}}});
}

std::vector<Case> CasesFor(const Template& t) {
  std::vector<Case> cases;
  cases.push_back({"user", {{"user", "Hello there"}}, false});
  if (t.system) {
    cases.push_back(
        {"system+user", {{"system", "You are terse."}, {"user", "What is 2+2?"}}, false});
  }
  std::vector<ChatMessage> multi;
  if (t.system) multi.push_back({"system", "You are a helpful assistant."});
  multi.push_back({"user", "Hi"});
  multi.push_back({"assistant", "Hello! How can I help?"});
  multi.push_back({"user", "Tell me a joke."});
  cases.push_back({"multi-turn", multi, false});
  if (t.tools) cases.push_back({"tools", {{"user", "What is the weather in Paris?"}}, true});
  return cases;
}

json MessagesJson(const std::vector<ChatMessage>& ms, bool typed) {
  json out = json::array();
  for (const auto& m : ms) {
    json content = typed ? json::array({{{"type", "text"}, {"text", m.content}}}) : json(m.content);
    out.push_back({{"role", m.role}, {"content", content}});
  }
  return out;
}

class TemplateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TestDir("templates");
    templates_ = new std::vector<Template>();
    const fs::path src = fs::path(MODELSEAL_LLAMA_DIR) / "src/models/templates";
    for (const auto& e : fs::directory_iterator(src)) {
      if (e.path().extension() != ".jinja") continue;
      Template t;
      t.name = e.path().stem().string();
      t.path = e.path().string();
      std::ifstream f(t.path);
      t.source.assign(std::istreambuf_iterator<char>(f), {});
      t.tools = t.source.find("tools") != std::string::npos;
      templates_->push_back(std::move(t));
    }
    std::sort(templates_->begin(), templates_->end(),
              [](const Template& a, const Template& b) { return a.name < b.name; });
  }
  static void TearDownTestSuite() {
    delete templates_;
    delete dir_;
  }

  // Asks render_template.py; `jobs` as it documents.
  static json Reference(const json& jobs, std::time_t now) {
    const std::string req = (dir_->path() / "request.json").string();
    std::ofstream(req) << json{{"now", now}, {"jobs", jobs}}.dump();
    const std::string out = RunCommand(
        "/usr/bin/python3 " MODELSEAL_SOURCE_DIR "/tests/engine/render_template.py " + req);
    return json::parse(out, nullptr, false);
  }

  static TestDir* dir_;
  static std::vector<Template>* templates_;
};
TestDir* TemplateTest::dir_ = nullptr;
std::vector<Template>* TemplateTest::templates_ = nullptr;

TEST_F(TemplateTest, ReleaseTemplatesRenderAsJinja2Does) {
  ASSERT_GE(templates_->size(), 40u) << "the release's templates are missing from the cache";
  // One tiny test model per template; their vocabulary's BOS/EOS are what the
  // templates see.
  json probe_jobs = json::array();
  std::vector<ChatTemplatesPtr> loaded;
  std::vector<TemplateInfo> infos;
  struct ModelFree {
    void operator()(llama_model* m) const { llama_model_free(m); }
  };
  std::vector<std::unique_ptr<llama_model, ModelFree>> models;
  int patched = 0;
  for (auto& t : *templates_) {
    TestModelOptions o = TinyModel();
    o.chat_template = t.source;
    t.model = (dir_->path() / (t.name + ".gguf")).string();
    auto w = WriteTestModel(t.model, o);
    ASSERT_TRUE(w.ok()) << w.error().ToString();
    // The tokenizer and metadata are what a template needs (vocab_only: no weights).
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    models.emplace_back(llama_model_load_from_file(t.model.c_str(), mp));
    ASSERT_NE(models.back(), nullptr) << t.name;
    TemplateInfo info;
    auto tmpl = LoadChatTemplates(models.back().get(), &info);
    ASSERT_TRUE(tmpl.ok()) << t.name << ": " << tmpl.error().ToString();
    EXPECT_FALSE(info.is_default) << t.name;
    // The library drops one trailing newline, as jinja2 does by default.
    std::string source = t.source;
    if (!source.empty() && source.back() == '\n') source.pop_back();
    // llama.cpp also switches off a few checks of known templates (their
    // raise_exception conditions become `false`); everything else is the model's own.
    if (info.source != source) {
      ++patched;
      EXPECT_NE(info.source.find("if false"), std::string::npos) << t.name;
      EXPECT_EQ(info.source.size() + 300 > source.size(), true) << t.name;
    }
    loaded.push_back(std::move(*tmpl));
    infos.push_back(info);
    fs::remove(t.model);
    probe_jobs.push_back({{"template", t.path},
                          {"bos_token", info.bos_token},
                          {"eos_token", info.eos_token},
                          {"cases", json::array()}});
  }
  EXPECT_LE(patched, 3);
  const std::time_t now = std::time(nullptr);
  const json probes = Reference(probe_jobs, now);
  ASSERT_TRUE(probes.is_object()) << "render_template.py failed (is python3-jinja2 installed?)";
  for (size_t i = 0; i < templates_->size(); ++i) {
    (*templates_)[i].system = probes["system"][i];
    (*templates_)[i].typed = probes["typed"][i];
  }

  // The engine's prompts, made at `now` (strftime_now), and the reference's.
  const auto tp = std::chrono::system_clock::from_time_t(now);
  json jobs = json::array();
  std::vector<std::vector<Result<ChatPlan>>> ours;
  for (size_t i = 0; i < templates_->size(); ++i) {
    const Template& t = (*templates_)[i];
    json cases = json::array();
    ours.emplace_back();
    for (const Case& c : CasesFor(t)) {
      ChatRequest req;
      req.messages = c.messages;
      if (c.tools) req.tools = {kWeather};
      ours.back().push_back(RenderChat(*loaded[i], req, tp));
      json jc = {{"messages", MessagesJson(c.messages, t.typed)},
                 {"context",
                  {{"datetime", Format(now, "%b %d %Y")},
                   {"date_string", Format(now, "%d %b %Y")},
                   {"enable_thinking", true}}}};
      // FireFunction v2's template reads a `functions` variable nobody passes: Jinja in
      // llama.cpp renders an undefined variable as nothing, where jinja2 raises.
      if (t.name.find("firefunction") != std::string::npos) jc["context"]["functions"] = "";
      if (c.tools) jc["tools"] = ToolsJson();
      cases.push_back(jc);
    }
    jobs.push_back({{"template", t.path},
                    {"bos_token", infos[i].bos_token},
                    {"eos_token", infos[i].eos_token},
                    {"cases", cases}});
  }
  const json ref = Reference(jobs, now);
  ASSERT_TRUE(ref.is_object());
  int compared = 0, python_only = 0;
  for (size_t i = 0; i < templates_->size(); ++i) {
    const Template& t = (*templates_)[i];
    const auto cases = CasesFor(t);
    for (size_t k = 0; k < cases.size(); ++k) {
      const json& r = ref["results"][i][k];
      const auto& mine = ours[i][k];
      SCOPED_TRACE(t.name + " / " + cases[k].label);
      if (!r["ok"].get<bool>()) {
        const std::string error = r["error"];
        if (error.rfind("TemplateError", 0) != 0) {
          // Python itself failed (a template that serialises a generator with tojson),
          // not the template's own raise_exception: nothing to compare.
          ++python_only;
          continue;
        }
        // The template refused these messages: so must the engine, with its words.
        ASSERT_FALSE(mine.ok()) << "jinja2: " << error;
        EXPECT_EQ(mine.error().reason, "template-error");
        continue;
      }
      ASSERT_TRUE(mine.ok()) << mine.error().ToString();
      std::string expected = r["prompt"];
      const std::string& bos = infos[i].bos_token;
      if (!bos.empty() && expected.rfind(bos, 0) == 0) expected.erase(0, bos.size());
      EXPECT_EQ(mine->prompt, expected);
      ++compared;
    }
  }
  EXPECT_GE(compared, 150);
  EXPECT_LE(python_only, 2);
}

}  // namespace
}  // namespace modelseal::engine
