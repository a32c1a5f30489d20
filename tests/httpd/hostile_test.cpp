// Hostile clients against both real servers: `modelseal serve` (with a generated test
// model) and `modelseal kms serve`, each a separate process started from the built
// binary (MODELSEAL_BIN). Raw sockets on loopback; several client addresses
// (127.0.0.x) act as different clients. Every wait is bounded; the assertions are
// about behaviour (who gets answered, what status, whether memory stays flat), never
// about how long something took.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/credentials.h"
#include "aws/sigv4.h"
#include "kms/client.h"
#include "net/http.h"
#include "tests/httpd/raw_client.h"

namespace modelseal::httpd {
namespace {

namespace fs = std::filesystem;
using namespace httpd::testing;  // NOLINT
using nlohmann::json;

enum class Kind { kChat, kKms };

std::string Bin() {
  const char* b = std::getenv("MODELSEAL_BIN");
  return b != nullptr ? b : "modelseal";
}

// A child process; killed (SIGTERM, then SIGKILL) when destroyed.
struct Child {
  pid_t pid = -1;
  int port = 0;
  std::string stdout_text;
  ~Child() { Stop(); }
  // SIGTERM and wait; returns the exit status (or -1).
  int Stop() {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 3000; ++i) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    pid = -1;
    return -1;
  }
};

pid_t SpawnWithPipes(const std::vector<std::string>& args, int* out_fd, int* err_fd) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  *out_fd = out[0];
  *err_fd = err[0];
  return pid;
}

// Starts a server and waits (bounded) for its "listening on ...:PORT" line.
std::unique_ptr<Child> StartServer(const std::vector<std::string>& args) {
  int out = -1, err = -1;
  auto c = std::make_unique<Child>();
  c->pid = SpawnWithPipes(args, &out, &err);
  if (c->pid < 0) return nullptr;
  fcntl(err, F_SETFL, O_NONBLOCK);  // stderr: drained into nothing by the child's end
  std::string text;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < end) {
    if (!ReadSome(out, &text, 500)) break;
    const size_t at = text.find("listening on ");
    const size_t eol = at == std::string::npos ? at : text.find('\n', at);
    if (eol != std::string::npos) {
      const std::string line = text.substr(at, eol - at);
      c->port = std::atoi(line.c_str() + line.rfind(':') + 1);
      break;
    }
  }
  c->stdout_text = text;
  if (c->port <= 0) {
    std::string err_text;
    ReadSome(err, &err_text, 100);
    ADD_FAILURE() << "no 'listening on' from " << args[1] << ": " << text << err_text;
  }
  close(out);
  close(err);
  if (c->port <= 0) return nullptr;
  return c;
}

struct Finished {
  int code = -1;
  std::string err;
};

// Runs a command that should exit by itself (bounded; killed otherwise).
Finished RunToExit(const std::vector<std::string>& args) {
  int out = -1, err = -1;
  Finished f;
  const pid_t pid = SpawnWithPipes(args, &out, &err);
  if (pid < 0) return f;
  std::string sink;
  bool open = true;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (open && std::chrono::steady_clock::now() < end) open = ReadSome(err, &f.err, 500);
  int status = 0;
  if (open) kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  close(out);
  close(err);
  f.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return f;
}

// The largest buffer the kernel lets a TCP socket grow to (the last of the three
// numbers in net.ipv4.tcp_rmem / tcp_wmem); 0 when unreadable.
uint64_t TcpBufferMax(const char* which) {
  std::ifstream f(std::string("/proc/sys/net/ipv4/") + which);
  uint64_t min = 0, def = 0, max = 0;
  f >> min >> def >> max;
  return max;
}

constexpr char kAkid[] = "AKIDHOSTILETEST";
constexpr char kSecret[] = "hostile-test-secret";

// One running server of each kind, shared by the tests of that kind.
struct Env {
  Kind kind;
  fs::path dir;
  std::vector<std::string> args;  // the command line, without --listen
  std::unique_ptr<Child> server;

  int port() const { return server->port; }
  std::string Path() const { return kind == Kind::kChat ? "/api/chat" : "/"; }

  // A raw request head for the error path (without the final blank line).
  std::string PostHead(const std::string& extra) const {
    std::string h = "POST " + Path() + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (kind == Kind::kKms) h += "X-Amz-Target: TrentService.ListKeys\r\n";
    return h + extra;
  }

