// Fault injection: a loopback TCP proxy in front of s3rver cuts connections
// mid-body; downloads and uploads still complete byte-exact and leave no
// multipart upload behind. Fake S3 endpoints (loopback HTTP servers) check what
// a real server cannot show: that interrupted ranges resume from the last byte,
// that a permanently failing part aborts the upload, and the
// PutPublicAccessBlock request itself.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "store/s3_request.h"
#include "tests/store/s3_testutil.h"

namespace modelseal::store {
namespace {

using namespace modelseal::store::testing;
using testenv::FaultProxy;
using testenv::HttpRequestIn;
using testenv::HttpResponseOut;
using testenv::HttpServer;

class S3FaultTest : public S3rverSuite {
 protected:
  std::unique_ptr<ObjectStore> Open(const std::string& endpoint, const std::string& url) {
    auto s = OpenStore(url, S3rverOptions(endpoint));
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
};

TEST_F(S3FaultTest, PendingUploadCheckSeesAnUnfinishedUpload) {
  auto direct = Open(server_->endpoint(), "s3://pending-bucket");
  ASSERT_TRUE(direct->CreateBucket().ok());
  StoreOptions o = S3rverOptions(server_->endpoint());
  auto ep = S3Endpoint::Resolve("pending-bucket", o);
  ASSERT_TRUE(ep.ok());
  S3Call c{"CreateMultipartUpload", "POST", "k", {{"uploads", ""}}, {}, {}, nullptr, nullptr};
  ASSERT_TRUE((*ep)->Send(c).ok());
  EXPECT_EQ(PendingUploads(server_->directory(), "pending-bucket"), 1u);
}

TEST_F(S3FaultTest, DownloadSurvivesCutConnections) {
  auto direct = Open(server_->endpoint(), "s3://cut-download");
  ASSERT_TRUE(direct->CreateBucket().ok());
  Bytes data = Pattern((20u << 20) + 5, 7);
  MemorySource src(data);
  ASSERT_TRUE(direct->Put("model.bin", src).ok());

  FaultProxy proxy(server_->port(), /*faulty_connections=*/3, /*cut_after=*/(1 << 20) + 17,
                   FaultProxy::Direction::kDownstream);
  auto via = Open(proxy.url(), "s3://cut-download");
  Bytes out(data.size());
  SpanSink sink(out);
  auto info = via->Download("model.bin", sink);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(out, data);
  EXPECT_GE(proxy.cuts(), 1);
}

TEST_F(S3FaultTest, UploadsSurviveCutConnectionsWithoutOrphans) {
  auto direct = Open(server_->endpoint(), "s3://cut-upload");
  ASSERT_TRUE(direct->CreateBucket().ok());
  for (size_t size : {size_t{3u << 20}, size_t{(17u << 20) + 9}}) {  // single PUT, multipart
    SCOPED_TRACE(size);
    FaultProxy proxy(server_->port(), 3, (2 << 20) + 11, FaultProxy::Direction::kUpstream);
    auto via = Open(proxy.url(), "s3://cut-upload");
    Bytes data = Pattern(size, static_cast<uint32_t>(size));
    MemorySource src(data);
    Status s = via->Put("up.bin", src);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    EXPECT_GE(proxy.cuts(), 1);
    Bytes out(data.size());
    SpanSink sink(out);
    ASSERT_TRUE(direct->Download("up.bin", sink).ok());
    EXPECT_EQ(out, data);
  }
  EXPECT_EQ(PendingUploads(server_->directory(), "cut-upload"), 0u);
}

// A fake S3 that records requests; `handle` decides the answer.
struct FakeS3 {
  std::mutex mu;
  std::vector<HttpRequestIn> seen;
  std::function<HttpResponseOut(const HttpRequestIn&)> handle;
  HttpServer server{[this](const HttpRequestIn& r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(r);
    }
    return handle(r);
  }};
  std::vector<HttpRequestIn> Seen() {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  }
};

TEST(S3Resume, InterruptedRangeResumesFromLastByte) {
  const Bytes data = Pattern(1u << 20, 9);
  std::atomic<int> gets{0};
  FakeS3 fake;
  fake.handle = [&](const HttpRequestIn& r) {
    const std::string_view bytes(reinterpret_cast<const char*>(data.data()), data.size());
    HttpResponseOut out = testenv::RangedObject(r, bytes, "abc");
    if (r.method != "HEAD" && gets.fetch_add(1) == 0)
      out.cut_after = 300000;  // first attempt breaks
    return out;
  };
  StoreOptions o = S3rverOptions(fake.server.url());
  o.threads = 1;
  auto store = OpenStore("s3://fake-bucket", o);
  ASSERT_TRUE(store.ok());
  Bytes out(data.size());
  SpanSink sink(out);
  auto info = (*store)->Download("obj", sink);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(out, data);
  std::vector<std::string> ranges;
  for (const auto& r : fake.Seen()) {
    if (r.method == "GET") {
      ranges.push_back(r.headers.at("range"));
      EXPECT_EQ(r.headers.at("if-match"), "\"abc\"");
    }
  }
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0], "bytes=0-1048575");
  EXPECT_EQ(ranges[1], "bytes=300000-1048575");  // resumed, not restarted
}

