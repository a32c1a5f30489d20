// Server tests over real HTTP on a loopback port (cpp-httplib client).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "engine/engine.h"
#include "server/server.h"
#include "tests/support/wait.h"

namespace modelseal::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("ms-server-" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    engine::TestModelOptions o;
    o.context_length = 2048;
    auto r = engine::WriteTestModel((*dir_ / "tiny.gguf").string(), o);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    engine::LoadOptions lo;
    lo.name = "tiny";
    lo.threads = 1;
    ASSERT_TRUE(engine_.LoadFile((*dir_ / "tiny.gguf").string(), lo).ok());
    ServerOptions so;
    so.port = 0;
    so.max_body_bytes = 64 * 1024;
    server_ = std::make_unique<Server>(engine_, so);
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(300, 0);
  }
  void TearDown() override { server_->Stop(); }

  httplib::Result Post(const std::string& path, const json& body) {
    return client_->Post(path.c_str(), body.dump(), "application/json");
  }

  static fs::path* dir_;
  engine::Engine engine_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
};
fs::path* ServerTest::dir_ = nullptr;

TEST(ParseListenTest, Forms) {
  EXPECT_EQ(*ParseListen("0.0.0.0:8080"), std::make_pair(std::string("0.0.0.0"), 8080));
  EXPECT_EQ(*ParseListen(":9"), std::make_pair(std::string("127.0.0.1"), 9));
  EXPECT_EQ(*ParseListen("11434"), std::make_pair(std::string("127.0.0.1"), 11434));
  EXPECT_EQ(ParseListen("host:99999").error().reason, "invalid-listen-address");
  EXPECT_FALSE(ParseListen("host:").ok());
}

TEST_F(ServerTest, OllamaErrorsHaveOllamasShape) {
  struct Case {
    std::string path, body;
    int status;
    std::string needle;
  } cases[] = {
      {"/api/chat", "{not json", 400, "not valid JSON"},
      {"/api/chat", "[1]", 400, "JSON object"},
      {"/api/chat", R"({"messages":[]})", 400, "model is required"},
      {"/api/chat", R"({"model":"nope","messages":[]})", 404, "'nope' not found"},
      {"/api/chat", R"({"model":"tiny","messages":[{"role":"robot","content":"x"}]})", 400, "role"},
      {"/api/chat", R"({"model":"tiny","messages":[],"stream":"yes"})", 400, "stream"},
      {"/api/chat", R"({"model":"tiny","messages":[],"options":{"temperature":"hot"}})", 400,
       "temperature"},
      {"/api/generate", R"({"model":"tiny","prompt":7})", 400, "prompt"},
      {"/api/show", R"({"model":"nope"})", 404, "not found"},
  };
  for (const auto& c : cases) {
    auto res = client_->Post(c.path.c_str(), c.body, "application/json");
    ASSERT_TRUE(res) << c.path;
    EXPECT_EQ(res->status, c.status) << c.body;
    const json j = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j["error"].is_string()) << res->body;
    EXPECT_NE(j["error"].get<std::string>().find(c.needle), std::string::npos) << res->body;
  }
  auto del = client_->Delete("/api/delete", R"({"model":"nope"})", "application/json");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 404);
}

TEST_F(ServerTest, OpenAiErrorsHaveOpenAisShape) {
  struct Case {
    std::string path, body;
    int status;
    json param;
  } cases[] = {
      {"/v1/chat/completions", "nope", 400, nullptr},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})", 400, "model"},
      {"/v1/chat/completions", R"({"model":"tiny","messages":[]})", 400, "messages"},
      {"/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"n":2})", 400, "n"},
      {"/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":5})", 400,
       "temperature"},
      {"/v1/chat/completions", R"({"model":"nope","messages":[{"role":"user","content":"x"}]})",
       404, "model"},
      {"/v1/completions", R"({"model":"tiny","prompt":["a","b"]})", 400, "prompt"},
  };
  for (const auto& c : cases) {
    auto res = client_->Post(c.path.c_str(), c.body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, c.status) << c.body;
    const json j = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j["error"].is_object()) << res->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    EXPECT_EQ(j["error"]["param"], c.param) << res->body;
  }
}

TEST_F(ServerTest, BodyLimitGives413InTheApisShape) {
  json big = {{"model", "tiny"},
              {"messages", {{{"role", "user"}, {"content", std::string(100000, 'a')}}}}};
  auto res = Post("/v1/chat/completions", big);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_TRUE(json::parse(res->body)["error"]["message"].is_string()) << res->body;
  res = Post("/api/chat", big);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_TRUE(json::parse(res->body)["error"].is_string()) << res->body;
}