  // A signed key-service request head (+ the given framing header), signing `body`.
  std::string SignedHead(const std::string& op, const std::string& body,
                         const std::string& framing) const {
    aws::SignableRequest sr;
    sr.method = "POST";
    sr.path = "/";
    sr.headers = {{"host", "127.0.0.1:" + std::to_string(port())},
                  {"x-amz-target", "TrentService." + op},
                  {"content-type", "application/x-amz-json-1.1"}};
    aws::SigningParams p;
    p.region = "us-east-1";
    p.service = "kms";
    p.time = std::chrono::system_clock::now();
    p.add_content_sha256 = false;
    const auto creds = aws::Credentials::Make(kAkid, kSecret);
    aws::SignHeaders(
        sr, *creds, p,
        aws::Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())));
    std::string h = "POST / HTTP/1.1\r\n";
    for (const auto& [k, v] : sr.headers) h += k + ": " + v + "\r\n";
    return h + framing + "\r\n\r\n";
  }

  // A request the server answers with 200.
  std::string Normal(const std::string& op = "ListKeys", const std::string& body = "{}") const {
    if (kind == Kind::kChat) return "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    return SignedHead(op, body, "Content-Length: " + std::to_string(body.size())) + body;
  }

  // The server's own error shape.
  bool ErrorShaped(const Reply& r) const {
    const json j = json::parse(r.body, nullptr, false);
    if (!j.is_object()) return false;
    if (kind == Kind::kChat) return j.contains("error") && j["error"].is_string();
    return j.contains("__type") && j["__type"].is_string() && j.contains("message") &&
           r.Header("x-amzn-errortype") == j["__type"].get<std::string>();
  }
};

std::map<Kind, std::unique_ptr<Env>>& Envs() {
  static auto* envs = new std::map<Kind, std::unique_ptr<Env>>();
  return *envs;
}

Env* GetEnv(Kind kind) {
  auto& slot = Envs()[kind];
  if (slot) return slot.get();
  auto env = std::make_unique<Env>();
  env->kind = kind;
  env->dir = fs::temp_directory_path() /
             ("ms-hostile-" + std::to_string(getpid()) + (kind == Kind::kChat ? "-chat" : "-kms"));
  fs::remove_all(env->dir);
  fs::create_directories(env->dir);
  if (kind == Kind::kChat) {
    const std::string model = (env->dir / "tiny.gguf").string();
    if (RunToExit({Bin(), "dev", "make-test-model", model, "--layers", "2", "--dim", "64", "--ctx",
                   "512"})
            .code != 0) {
      return nullptr;
    }
    env->args = {Bin(), "serve", "--model", "tiny=" + model, "--threads", "1"};
  } else {
    const std::string creds = (env->dir / "credentials.json").string();
    {
      std::ofstream f(creds);
      f << json{{"credentials",
                 {{{"access_key_id", kAkid},
                   {"secret_access_key", kSecret},
                   {"principal_arn", "arn:aws:iam::111122223333:user/owner"}}}}}
               .dump();
    }
    chmod(creds.c_str(), 0600);
    env->args = {Bin(),           "kms", "serve", "--state", (env->dir / "state").string(),
                 "--credentials", creds};
  }
  auto args = env->args;
  args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  env->server = StartServer(args);
  if (!env->server) return nullptr;
  slot = std::move(env);
  return slot.get();
}

class Hostile : public ::testing::TestWithParam<Kind> {
 protected:
  static void TearDownTestSuite() {
    for (auto& [kind, env] : Envs()) {
      if (!env) continue;
      env->server->Stop();
      fs::remove_all(env->dir);
    }
    Envs().clear();
  }
  void SetUp() override {
    env_ = GetEnv(GetParam());
    ASSERT_NE(env_, nullptr) << "the server did not start";
  }
  // A normal request from 127.0.0.1 on a fresh connection gets 200.
  void ExpectNormalAnswered() {
    const Reply r = Exchange(env_->port(), env_->Normal());
    EXPECT_EQ(r.status, 200) << r.body;
  }
  Env* env_ = nullptr;
};

std::string Source(int i) {
  return "127.0.0." + std::to_string(10 + i);
}

