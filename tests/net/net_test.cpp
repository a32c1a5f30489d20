// net/: URL helpers, retries with backoff, and the libcurl transport against a
// loopback HTTP server.
#include <gtest/gtest.h>

#include "net/http.h"
#include "net/retry.h"
#include "tests/support/testenv.h"

namespace modelseal::net {
namespace {

using testenv::HttpRequestIn;
using testenv::HttpResponseOut;
using testenv::HttpServer;

TEST(Url, ParseAndEncode) {
  auto u = ParseUrl("http://127.0.0.1:4568/bucket/a%20b?list-type=2#frag");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 4568);
  EXPECT_EQ(u->path, "/bucket/a%20b");
  EXPECT_EQ(u->query, "list-type=2");
  EXPECT_EQ(u->Authority(), "127.0.0.1:4568");
  auto v = ParseUrl("https://s3.amazonaws.com:443");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->Authority(), "s3.amazonaws.com");
  EXPECT_EQ(v->path, "/");
  EXPECT_FALSE(ParseUrl("ftp://x/").ok());
  EXPECT_FALSE(ParseUrl("http://:80/").ok());
  EXPECT_FALSE(ParseUrl("http://h:99999/").ok());
  EXPECT_EQ(UriEncode("a b/é~"), "a%20b%2F%C3%A9~");
  EXPECT_EQ(UriEncode("a b/é~", true), "a%20b/%C3%A9~");
  EXPECT_EQ(UriDecode("a%20b%2F%C3%A9%zz"), "a b/é%zz");
}

TEST(Retry, BackoffIsBoundedAndAttemptsCounted) {
  RetryPolicy p{4, std::chrono::milliseconds(1), std::chrono::milliseconds(3)};
  for (int i = 1; i < 30; ++i) EXPECT_LE(BackoffDelay(p, i).count(), 3);
  int calls = 0;
  Status s = WithRetries(p, [&](int attempt) -> Status {
    EXPECT_EQ(attempt, calls);
    ++calls;
    return MakeError(ErrorCode::kUnavailable, "t", "x", "down");
  });
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(calls, 4);
  EXPECT_NE(s.error().message.find("after 4 attempts"), std::string::npos);
  calls = 0;
  s = WithRetries(p, [&](int) -> Status {
    ++calls;
    return MakeError(ErrorCode::kInvalidArgument, "t", "x", "bad");
  });
  EXPECT_EQ(calls, 1);
  calls = 0;
  s = WithRetries(p, [&](int a) -> Status {
    ++calls;
    if (a < 2) return MakeError(ErrorCode::kUnavailable, "t", "x", "down");
    return Ok{};
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 3);
}

TEST(Transport, StatusesBodiesAndStreaming) {
  HttpServer server([](const HttpRequestIn& req) {
    HttpResponseOut r;
    if (req.target == "/echo") {
      r.body = req.method + ":" + req.body;
    } else if (req.target == "/missing") {
      r.status = 404;
      r.body = "<Error><Code>NoSuchKey</Code></Error>";
    } else if (req.target == "/cut") {
      r.body = std::string(100000, 'x');
      r.cut_after = 5000;
    }
    return r;
  });
  auto t = NewCurlTransport();
  HttpRequest req;
  req.method = "PUT";
  req.url = server.url() + "/echo";
  const std::string payload = "hello";
  req.body = {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
  auto r = t->Send(req);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->BodyText(), "PUT:hello");

  HttpRequest get;
  get.url = server.url() + "/missing";
  std::string streamed;
  get.on_body = [&](std::span<const uint8_t> d) -> Status {
    streamed.append(reinterpret_cast<const char*>(d.data()), d.size());
    return Ok{};
  };
  r = t->Send(get);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(streamed.empty());  // error bodies never reach the sink
  EXPECT_NE(r->BodyText().find("NoSuchKey"), std::string::npos);

  get.url = server.url() + "/cut";
  r = t->Send(get);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "connection");
  EXPECT_TRUE(IsRetryable(r.error()));
  EXPECT_EQ(streamed.size(), 5000u);

  get.url = "http://127.0.0.1:1/";
  r = t->Send(get);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "unreachable");
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace modelseal::net