TEST_F(ServerTest, OllamaStreamsNdjson) {
  json req = {{"model", "tiny"},
              {"messages", {{{"role", "user"}, {"content", "hi"}}}},
              {"options", {{"seed", 1}, {"num_predict", 10}}}};
  auto res = Post("/api/chat", req);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/x-ndjson");
  std::istringstream lines(res->body);
  std::string line, text;
  json last;
  int n = 0;
  while (std::getline(lines, line)) {
    last = json::parse(line);
    if (!last["done"].get<bool>()) text += last["message"]["content"].get<std::string>();
    ++n;
  }
  EXPECT_GT(n, 2);
  EXPECT_TRUE(last["done"].get<bool>());
  EXPECT_EQ(last["eval_count"], 10);
  EXPECT_EQ(last["done_reason"], "length");

  req["stream"] = false;
  res = Post("/api/chat", req);
  ASSERT_TRUE(res);
  EXPECT_EQ(json::parse(res->body)["message"]["content"], text);
}

TEST_F(ServerTest, OpenAiStreamsSse) {
  json req = {{"model", "tiny"},
              {"messages", {{{"role", "user"}, {"content", "hi"}}}},
              {"seed", 2},
              {"max_tokens", 8},
              {"stream", true}};
  auto res = Post("/v1/chat/completions", req);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  // Every event is one "data: " line and a blank line; each but the last is a chunk of
  // one completion, the last chunk carries the finish reason, and the stream ends
  // with [DONE].
  const std::string& b = res->body;
  std::vector<std::string> events;
  for (size_t at = 0; at < b.size();) {
    const size_t end = b.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << "unterminated event at " << at << ": " << b.substr(at);
    events.push_back(b.substr(at, end - at));
    at = end + 2;
  }
  ASSERT_GE(events.size(), 3u) << b;
  EXPECT_EQ(events.back(), "data: [DONE]");
  std::string id, text;
  int finishes = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].rfind("data: ", 0), 0u) << events[i];
    ASSERT_EQ(events[i].find('\n'), std::string::npos) << events[i];
    const json chunk = json::parse(events[i].substr(6));
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_EQ(chunk["model"], "tiny");
    if (id.empty()) id = chunk["id"];
    EXPECT_EQ(chunk["id"], id);
    ASSERT_EQ(chunk["choices"].size(), 1u) << events[i];
    const json& choice = chunk["choices"][0];
    if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (!choice["finish_reason"].is_null()) {
      ++finishes;
      EXPECT_EQ(i + 2, events.size()) << "finish_reason before the last chunk";
      EXPECT_TRUE(choice["finish_reason"] == "length" || choice["finish_reason"] == "stop")
          << choice["finish_reason"];
    }
  }
  EXPECT_EQ(finishes, 1);
  EXPECT_FALSE(text.empty());
}

// Opens a streaming request on a raw socket, reads a little, and hangs up.
// A raw connection that sent one POST, so the test can hang up whenever it likes.
int SendRaw(int port, const std::string& path, const std::string& body) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string req = "POST " + path +
                          " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