TEST_P(Hostile, HeaderDrippersDoNotStarveOthersAndGet408) {
  std::vector<int> drippers;
  for (int i = 0; i < 64; ++i) {
    const int fd = Connect(env_->port(), Source(i % 2).c_str());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, "POST " + env_->Path() + " HTTP/1.1\r\n"));
    drippers.push_back(fd);
  }
  // A normal request is answered while 64 clients drip a header line each round.
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < drippers.size(); ++i) {
      SendAll(drippers[i], "X-Drip-" + std::to_string(round) + ": x\r\n");
    }
    ExpectNormalAnswered();
  }
  // However steadily they drip, each gets 408 (head deadline) and is closed.
  std::vector<std::string> got(drippers.size());
  std::vector<bool> closed(drippers.size(), false);
  for (int round = 0; round < 60; ++round) {
    size_t open = 0;
    for (size_t i = 0; i < drippers.size(); ++i) {
      if (closed[i]) continue;
      SendAll(drippers[i], "X-More: y\r\n");
      closed[i] = ClosedWithin(drippers[i], 5, &got[i]);
      open += closed[i] ? 0 : 1;
    }
    if (open == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  for (size_t i = 0; i < drippers.size(); ++i) {
    EXPECT_TRUE(closed[i]) << i;
    std::string buf = got[i];
    const auto r = TakeReply(&buf);
    ASSERT_TRUE(r) << got[i];
    EXPECT_EQ(r->status, 408);
    EXPECT_TRUE(env_->ErrorShaped(*r)) << r->body;
    close(drippers[i]);
  }
}

TEST_P(Hostile, BodyDrippersAndIdleConnectionsDoNotStarveOthers) {
  std::vector<int> fds;
  for (int i = 0; i < 32; ++i) {
    const int fd = Connect(env_->port(), Source(2 + i % 2).c_str());
    ASSERT_GE(fd, 0);
    const std::string head =
        env_->kind == Kind::kChat
            ? env_->PostHead("Content-Length: 1000\r\n\r\n")
            : env_->SignedHead("ListKeys", std::string(1000, ' '), "Content-Length: 1000");
    ASSERT_TRUE(SendAll(fd, head + "{"));
    fds.push_back(fd);
  }
  for (int i = 0; i < 128; ++i) {  // connected, never a byte
    const int fd = Connect(env_->port(), Source(4 + i % 4).c_str());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 32; ++i) SendAll(fds[static_cast<size_t>(i)], " ");
    ExpectNormalAnswered();
  }
  for (int fd : fds) close(fd);
}

TEST_P(Hostile, PostWithoutALengthGets411AtOnce) {
  const Reply r = Exchange(env_->port(), env_->PostHead("\r\n"));
  EXPECT_EQ(r.status, 411);
  EXPECT_TRUE(env_->ErrorShaped(r)) << r.body;
}

