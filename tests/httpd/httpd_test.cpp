// httpd in-process: the strict parser, the router, and a server with short deadlines
// driven over raw loopback sockets.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "httpd/httpd.h"
#include "httpd/parse.h"
#include "tests/httpd/raw_client.h"

namespace modelseal::httpd {
namespace {

using internal::ChunkDecoder;
using internal::HeadParser;
using namespace httpd::testing;  // NOLINT

// ---- parser --------------------------------------------------------------------

struct Parsed {
  HeadParser::State state;
  int status = 0;
  internal::Head head;
};

Parsed ParseHead(const std::string& text) {
  HeadParser p(32 * 1024, 100);
  Parsed out;
  // Fed one byte at a time, as a dripping client would send it.
  for (size_t i = 1; i <= text.size(); ++i) {
    out.state = p.Feed(std::string_view(text).substr(0, i));
    if (out.state != HeadParser::State::kIncomplete) break;
  }
  if (out.state == HeadParser::State::kError) out.status = p.error().status;
  if (out.state == HeadParser::State::kDone) out.head = p.head();
  return out;
}

TEST(HeadParserTest, AcceptsWellFormedRequests) {
  auto p = ParseHead(
      "\r\nPOST /a/b%20c?x=1&y=%41+b HTTP/1.1\r\nHost: h\r\nX-A:  v  \r\n"
      "x-a: w\r\nContent-Length: 0074\r\n\r\n");
  ASSERT_EQ(p.state, HeadParser::State::kDone);
  EXPECT_EQ(p.head.method, "POST");
  EXPECT_EQ(p.head.path, "/a/b%20c");
  EXPECT_EQ(p.head.raw_query, "x=1&y=%41+b");
  EXPECT_EQ(p.head.body, internal::BodyKind::kLength);
  EXPECT_EQ(p.head.content_length, 74u);
  ASSERT_EQ(p.head.headers.size(), 4u);
  EXPECT_EQ(p.head.headers[1].name, "x-a");
  EXPECT_EQ(p.head.headers[1].value, "v");
  EXPECT_TRUE(p.head.keep_alive);
  EXPECT_EQ(internal::ParseQuery(p.head.raw_query),
            (std::vector<std::pair<std::string, std::string>>{{"x", "1"}, {"y", "A b"}}));

  p = ParseHead("GET http://example.com:80/p?q HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_EQ(p.state, HeadParser::State::kDone);
  EXPECT_EQ(p.head.path, "/p");
  EXPECT_EQ(p.head.version_minor, 0);
  EXPECT_TRUE(p.head.keep_alive);
  p = ParseHead("GET / HTTP/1.0\r\n\r\n");
  EXPECT_FALSE(p.head.keep_alive);
  p = ParseHead("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
  EXPECT_EQ(p.head.body, internal::BodyKind::kChunked);
}

TEST(HeadParserTest, RefusesAmbiguousFraming) {
  const std::pair<const char*, int> cases[] = {
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +74\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7 4\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
       "\r\n\r\n",
       400},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\n\r\n", 411},
      {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nBad[name]: x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET a HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
      {"GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417},
  };
  for (const auto& [text, status] : cases) {
    const auto p = ParseHead(text);
    EXPECT_EQ(p.state, HeadParser::State::kError) << text;
    EXPECT_EQ(p.status, status) << text;
  }
}

TEST(HeadParserTest, OversizedHeadsAndLines) {
  HeadParser p(1024, 4);
  const std::string line = "GET /" + std::string(2000, 'a');
  EXPECT_EQ(p.Feed(line), HeadParser::State::kError);
  EXPECT_EQ(p.error().status, 414);
  p.Reset();
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(1100, 'b');
  EXPECT_EQ(p.Feed(head), HeadParser::State::kError);
  EXPECT_EQ(p.error().status, 431);
  p.Reset();
  head = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
  EXPECT_EQ(p.Feed(head), HeadParser::State::kError);
  EXPECT_EQ(p.error().status, 431);
}

struct Decoded {
  ChunkDecoder::State state;
  int status = 0;
  std::string body;
  size_t used = 0;
};

Decoded Decode(const std::string& in, uint64_t limit = 1000) {
  ChunkDecoder d(limit, 1024);
  Decoded out;
  out.state = d.Feed(in, &out.used, [&](std::string_view s) {
    out.body.append(s);
    return true;
  });
  if (out.state == ChunkDecoder::State::kError) out.status = d.error().status;
  return out;
}

TEST(ChunkDecoderTest, DecodesAndStopsAtTheEnd) {
  const auto d = Decode("5;ext=\"a;b\"\r\nhello\r\n0A\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT");
  ASSERT_EQ(d.state, ChunkDecoder::State::kDone);
  EXPECT_EQ(d.body, "hello0123456789");
  EXPECT_EQ(d.used, 49u);  // "NEXT" belongs to the next request
}

TEST(ChunkDecoderTest, RefusesMalformedOrOversizedChunks) {
  const std::pair<const char*, int> cases[] = {
      {"g\r\n", 400},
      {"\r\n", 400},
      {"5\nhello\r\n", 400},
      {"5\r\nhelloX\r\n", 400},
      {"5\r\nhello\r\r", 400},
      {"3e9\r\n", 413},
      {"ffffffffffffffffffff\r\n", 413},
      {"0\r\n folded: x\r\n\r\n", 400},
      {"0\r\nno colon\r\n\r\n", 400},
  };
  for (const auto& [text, status] : cases) {
    const auto d = Decode(text);
    EXPECT_EQ(d.state, ChunkDecoder::State::kError) << text;
    EXPECT_EQ(d.status, status) << text;
  }
  // The limit counts decoded bytes across chunks.
  EXPECT_EQ(Decode("3e8\r\n" + std::string(1000, 'x') + "\r\n1\r\n", 1000).status, 413);
}

// ---- router --------------------------------------------------------------------

TEST(RouterTest, ParametersLiteralsAndMethods) {
  Router r;
  const Handler h = [](Request&, Responder&) {};
  r.Get("/ms/v1/jobs/{id}", h);
  r.Get("/ms/v1/jobs/active", h);
  r.Delete("/ms/v1/jobs/{id}", h);
  r.Get("/ui/{path...}", h);
  auto m = r.Find("GET", "/ms/v1/jobs/a%20b");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/ms/v1/jobs/{id}");
  EXPECT_EQ(m.params, (std::vector<std::pair<std::string, std::string>>{{"id", "a b"}}));
  m = r.Find("GET", "/ms/v1/jobs/active");
  EXPECT_EQ(m.route->pattern, "/ms/v1/jobs/active");
  m = r.Find("HEAD", "/ms/v1/jobs/7");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->method, "GET");
  m = r.Find("POST", "/ms/v1/jobs/7");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET", "HEAD", "DELETE"}));
  m = r.Find("GET", "/ms/v1/jobs/");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.allowed.empty());
  m = r.Find("GET", "/ui/a/b%2Fc");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params[0].second, "a/b/c");
  m = r.Find("GET", "/ui/");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params[0].second, "");
}

// ---- a server --------------------------------------------------------------------

// A handler that waits until released (or its client is gone) before it answers.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int entered = 0;
  bool saw_gone = false;
  void Wait(const Request& req) {
    std::unique_lock<std::mutex> lock(mu);
    ++entered;
    cv.notify_all();
    // client_gone is a flag, not a notification: poll it.
    for (int i = 0; i < kWaitMs / 10 && !open && !req.client_gone().load(); ++i) {
      cv.wait_for(lock, std::chrono::milliseconds(10));
    }
    saw_gone = req.client_gone().load();
    cv.notify_all();
  }
  bool WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return entered >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

class HttpdTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions o = {}, HeadHook hook = nullptr) {
    Router r;
    r.Get("/hello", [](Request& req, Responder& res) {
      res.Send({200, "text/plain", "hello " + std::string(req.Query("who").value_or("")), {}});
    });
    r.Post("/echo", [](Request& req, Responder& res) {
      res.Send({200, "application/octet-stream", req.body, {}});
    });
    r.Post("/gate", [this](Request& req, Responder& res) {
      gate_.Wait(req);
      res.Send({200, "text/plain", "opened", {}});
    });
    r.Get("/stream", [this](Request& req, Responder& res) {
      res.BeginStream(200, "text/plain");
      int n = 0;
      while (n < 100000 && res.Write(std::string(1024, 'x'))) ++n;
      std::lock_guard<std::mutex> lock(gate_.mu);
      stream_writes_ = n;
      stream_gone_ = req.client_gone().load();
      gate_.cv.notify_all();
    });
    r.Get("/throws", [](Request&, Responder&) { throw std::runtime_error("secret prompt"); });
    r.Get("/throws-mid-stream", [](Request&, Responder& res) {
      res.BeginStream(200, "text/plain");
      res.Write("partial");
      throw 7;
    });
    RouteOptions spool;
    spool.spool_dir = std::filesystem::temp_directory_path().string();
    spool.max_body_bytes = 64 << 20;
    r.Post(
        "/spool",
        [](Request& req, Responder& res) {
          std::string text(static_cast<size_t>(req.body_size), '\0');
          const ssize_t n = pread(req.body_fd, text.data(), text.size(), 0);
          char link[256] = {0};
          const std::string proc = "/proc/self/fd/" + std::to_string(req.body_fd);
          [[maybe_unused]] const ssize_t l = readlink(proc.c_str(), link, sizeof(link) - 1);
          res.Send({200,
                    "text/plain",
                    std::to_string(n) + " " + std::to_string(req.body.size()) + " " +
                        (text == std::string(text.size(), 'z') ? "same" : "differs") + " " + link,
                    {}});
        },
        spool);
    o.port = 0;
    server_ = std::make_unique<Server>(
        o, std::move(r),
        [](const HttpError& e, const Request& req) {
          return Response{e.status,
                          "application/json",
                          "{\"status\":" + std::to_string(e.status) + ",\"path\":\"" + req.path +
                              "\",\"code\":\"" + e.code + "\"}",
                          {}};
        },
        std::move(hook));
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
  }
  void TearDown() override {
    gate_.Open();
    if (server_) server_->Stop();
  }

  Gate gate_;
  int stream_writes_ = -1;
  bool stream_gone_ = false;
  std::unique_ptr<Server> server_;
  int port_ = 0;
};

