// The Hugging Face client against a loopback server that imitates the Hub:
// /{repo}/resolve/{rev}/{file} answering HEAD with X-Linked-Etag/X-Linked-Size
// and a 302 to a "CDN" on another host (127.0.0.1 vs localhost), Range on the
// CDN, the error headers of gated, private and missing repos, and the tree API.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "common/bytes.h"
#include "hub/hub.h"
#include "tests/support/testenv.h"

namespace modelseal::hub {
namespace {

using testenv::HttpRequestIn;
using testenv::HttpResponseOut;
using testenv::HttpServer;

std::string Sha256Hex(const std::string& s) {
  uint8_t md[32];
  SHA256(reinterpret_cast<const uint8_t*>(s.data()), s.size(), md);
  return ToHex({md, 32});
}

struct FakeHub {
  std::string gguf;                       // LFS file served through the CDN
  std::string readme = "# tiny model\n";  // small non-LFS file served directly
  std::atomic<int> cdn_cuts{1};           // CDN GETs to cut mid-body
  std::atomic<bool> corrupt{false};
  std::atomic<long> announced_extra{0};  // added to the X-Linked-Size the Hub announces
  std::string announced_size;            // when set, the X-Linked-Size sent instead
  std::mutex mu;
  std::vector<std::string> cdn_ranges;
  std::vector<std::string> cdn_auth;

  HttpServer cdn{[this](const HttpRequestIn& r) {
    HttpResponseOut out;
    std::string body = gguf;
    if (corrupt) body[body.size() / 2] ^= 1;
    uint64_t start = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      cdn_ranges.push_back(r.headers.count("range") ? r.headers.at("range") : "");
      cdn_auth.push_back(r.headers.count("authorization") ? r.headers.at("authorization") : "");
    }
    if (r.headers.count("range")) {
      start = std::stoull(r.headers.at("range").substr(6));
      out.status = 206;
      out.headers.emplace_back("Content-Range", "bytes " + std::to_string(start) + "-" +
                                                    std::to_string(body.size() - 1) + "/" +
                                                    std::to_string(body.size()));
    }
    out.body = body.substr(start);
    if (cdn_cuts.fetch_sub(1) > 0) out.cut_after = static_cast<long>(out.body.size() / 3);
    return out;
  }};

  HttpServer hub{[this](const HttpRequestIn& r) {
    HttpResponseOut out;
    const std::string auth = r.headers.count("authorization") ? r.headers.at("authorization") : "";
    if (r.target == "/org/tiny/resolve/main/model.gguf" ||
        r.target == "/org/gated/resolve/main/model.gguf") {
      if (r.target.starts_with("/org/gated") && auth != "Bearer hf_good") {
        out.status = auth.empty() ? 401 : 403;
        out.headers.emplace_back("X-Error-Code", "GatedRepo");
        out.headers.emplace_back("X-Error-Message", "Access to model org/gated is restricted.");
        return out;
      }
      out.status = 302;
      // Another host name for the same loopback address: a different origin.
      out.headers.emplace_back("Location", "http://localhost:" + std::to_string(cdn.port()) +
                                               "/repos/ab/cd/blob?X-Signature=xyz");
      out.headers.emplace_back("X-Linked-Etag", "\"" + Sha256Hex(gguf) + "\"");
      out.headers.emplace_back(
          "X-Linked-Size", !announced_size.empty()
                               ? announced_size
                               : std::to_string(static_cast<long>(gguf.size()) + announced_extra));
      out.headers.emplace_back("ETag", "W/\"0123456789012345678901234567890123456789\"");
      return out;
    }
    if (r.target == "/org/tiny/resolve/main/README.md") {
      out.headers.emplace_back("ETag", "\"0123456789012345678901234567890123456789\"");
      out.body = readme;
      out.head_length = static_cast<long>(readme.size());
      return out;
    }
    if (r.target == "/org/private/resolve/main/model.gguf") {
      out.status = 401;
      out.headers.emplace_back("X-Error-Code", "RepoNotFound");
      out.headers.emplace_back("X-Error-Message", "Repository not found");
      return out;
    }
    if (r.target.starts_with("/org/tiny/resolve/main/")) {
      out.status = 404;
      out.headers.emplace_back("X-Error-Code", "EntryNotFound");
      out.headers.emplace_back("X-Error-Message", "Entry not found");
      return out;
    }
    if (r.target == "/api/models/org/tiny/tree/main?recursive=true") {
      out.headers.emplace_back("Link",
                               "</api/models/org/tiny/tree/main?recursive=true&cursor=2>; "
                               "rel=\"next\"");
      out.body = R"([{"type":"directory","path":"sub","oid":"x","size":0},
        {"type":"file","path":"model.gguf","size":134,"oid":"a",
         "lfs":{"oid":")" +
                 Sha256Hex(gguf) + R"(","size":)" + std::to_string(gguf.size()) +
                 R"(,"pointerSize":134}}])";
      return out;
    }
    if (r.target == "/api/models/org/tiny/tree/main?recursive=true&cursor=2") {
      out.body = R"([{"type":"file","path":"README.md","size":13,"oid":"b"},
                     {"type":"file","path":"sub/model-q8.gguf","size":7,"oid":"c"}])";
      return out;
    }
    out.status = 404;
    out.headers.emplace_back("X-Error-Code", "RepoNotFound");
    return out;
  }};