// Waits (up to 20 s) for no generation to be running.
void WaitIdle(engine::Engine& e) {
  for (int i = 0; i < 2000 && e.counters().active > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

TEST_F(ServerTest, DisconnectedClientStopsGeneration) {
  const int fd =
      SendRaw(server_->port(), "/api/generate",
              R"({"model":"tiny","prompt":"go","raw":true,"options":{"seed":1,"num_predict":-1}})");
  ASSERT_GE(fd, 0);
  // Read until a few tokens have streamed, so the generation is running.
  std::string got;
  char buf[512];
  size_t seen = 0;
  while (seen < 3) {
    const ssize_t n = testenv::ReadWithin(fd, buf, sizeof(buf));
    ASSERT_GT(n, 0) << "nothing streamed: " << got;
    got.append(buf, static_cast<size_t>(n));
    seen = 0;
    for (size_t at = got.find("\"response\""); at != std::string::npos;
         at = got.find("\"response\"", at + 1)) {
      ++seen;
    }
  }
  EXPECT_EQ(engine_.counters().active, 1u);
  close(fd);
  WaitIdle(engine_);
  EXPECT_EQ(engine_.counters().active, 0u);
  EXPECT_EQ(engine_.counters().cancelled, 1u);
  EXPECT_EQ(engine_.counters().completed, 0u);
}

// A request that answers only at the end writes nothing while it runs; the server
// still notices the hang-up (both APIs) and stops generating.
TEST_F(ServerTest, DisconnectedClientStopsNonStreamingGeneration) {
  const std::pair<const char*, const char*> requests[] = {
      {"/api/generate",
       R"({"model":"tiny","prompt":"go","raw":true,"stream":false,"options":{"num_predict":-1}})"},
      {"/api/chat",
       R"({"model":"tiny","messages":[{"role":"user","content":"go"}],"stream":false,"options":{"num_predict":-1}})"},
      {"/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"go"}],"max_tokens":100000})"},
      {"/v1/completions", R"({"model":"tiny","prompt":"go","max_tokens":100000})"},
  };
  uint64_t cancelled = 0;
  for (const auto& [path, body] : requests) {
    SCOPED_TRACE(path);
    const int fd = SendRaw(server_->port(), path, body);
    ASSERT_GE(fd, 0);
    for (int i = 0; i < 2000 && engine_.counters().active == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(engine_.counters().active, 1u);
    close(fd);
    WaitIdle(engine_);
    EXPECT_EQ(engine_.counters().active, 0u);
    EXPECT_EQ(engine_.counters().cancelled, ++cancelled);
    EXPECT_EQ(engine_.counters().completed, 0u);
  }
}

// Integers must be JSON integers in range; messages print numbers as people write them.
TEST_F(ServerTest, OpenAiNumbersAreCheckedBeforeConversion) {
  const json base = {
      {"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}, {"max_tokens", 1}};
  struct Case {
    const char* field;
    json value;
    std::string needle;
  } bad[] = {
      {"max_tokens", 1.5, "integer"},
      {"max_tokens", 0, "range"},
      {"max_completion_tokens", 2.5, "integer"},
      {"n", 1.5, "integer"},
      {"seed", 1.5, "integer"},
      {"seed", json::parse("9223372036854775808"), "range"},
      {"seed", 1e300, "integer"},
      {"top_k", 1e300, "integer"},
      {"temperature", 5, "between 0 and 2, not 5"},
      {"top_p", -0.5, "between 0 and 1, not -0.5"},
  };
  for (const auto& c : bad) {
    json req = base;
    req[c.field] = c.value;
    auto res = Post("/v1/chat/completions", req);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << req.dump();
    const json e = json::parse(res->body)["error"];
    EXPECT_EQ(e["param"], c.field) << res->body;
    EXPECT_NE(e["message"].get<std::string>().find(c.needle), std::string::npos) << res->body;
    EXPECT_EQ(e["message"].get<std::string>().find(".000000"), std::string::npos) << res->body;
  }
  for (const json& seed :
       {json::parse("-9223372036854775808"), json::parse("9223372036854775807")}) {
    json req = base;
    req["seed"] = seed;
    auto res = Post("/v1/chat/completions", req);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
  }
}

// Content parts whose fields have other types than OpenAI documents are a 400 naming
// messages (a numeric "type" once threw out of the parser: found by fuzzing).
TEST_F(ServerTest, OpenAiContentPartsOfOtherTypesAreRefused) {
  for (const json& part : {json{{"type", 1}, {"text", "x"}}, json{{"type", "text"}, {"text", 2}},
                           json{{"type", nullptr}}, json("text")}) {
    const json req = {{"model", "tiny"},
                      {"max_tokens", 1},
                      {"messages", {{{"role", "user"}, {"content", json::array({part})}}}}};
    auto res = Post("/v1/chat/completions", req);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << req.dump() << " -> " << res->body;
    const json e = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(e.is_object() && e.contains("error")) << res->body;
    EXPECT_EQ(e["error"]["param"], "messages") << res->body;
  }
}

TEST_F(ServerTest, OllamaFieldsHaveTheirDocumentedTypes) {
  const json base = {{"model", "tiny"},
                     {"messages", {{{"role", "user"}, {"content", "x"}}}},
                     {"stream", false},
                     {"options", {{"num_predict", 1}}}};
  const std::pair<json, std::string> bad[] = {
      {{{"options", {{"top_k", 1e300}}}}, "top_k"},
      {{{"options", {{"top_k", 1.5}}}}, "top_k"},
      {{{"options", {{"seed", "x"}}}}, "seed"},
      {{{"options", {{"num_predict", 1e19}}}}, "num_predict"},
      {{{"options", {{"temperature", 1e300}}}}, "temperature"},
      {{{"options", {{"stop", 5}}}}, "stop"},
      {{{"options", {{"num_ctx", "big"}}}}, "num_ctx"},
      {{{"options", {{"use_mmap", 1}}}}, "use_mmap"},
      {{{"format", 5}}, "format"},
      {{{"keep_alive", json::array()}}, "keep_alive"},
      {{{"think", 3}}, "think"},
      {{{"messages", {{{"role", "user"}, {"content", "x"}, {"images", "x"}}}}}, "images"},
      {{{"messages", {{{"role", "user"}, {"content", "x"}, {"images", {"aGk="}}}}}}, "images"},
  };
  for (const auto& [patch, needle] : bad) {
    json req = base;
    req.merge_patch(patch);
    auto res = Post("/api/chat", req);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << req.dump();
    const json j = json::parse(res->body);
    ASSERT_TRUE(j["error"].is_string()) << res->body;
    EXPECT_NE(j["error"].get<std::string>().find(needle), std::string::npos) << res->body;
  }
  json good = base;
  good.merge_patch({{"format", "json"},
                    {"keep_alive", "5m"},
                    {"think", false},
                    {"options", {{"num_ctx", 512}, {"stop", {"a"}}, {"temperature", 0.5}}}});
  auto res = Post("/api/chat", good);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  good["keep_alive"] = 300;
  res = Post("/api/generate", {{"model", "tiny"},
                               {"prompt", "x"},
                               {"stream", false},
                               {"keep_alive", 300},
                               {"options", {{"num_predict", 1}}}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(ServerTest, LatestTagNamesTheSameModel) {
  auto res = Post("/api/chat", {{"model", "tiny:latest"},
                                {"messages", {{{"role", "user"}, {"content", "x"}}}},
                                {"stream", false},
                                {"options", {{"num_predict", 1}}}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["model"], "tiny:latest");
  res = Post("/v1/chat/completions", {{"model", "tiny:latest"},
                                      {"messages", {{{"role", "user"}, {"content", "x"}}}},
                                      {"max_tokens", 1}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  res = Post("/api/show", {{"model", "tiny:latest"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = Post("/api/show", {{"model", "tiny:7b"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

// Refused with 400 before anything streams (it used to be 200 and then an error event).
TEST_F(ServerTest, PromptLongerThanTheContextIsRefusedBeforeStreaming) {
  std::string words;
  for (int i = 0; i < 3000; ++i) words += "word" + std::to_string(i) + " ";
  auto res = Post("/v1/chat/completions", {{"model", "tiny"},
                                           {"messages", {{{"role", "user"}, {"content", words}}}},
                                           {"stream", true}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body.substr(0, 300);
  json e = json::parse(res->body)["error"];
  EXPECT_EQ(e["code"], "context_length_exceeded");
  EXPECT_EQ(e["type"], "invalid_request_error");
  res = Post("/v1/completions", {{"model", "tiny"}, {"prompt", words}, {"stream", true}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "context_length_exceeded");
  for (const auto& [path, body] :
       {std::make_pair("/api/chat", json{{"model", "tiny"},
                                         {"messages", {{{"role", "user"}, {"content", words}}}}}),
        std::make_pair("/api/generate", json{{"model", "tiny"}, {"prompt", words}}),
        std::make_pair("/api/generate",
                       json{{"model", "tiny"}, {"prompt", words}, {"raw", true}})}) {
    res = Post(path, body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << path;
    const json j = json::parse(res->body);
    ASSERT_TRUE(j["error"].is_string()) << res->body;
    EXPECT_NE(j["error"].get<std::string>().find("maximum context length is 2048"),
              std::string::npos)
        << res->body;
  }
}

// curl's default type (and Ollama's own examples) is form-urlencoded: still JSON.
TEST_F(ServerTest, ChatBodiesAreJsonWhateverTheContentType) {
  const json req = {{"model", "tiny"},
                    {"messages", {{{"role", "user"}, {"content", "x"}}}},
                    {"stream", false},
                    {"options", {{"num_predict", 1}}},
                    {"padding", std::string(20000, 'p')}};
  for (const char* type : {"application/x-www-form-urlencoded", "text/plain", ""}) {
    auto res = client_->Post("/api/chat", req.dump(), type);
    ASSERT_TRUE(res) << type;
    EXPECT_EQ(res->status, 200) << type << ": " << res->body;
  }
}

TEST_F(ServerTest, DeleteUnloads) {
  auto res = client_->Delete("/api/delete", R"({"model":"tiny"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  auto tags = client_->Get("/api/tags");
  ASSERT_TRUE(tags);
  EXPECT_TRUE(json::parse(tags->body)["models"].empty());
}

}  // namespace
}  // namespace modelseal::server