TEST_F(HttpdTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  const int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd,
                      "GET /hello?who=a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n0\r\n\r\n"
                      "GET /hello?who=c HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string buf;
  const char* expected[] = {"hello a", "abc", "hello c"};
  for (const char* want : expected) {
    const auto r = ReadReply(fd, &buf);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, want);
  }
  close(fd);
}

// A handler that throws answers 500 (or ends its stream) and the server goes on:
// before, std::terminate took the whole process down.
TEST_F(HttpdTest, AHandlerThatThrowsIsA500AndTheServerGoesOn) {
  StartServer();
  const int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /throws HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string buf;
  auto r = ReadReply(fd, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->body.find("secret prompt"), std::string::npos) << r->body;
  close(fd);
  const int fd2 = Connect(port_);
  ASSERT_GE(fd2, 0);
  ASSERT_TRUE(SendAll(fd2,
                      "GET /throws-mid-stream HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /hello?who=after HTTP/1.1\r\nHost: x\r\n\r\n"));
  buf.clear();
  r = ReadReply(fd2, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "partial");
  r = ReadReply(fd2, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hello after");
  close(fd2);
}

TEST_F(HttpdTest, HangUpSetsClientGoneButPipelinedBytesDoNot) {
  StartServer();
  int fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "POST /gate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_TRUE(gate_.WaitEntered(1));
  // The next request arrives while the handler runs: not a hang-up.
  ASSERT_TRUE(SendAll(fd, "GET /hello?who=b HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string buf;
  EXPECT_FALSE(ClosedWithin(fd, 300, &buf));
  gate_.Open();
  auto r = ReadReply(fd, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "opened");
  EXPECT_FALSE(gate_.saw_gone);
  r = ReadReply(fd, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hello b");
  close(fd);

  // A hang-up while the handler writes nothing sets client_gone.
  gate_.open = false;
  fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "POST /gate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_TRUE(gate_.WaitEntered(2));
  close(fd);
  std::unique_lock<std::mutex> lock(gate_.mu);
  ASSERT_TRUE(
      gate_.cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return gate_.saw_gone; }));
}

TEST_F(HttpdTest, StreamingWriteBlocksAndFailsWhenTheClientLeaves) {
  ServerOptions o;
  o.stream_buffer = 64 * 1024;
  StartServer(o);
  const int fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string buf;
  ASSERT_TRUE(ReadSome(fd, &buf));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  {
    std::lock_guard<std::mutex> lock(gate_.mu);
    EXPECT_EQ(stream_writes_, -1);  // still blocked: the client reads nothing
  }
  close(fd);
  std::unique_lock<std::mutex> lock(gate_.mu);
  ASSERT_TRUE(gate_.cv.wait_for(lock, std::chrono::milliseconds(kWaitMs),
                                [&] { return stream_writes_ >= 0; }));
  EXPECT_LT(stream_writes_, 100000);
  EXPECT_TRUE(stream_gone_);
}

TEST_F(HttpdTest, DeadlinesForHeadBodyAndIdle) {
  ServerOptions o;
  o.head_timeout = std::chrono::milliseconds(300);
  o.body_timeout = std::chrono::milliseconds(300);
  o.idle_timeout = std::chrono::milliseconds(300);
  StartServer(o);
  // Head: a dripping client gets 408 however steadily it drips.
  int fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "GET /hello HTTP/1.1\r\n"));
  std::string got;
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {
    SendAll(fd, "X-Drip: 1\r\n");
    closed = ClosedWithin(fd, 50, &got);
  }
  EXPECT_TRUE(closed);
  EXPECT_EQ(got.rfind("HTTP/1.1 408 ", 0), 0u) << got;
  EXPECT_NE(got.find("\"status\":408"), std::string::npos);
  close(fd);
  // Body.
  fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab"));
  got.clear();
  EXPECT_TRUE(ClosedWithin(fd, kWaitMs, &got));
  EXPECT_EQ(got.rfind("HTTP/1.1 408 ", 0), 0u) << got;
  close(fd);
  // Idle keep-alive: closed without a word.
  fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string buf;
  ASSERT_TRUE(ReadReply(fd, &buf));
  got.clear();
  EXPECT_TRUE(ClosedWithin(fd, kWaitMs, &got));
  EXPECT_EQ(got, "");
  close(fd);
}