  FakeHub() {
    gguf.resize(3 << 20);
    uint32_t x = 1;
    for (auto& c : gguf) {
      x = x * 1664525u + 1013904223u;
      c = static_cast<char>(x >> 24);
    }
  }
};

class HubTest : public ::testing::Test {
 protected:
  void SetUp() override { cache_ = testenv::MakeTempDir("hubcache"); }
  void TearDown() override { testenv::RemoveTree(cache_); }
  HubOptions Options(const std::string& endpoint, std::optional<std::string> token = "") {
    HubOptions o;
    o.endpoint = endpoint;
    if (token)
      o.token = SecretBuffer(reinterpret_cast<const uint8_t*>(token->data()), token->size());
    o.cache_dir = cache_;
    o.retry.base_delay = std::chrono::milliseconds(5);
    return o;
  }
  std::string cache_;
};

TEST_F(HubTest, DownloadFollowsCdnResumesAndVerifies) {
  FakeHub fake;
  HubClient client(Options(fake.hub.url(), "hf_secret"));
  uint64_t last = 0;
  bool finished = false;
  auto d = client.Download("org/tiny", "main", "model.gguf", [&](const ProgressEvent& e) {
    EXPECT_EQ(e.stage, "download");
    last = e.done;
    finished = finished || e.finished;
  });
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_FALSE(d->from_cache);
  EXPECT_TRUE(d->verified);
  EXPECT_EQ(d->size, fake.gguf.size());
  EXPECT_EQ(d->sha256, Sha256Hex(fake.gguf));
  EXPECT_EQ(last, fake.gguf.size());
  EXPECT_TRUE(finished);
  EXPECT_EQ(d->path, cache_ + "/org--tiny/main/model.gguf");
  std::ifstream in(d->path, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, fake.gguf);
  {
    std::lock_guard<std::mutex> lock(fake.mu);
    ASSERT_EQ(fake.cdn_ranges.size(), 2u);
    EXPECT_EQ(fake.cdn_ranges[0], "");
    EXPECT_EQ(fake.cdn_ranges[1], "bytes=" + std::to_string(fake.gguf.size() / 3) + "-");
    for (const auto& a : fake.cdn_auth) EXPECT_EQ(a, "");  // the token never goes to the CDN
  }
  EXPECT_FALSE(std::filesystem::exists(d->path + ".incomplete"));

  // Second call: from the cache, no network.
  auto again = client.Download("org/tiny", "main", "model.gguf");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->from_cache);
  EXPECT_EQ(again->sha256, d->sha256);
  std::lock_guard<std::mutex> lock(fake.mu);
  EXPECT_EQ(fake.cdn_ranges.size(), 2u);
}

TEST_F(HubTest, SmallNonLfsFileDirect) {
  FakeHub fake;
  HubClient client(Options(fake.hub.url()));
  auto d = client.Download("org/tiny", "main", "README.md");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_FALSE(d->verified);  // a git SHA-1 ETag is not a content SHA-256
  EXPECT_EQ(d->size, fake.readme.size());
}