// The object is replaced while a range is being resumed: S3 answers the If-Match of
// the resumed GET with 412 PreconditionFailed, and the download fails as
// changed-during-read instead of joining two objects' bytes.
TEST(S3Resume, AnObjectReplacedMidDownloadIsChangedDuringRead) {
  const Bytes data = Pattern(1u << 20, 11);
  std::atomic<int> gets{0};
  FakeS3 fake;
  fake.handle = [&](const HttpRequestIn& r) {
    const std::string_view bytes(reinterpret_cast<const char*>(data.data()), data.size());
    if (r.method == "HEAD") return testenv::RangedObject(r, bytes, "abc");
    if (gets.fetch_add(1) == 0) {
      HttpResponseOut out = testenv::RangedObject(r, bytes, "abc");
      out.cut_after = 300000;  // the first attempt breaks...
      return out;
    }
    HttpResponseOut out;  // ...and by the retry the object has another ETag
    out.status = 412;
    out.headers.emplace_back("Content-Type", "application/xml");
    out.body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>PreconditionFailed</Code>"
        "<Message>At least one of the pre-conditions you specified did not hold</Message>"
        "<Condition>If-Match</Condition></Error>";
    return out;
  };
  StoreOptions o = S3rverOptions(fake.server.url());
  o.threads = 1;
  auto store = OpenStore("s3://fake-bucket", o);
  ASSERT_TRUE(store.ok());
  Bytes out(data.size());
  SpanSink sink(out);
  auto info = (*store)->Download("obj", sink);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().reason, "changed-during-read") << info.error().ToString();
  EXPECT_EQ(info.error().code, ErrorCode::kIntegrity);
  EXPECT_EQ(gets.load(), 2);
}

TEST(S3Abort, PermanentPartFailureAbortsTheUpload) {
  FakeS3 fake;
  fake.handle = [](const HttpRequestIn& r) {
    HttpResponseOut out;
    if (r.method == "POST" && r.target.find("uploads") != std::string::npos) {
      out.body =
          "<InitiateMultipartUploadResult><UploadId>UP-1</UploadId>"
          "</InitiateMultipartUploadResult>";
    } else if (r.method == "PUT" && r.target.find("partNumber=2&") != std::string::npos) {
      out.status = 403;
      out.body = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
    } else if (r.method == "PUT") {
      out.headers.emplace_back("ETag", "\"p\"");
    } else if (r.method == "DELETE") {
      out.status = 204;
    }
    return out;
  };
  StoreOptions o = S3rverOptions(fake.server.url());
  auto store = OpenStore("s3://fake-bucket", o);
  ASSERT_TRUE(store.ok());
  Bytes data = Pattern(16u << 20, 3);
  MemorySource src(data);
  Status s = (*store)->Put("big", src);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "AccessDenied");
  EXPECT_NE(s.error().message.find("aborted"), std::string::npos) << s.error().message;
  int aborts = 0, completes = 0;
  for (const auto& r : fake.Seen()) {
    if (r.method == "DELETE" && r.target == "/fake-bucket/big?uploadId=UP-1") ++aborts;
    if (r.method == "POST" && r.target.find("uploadId=") != std::string::npos) ++completes;
  }
  EXPECT_EQ(aborts, 1);
  EXPECT_EQ(completes, 0);
}

TEST(S3CreateBucket, BlocksAllPublicAccess) {
  FakeS3 fake;
  fake.handle = [](const HttpRequestIn&) { return HttpResponseOut{}; };
  StoreOptions o = S3rverOptions(fake.server.url());
  o.region = "eu-west-1";
  auto store = OpenStore("s3://new-bucket", o);
  ASSERT_TRUE(store.ok());
  auto r = (*store)->CreateBucket();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->public_access_blocked);
  auto seen = fake.Seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].target, "/new-bucket/");
  EXPECT_NE(seen[0].body.find("<LocationConstraint>eu-west-1</LocationConstraint>"),
            std::string::npos);
  EXPECT_EQ(seen[1].method, "PUT");
  EXPECT_EQ(seen[1].target, "/new-bucket/?publicAccessBlock=");
  for (const char* k :
       {"BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"}) {
    EXPECT_NE(seen[1].body.find(std::string("<") + k + ">true</" + k + ">"), std::string::npos);
  }
  EXPECT_TRUE(seen[1].headers.count("content-md5"));
  EXPECT_NE(seen[1].headers["authorization"].find("/eu-west-1/s3/aws4_request"), std::string::npos);
}

}  // namespace
}  // namespace modelseal::store