TEST_F(HttpdTest, HookRefusesBeforeTheBodyIsRead) {
  StartServer({}, [](Request& head) -> std::optional<HttpError> {
    if (!head.Header("authorization")) return HttpError(401, "no", "NoAuth");
    head.context = std::string("alice");
    return std::nullopt;
  });
  const int fd = Connect(port_);
  // A body is announced but never sent: the answer still comes, from the head alone.
  ASSERT_TRUE(SendAll(fd,
                      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                      "Expect: 100-continue\r\n\r\n"));
  std::string buf;
  const auto r = ReadReply(fd, &buf);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->body, "{\"status\":401,\"path\":\"/echo\",\"code\":\"NoAuth\"}");
  EXPECT_EQ(r->Header("connection"), "close");
  EXPECT_TRUE(ClosedWithin(fd, kWaitMs));
  close(fd);
  // With Expect: 100-continue, the interim answer comes only after the hook agreed.
  const int fd2 = Connect(port_);
  ASSERT_TRUE(SendAll(fd2,
                      "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: y\r\n"
                      "Content-Length: 2\r\nExpect: 100-continue\r\n\r\n"));
  buf.clear();
  auto cont = ReadReply(fd2, &buf);
  ASSERT_TRUE(cont);
  EXPECT_EQ(cont->status, 100);
  ASSERT_TRUE(SendAll(fd2, "ok"));
  const auto r2 = ReadReply(fd2, &buf);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->body, "ok");
  close(fd2);
}