TEST_P(Hostile, AmbiguousFramingIsRefusedAndClosed) {
  const std::pair<std::string, int> cases[] = {
      {env_->PostHead("Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"), 400},
      {env_->PostHead("Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"), 400},
      {env_->PostHead("Content-Length: +2\r\n\r\n{}"), 400},
      {env_->PostHead("Content-Length: 2 2\r\n\r\n{}"), 400},
      {env_->PostHead("Content-Length: 18446744073709551617\r\n\r\n{}"), 400},
      {env_->PostHead(
           "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
       400},
      {env_->PostHead("Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"), 501},
      {env_->PostHead("X-Space : x\r\nContent-Length: 2\r\n\r\n{}"), 400},
      {env_->PostHead("X-Fold: a\r\n b\r\nContent-Length: 2\r\n\r\n{}"), 400},
      {env_->PostHead("X-Bare: a\nContent-Length: 2\r\n\r\n{}"), 400},
      {env_->PostHead("X-Bare: a\rb\r\nContent-Length: 2\r\n\r\n{}"), 400},
      {env_->PostHead("X(Bad: a\r\nContent-Length: 2\r\n\r\n{}"), 400},
      {env_->PostHead("X-Big: " + std::string(40000, 'a') + "\r\n\r\n"), 431},
      {"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505},
  };
  for (const auto& [request, status] : cases) {
    const int fd = Connect(env_->port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, request));
    std::string buf;
    const auto r = ReadReply(fd, &buf);
    ASSERT_TRUE(r) << request.substr(0, 120);
    EXPECT_EQ(r->status, status) << request.substr(0, 120);
    EXPECT_TRUE(env_->ErrorShaped(*r)) << r->body;
    EXPECT_EQ(r->Header("connection"), "close");
    EXPECT_TRUE(ClosedWithin(fd, kWaitMs, &buf));
    close(fd);
  }
}

TEST_P(Hostile, BodiesOverTheLimitAre413ForEveryEncodingAndAreNotReadFurther) {
  const uint64_t limit = env_->kind == Kind::kChat ? 8u << 20 : 1u << 20;
  // With a Content-Length: refused from the head.
  const std::string len = "Content-Length: " + std::to_string(limit + 1);
  const std::string head = env_->kind == Kind::kChat ? env_->PostHead(len + "\r\n\r\n")
                                                     : env_->SignedHead("ListKeys", "", len);
  Reply r = Exchange(env_->port(), head);
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(env_->ErrorShaped(r)) << r.body;

  // Chunked: up to 512 MiB offered; the server stops reading at the limit.
  const int fd = Connect(env_->port());
  const std::string chunked =
      env_->kind == Kind::kChat ? env_->PostHead("Transfer-Encoding: chunked\r\n\r\n")
                                : env_->SignedHead("ListKeys", "{}", "Transfer-Encoding: chunked");
  ASSERT_TRUE(SendAll(fd, chunked));
  const std::string chunk = "100000\r\n" + std::string(1 << 20, 'a') + "\r\n";
  std::string got;
  bool closed = false;
  uint64_t sent = 0;
  while (sent < (512ull << 20) && !closed) {
    if (!SendAll(fd, chunk)) break;  // the server closed: sending fails
    sent += 1 << 20;
    closed = ClosedWithin(fd, 0, &got);
  }
  if (!closed) closed = ClosedWithin(fd, kWaitMs, &got);
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_LT(sent, 512ull << 20);
  r = TakeReply(&got).value_or(Reply{});
  EXPECT_EQ(r.status, 413) << got.substr(0, 200);
  // What the client could send before the close is the limit, what the two socket
  // buffers hold, and the chunk in flight: the server read no further, whatever its
  // allocator did with the memory.
  const uint64_t rmem = TcpBufferMax("tcp_rmem"), wmem = TcpBufferMax("tcp_wmem");
  ASSERT_GT(rmem, 0u);
  ASSERT_GT(wmem, 0u);
  EXPECT_LE(sent, limit + rmem + wmem + (2u << 20))
      << "sent " << sent << " bytes before the close; rmem " << rmem << ", wmem " << wmem;
  ExpectNormalAnswered();
}

TEST_P(Hostile, PipelinedRequestsGetThreeAnswersInOrder) {
  std::string three;
  std::vector<std::string> want;
  if (env_->kind == Kind::kChat) {
    three =
        "GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n";
    want = {"version", "data", "models"};
  } else {
    three = env_->Normal("ListKeys", "{}") + env_->Normal("ListAliases", "{}") +
            env_->Normal("DescribeKey", R"({"KeyId":"alias/none"})");
    want = {"Keys", "Aliases", "NotFoundException"};
  }
  const int fd = Connect(env_->port());
  ASSERT_TRUE(SendAll(fd, three));
  std::string buf;
  for (const auto& key : want) {
    const auto r = ReadReply(fd, &buf);
    ASSERT_TRUE(r) << key;
    EXPECT_NE(r->body.find(key), std::string::npos) << key << ": " << r->body;
  }
  close(fd);
}

TEST_P(Hostile, Http10AndKeepAlive) {
  std::string req10 = env_->Normal();
  req10.replace(req10.find("HTTP/1.1"), 8, "HTTP/1.0");
  // HTTP/1.0 without keep-alive: answered, then closed.
  int fd = Connect(env_->port());
  ASSERT_TRUE(SendAll(fd, req10));
  std::string buf;
  auto r = ReadReply(fd, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(ClosedWithin(fd, kWaitMs));
  close(fd);
  // HTTP/1.0 with keep-alive: a second request on the same connection.
  std::string ka = req10;
  ka.insert(ka.find("\r\n") + 2, "Connection: keep-alive\r\n");
  fd = Connect(env_->port());
  ASSERT_TRUE(SendAll(fd, ka));
  buf.clear();
  r = ReadReply(fd, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->Header("connection"), "keep-alive");
  ASSERT_TRUE(SendAll(fd, env_->Normal()));
  r = ReadReply(fd, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  close(fd);
  // HTTP/1.1 with Connection: close.
  std::string close11 = env_->Normal();
  close11.insert(close11.find("\r\n") + 2, "Connection: close\r\n");
  fd = Connect(env_->port());
  ASSERT_TRUE(SendAll(fd, close11));
  buf.clear();
  r = ReadReply(fd, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(ClosedWithin(fd, kWaitMs));
  close(fd);
}

TEST_P(Hostile, PerClientConnectionCap) {
  std::vector<int> fds;
  for (int i = 0; i < 64; ++i) {
    const int fd = Connect(env_->port(), "127.0.0.40");
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  // The 65th from the same address is refused at once; another address is served.
  const Reply refused = Exchange(env_->port(), env_->Normal(), "127.0.0.40");
  EXPECT_EQ(refused.status, 503);
  EXPECT_TRUE(env_->ErrorShaped(refused)) << refused.body;
  EXPECT_EQ(Exchange(env_->port(), env_->Normal(), "127.0.0.41").status, 200);
  for (int fd : fds) close(fd);
}

TEST_P(Hostile, SecondServerOnTheSamePortFailsClearly) {
  auto args = env_->args;
  args.insert(args.end(), {"--listen", "127.0.0.1:" + std::to_string(env_->port())});
  const Finished f = RunToExit(args);
  EXPECT_NE(f.code, 0);
  const std::string name = env_->kind == Kind::kChat ? "serve" : "kms serve";
  EXPECT_NE(f.err.find("127.0.0.1:" + std::to_string(env_->port()) +
                       " is already in use (another modelseal " + name + "?)"),
            std::string::npos)
      << f.err;
  ExpectNormalAnswered();  // the first one still has the port, alone
}

TEST_P(Hostile, PlainHttpOffLoopbackNeedsInsecureHttp) {
  auto args = env_->args;
  args.insert(args.end(), {"--listen", "0.0.0.0:0"});
  const Finished f = RunToExit(args);
  EXPECT_NE(f.code, 0);
  EXPECT_NE(f.err.find("refusing plain HTTP on 0.0.0.0:0"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("--insecure-http"), std::string::npos) << f.err;
}

TEST_P(Hostile, TlsRoundTripWithAPrivateCa) {
  const fs::path key = env_->dir / "tls-key.pem", cert = env_->dir / "tls-cert.pem";
  const Finished made = RunToExit({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                   "ec_paramgen_curve:P-256", "-nodes", "-keyout", key.string(),
                                   "-out", cert.string(), "-days", "1", "-subj",
                                   "/CN=modelseal test", "-addext", "subjectAltName=IP:127.0.0.1"});
  ASSERT_EQ(made.code, 0) << made.err;
  auto args = env_->args;
  args.insert(args.end(),
              {"--listen", "127.0.0.1:0", "--tls-cert", cert.string(), "--tls-key", key.string()});
  auto tls = StartServer(args);
  ASSERT_NE(tls, nullptr);
  EXPECT_NE(tls->stdout_text.find("listening on https://"), std::string::npos);
  const std::string base = "https://127.0.0.1:" + std::to_string(tls->port);

  const auto get = [&]() -> Result<std::string> {
    if (env_->kind == Kind::kKms) {
      kms::ClientConfig cfg;
      cfg.endpoint = base;
      cfg.region = "us-east-1";
      cfg.credentials = aws::StaticCredentials(aws::Credentials::Make(kAkid, kSecret));
      cfg.retry.max_attempts = 1;
      MS_ASSIGN_OR_RETURN(auto client, kms::KmsClient::Create(cfg));
      MS_ASSIGN_OR_RETURN(json keys, client->Call("ListKeys", json::object()));
      return keys.dump();
    }
    net::HttpRequest req;
    req.url = base + "/api/version";
    MS_ASSIGN_OR_RETURN(auto res, net::NewCurlTransport()->Send(req));
    return std::to_string(res.status) + " " + res.BodyText();
  };
  // Without the CA: the certificate is not trusted.
  unsetenv("AWS_CA_BUNDLE");
  auto untrusted = get();
  ASSERT_FALSE(untrusted.ok());
  EXPECT_EQ(untrusted.error().reason, "tls-verify") << untrusted.error().ToString();
  // AWS_CA_BUNDLE, as the AWS SDKs honour it.
  setenv("AWS_CA_BUNDLE", cert.c_str(), 1);
  auto trusted = get();
  unsetenv("AWS_CA_BUNDLE");
  ASSERT_TRUE(trusted.ok()) << trusted.error().ToString();
  EXPECT_NE(trusted->find(env_->kind == Kind::kKms ? "Keys" : "200 {\"version\""),
            std::string::npos)
      << *trusted;
  // Plain HTTP to the TLS port gets nothing and is closed; the server lives on.
  const Reply plain = Exchange(tls->port, env_->Normal());
  EXPECT_EQ(plain.status, 0);
  setenv("AWS_CA_BUNDLE", cert.c_str(), 1);
  EXPECT_TRUE(get().ok());
  unsetenv("AWS_CA_BUNDLE");
  EXPECT_EQ(tls->Stop(), 0);  // SIGTERM: a clean stop
}

INSTANTIATE_TEST_SUITE_P(BothServers, Hostile, ::testing::Values(Kind::kChat, Kind::kKms),
                         [](const ::testing::TestParamInfo<Kind>& i) {
                           return i.param == Kind::kChat ? std::string("Serve")
                                                         : std::string("KmsServe");
                         });

}  // namespace
}  // namespace modelseal::httpd