TEST_F(HubTest, ResumesAPartialFileLeftByAnEarlierRun) {
  FakeHub fake;
  fake.cdn_cuts = 0;
  HubClient client(Options(fake.hub.url()));
  const std::string path = client.CachePath("org/tiny", "main", "model.gguf");
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path + ".incomplete", std::ios::binary) << fake.gguf.substr(0, 1000000);
  auto d = client.Download("org/tiny", "main", "model.gguf");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_TRUE(d->verified);
  std::lock_guard<std::mutex> lock(fake.mu);
  ASSERT_EQ(fake.cdn_ranges.size(), 1u);
  EXPECT_EQ(fake.cdn_ranges[0], "bytes=1000000-");
}

TEST_F(HubTest, ConcurrentDownloadOfOneFileIsRefused) {
  FakeHub fake;
  HubClient client(Options(fake.hub.url()));
  const std::string path = client.CachePath("org/tiny", "main", "model.gguf");
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const int fd = ::open((path + ".incomplete").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX), 0);  // another downloader holds it
  auto d = client.Download("org/tiny", "main", "model.gguf");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().reason, "busy");
  ::close(fd);
  EXPECT_TRUE(client.Download("org/tiny", "main", "model.gguf").ok());
}

TEST_F(HubTest, ChecksumMismatchDeletesThePartialFile) {
  FakeHub fake;
  fake.corrupt = true;
  HubClient client(Options(fake.hub.url()));
  auto d = client.Download("org/tiny", "main", "model.gguf");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().reason, "checksum-mismatch");
  EXPECT_EQ(d.error().code, ErrorCode::kIntegrity);
  const std::string path = client.CachePath("org/tiny", "main", "model.gguf");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".incomplete"));
}

// The CDN delivers a whole body of another length than the Hub announced: refused by
// size before any digest, the partial file deleted, nothing cached.
TEST_F(HubTest, ABodyOfAnotherSizeThanAnnouncedIsRefused) {
  for (long extra : {-1000L, 1000L}) {
    SCOPED_TRACE("announced " + std::to_string(extra) + " bytes more than served");
    FakeHub fake;
    fake.cdn_cuts = 0;
    fake.announced_extra = extra;
    HubClient client(Options(fake.hub.url()));
    auto d = client.Download("org/tiny", "main", "model.gguf");
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().reason, "size-mismatch") << d.error().ToString();
    EXPECT_EQ(d.error().code, ErrorCode::kIntegrity);
    const std::string path = client.CachePath("org/tiny", "main", "model.gguf");
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(std::filesystem::exists(path + ".incomplete"));
  }
}

// A size the client could not use is refused, not taken as "no size".
TEST_F(HubTest, ASizeHeaderThatIsNotANumberIsRefused) {
  for (const char* bad : {"12abc", "-1", "", "99999999999999999999999"}) {
    SCOPED_TRACE(bad);
    FakeHub fake;
    fake.announced_size = bad;
    if (std::string(bad).empty()) fake.announced_size = " ";
    HubClient client(Options(fake.hub.url()));
    auto d = client.Download("org/tiny", "main", "model.gguf");
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().reason, "bad-response") << d.error().ToString();
    EXPECT_FALSE(std::filesystem::exists(client.CachePath("org/tiny", "main", "model.gguf")));
  }
}