TEST_F(HttpdTest, FrontErrorsAreRenderedAndClose) {
  StartServer();
  auto r = Exchange(port_, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "{\"status\":404,\"path\":\"/nope\",\"code\":\"\"}");
  r = Exchange(port_, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("allow"), "GET, HEAD");
  r = Exchange(port_, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  // HEAD is GET without the body.
  const int fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "HEAD /hello?who=q HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string buf;
  const auto h = ReadReply(fd, &buf, true);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->Header("content-length"), "7");
  EXPECT_EQ(buf, "");
  close(fd);
}

TEST_F(HttpdTest, ChunkedBodyOverTheLimitIsRefusedWhileReading) {
  StartServer();
  const int fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = "10000\r\n" + std::string(0x10000, 'a') + "\r\n";
  std::string got;
  bool closed = false;
  for (int i = 0; i < 64 && !closed; ++i) {  // 4 MiB at most; the limit is 1 MiB
    if (!SendAll(fd, chunk)) break;
    closed = ClosedWithin(fd, 1, &got);
  }
  if (!closed) closed = ClosedWithin(fd, kWaitMs, &got);
  EXPECT_TRUE(closed);
  EXPECT_EQ(got.rfind("HTTP/1.1 413 ", 0), 0u) << got.substr(0, 100);
  close(fd);
}

TEST_F(HttpdTest, SpooledBodyIsAnAnonymousFile) {
  StartServer();
  const std::string body(3 << 20, 'z');
  const auto r = Exchange(port_, "POST /spool HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                     std::to_string(body.size()) + "\r\n\r\n" + body);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.substr(0, r.body.find(" /")),
            std::to_string(body.size()) + " 0 same");                // all on disk, none in memory
  EXPECT_NE(r.body.find("(deleted)"), std::string::npos) << r.body;  // no name
}

TEST_F(HttpdTest, ConnectionCaps) {
  ServerOptions o;
  o.max_connections_per_client = 4;
  o.max_requests_per_connection = 2;
  StartServer(o);
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) fds.push_back(Connect(port_, "127.0.0.3"));
  const auto refused = Exchange(port_, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.3");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(Exchange(port_, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.4").status, 200);
  for (int fd : fds) close(fd);
  // The second request on a connection is its last.
  const int fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd,
                      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\n"
                      "Host: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string buf;
  auto a = ReadReply(fd, &buf);
  auto b = ReadReply(fd, &buf);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->Header("connection"), "");
  EXPECT_EQ(b->Header("connection"), "close");
  EXPECT_TRUE(ClosedWithin(fd, kWaitMs));
  close(fd);
}

TEST_F(HttpdTest, StopCancelsRunningHandlersAfterTheDrainTime) {
  ServerOptions o;
  o.drain_timeout = std::chrono::milliseconds(100);
  StartServer(o);
  const int fd = Connect(port_);
  ASSERT_TRUE(SendAll(fd, "POST /gate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_TRUE(gate_.WaitEntered(1));
  server_->Stop();  // returns once the handler saw client_gone and returned
  EXPECT_TRUE(gate_.saw_gone);
  EXPECT_LT(Connect(port_), 0);
  close(fd);
}

TEST(HttpdStartTest, SecondServerOnTheSamePortFails) {
  ServerOptions o;
  o.name = "modelseal test";
  Server a(o, Router{}, nullptr);
  ASSERT_TRUE(a.Start().ok());
  o.port = a.port();
  Server b(o, Router{}, nullptr);
  const Status st = b.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().reason, "address-in-use");
  EXPECT_EQ(st.error().message,
            "127.0.0.1:" + std::to_string(o.port) + " is already in use (another modelseal test?)");
}

TEST(HttpdStartTest, PlainHttpOffLoopbackNeedsConsent) {
  ServerOptions o;
  o.host = "0.0.0.0";
  Server a(o, Router{}, nullptr);
  const Status st = a.Start();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().reason, "insecure-listen");
  EXPECT_TRUE(IsLoopback("127.0.0.2"));
  EXPECT_TRUE(IsLoopback("::1"));
  EXPECT_FALSE(IsLoopback("0.0.0.0"));
  EXPECT_FALSE(IsLoopback("10.1.2.3"));
}

}  // namespace
}  // namespace modelseal::httpd