TEST_F(HubTest, ErrorsNameTheCause) {
  FakeHub fake;
  HubClient anon(Options(fake.hub.url()));
  auto gated = anon.Download("org/gated", "main", "model.gguf");
  ASSERT_FALSE(gated.ok());
  EXPECT_EQ(gated.error().reason, "gated");
  EXPECT_EQ(gated.error().code, ErrorCode::kPermissionDenied);
  HubClient good(Options(fake.hub.url(), "hf_good"));
  EXPECT_TRUE(good.Download("org/gated", "main", "model.gguf").ok());

  auto priv = anon.Download("org/private", "main", "model.gguf");
  ASSERT_FALSE(priv.ok());
  EXPECT_EQ(priv.error().reason, "unauthorized");
  auto missing = anon.Download("org/tiny", "main", "nope.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().reason, "not-found");
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("EntryNotFound"), std::string::npos);

  HubOptions o = Options("http://127.0.0.1:1");
  o.retry.max_attempts = 2;
  HubClient down(std::move(o));
  auto unreachable = down.Download("org/tiny", "main", "model.gguf");
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.error().reason, "unreachable");
  EXPECT_EQ(unreachable.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(down.ListFiles("org/tiny", "main").error().reason, "unreachable");

  EXPECT_EQ(anon.Download("../etc", "main", "x").error().reason, "invalid-argument");
  EXPECT_EQ(anon.Download("org/tiny", "main", "../x").error().reason, "invalid-argument");
  EXPECT_EQ(anon.Download("org/tiny", "main", "/abs").error().reason, "invalid-argument");
}

TEST_F(HubTest, ListFilesFollowsPages) {
  FakeHub fake;
  HubClient client(Options(fake.hub.url()));
  auto files = client.ListFiles("org/tiny", "main");
  ASSERT_TRUE(files.ok()) << files.error().ToString();
  ASSERT_EQ(files->size(), 3u);
  EXPECT_EQ((*files)[0].path, "README.md");
  EXPECT_EQ((*files)[1].path, "model.gguf");
  EXPECT_EQ((*files)[1].size, fake.gguf.size());
  EXPECT_EQ((*files)[1].sha256, Sha256Hex(fake.gguf));
  EXPECT_EQ((*files)[2].path, "sub/model-q8.gguf");
  EXPECT_EQ(client.ListFiles("org/none", "main").error().reason, "not-found");
}

// Records what the hub hands the transport, then sends it on.
class RecordingTransport final : public net::HttpTransport {
 public:
  Result<net::HttpResponse> Send(const net::HttpRequest& request) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& [name, value] : request.headers) headers.push_back(name + ": " + value);
      if (request.secret_header_value != nullptr)
        secret_headers.push_back(request.secret_header_name);
    }
    return inner->Send(request);
  }
  std::shared_ptr<net::HttpTransport> inner = net::NewCurlTransport();
  std::mutex mu;
  std::vector<std::string> headers;
  std::vector<std::string> secret_headers;
};

// The token reaches the Hub (gated repo accepted) but never travels in a
// std::string header: only as the request's secret header.
TEST_F(HubTest, TheTokenIsSentButNeverPutInAStringHeader) {
  FakeHub fake;
  for (bool from_env : {false, true}) {
    auto rec = std::make_shared<RecordingTransport>();
    HubOptions o = Options(fake.hub.url(), "hf_good");
    if (from_env) {
      o.token.reset();
      setenv("HF_TOKEN", "hf_good", 1);
    }
    o.transport = rec;
    o.cache_dir = cache_ + (from_env ? "/env" : "/option");
    HubClient client(std::move(o));
    auto d = client.Download("org/gated", "main", "model.gguf");
    if (from_env) unsetenv("HF_TOKEN");
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    EXPECT_FALSE(rec->secret_headers.empty());
    for (const auto& n : rec->secret_headers) EXPECT_EQ(n, "Authorization");
    for (const auto& h : rec->headers) {
      EXPECT_EQ(h.find("hf_good"), std::string::npos) << h;
      EXPECT_EQ(h.find("Authorization"), std::string::npos) << h;
    }
  }
}

TEST(HubEnv, EndpointAndCacheFromEnvironment) {
  setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
  setenv("MODELSEAL_HUB_CACHE", "/tmp/hubcache-env", 1);
  HubClient c;
  EXPECT_EQ(c.endpoint(), "http://127.0.0.1:9");
  EXPECT_EQ(c.cache_dir(), "/tmp/hubcache-env");
  EXPECT_EQ(c.CachePath("org/m", "refs/pr/1", "a/b.gguf"),
            "/tmp/hubcache-env/org--m/refs%2Fpr%2F1/a/b.gguf");
  unsetenv("HF_ENDPOINT");
  unsetenv("MODELSEAL_HUB_CACHE");
}

}  // namespace
}  // namespace modelseal::hub
