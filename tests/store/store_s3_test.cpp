// The S3 store against s3rver (a third-party S3 server from npm, started here on
// a free loopback port), and interoperability with the official
// @aws-sdk/client-s3 in both directions.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "tests/store/s3_testutil.h"

namespace modelseal::store {
namespace {

using namespace modelseal::store::testing;

class S3StoreTest : public S3rverSuite {
 protected:
  std::unique_ptr<ObjectStore> Open(const std::string& url) {
    auto s = OpenStore(url, S3rverOptions(server_->endpoint()));
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
};

TEST_F(S3StoreTest, EveryOperation) {
  auto store = Open("s3://ops-bucket/models");
  ASSERT_TRUE(store);
  Bytes small = Pattern(1000, 1);
  MemorySource small_src(small);
  Status s = store->Put("x.bin", small_src);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "no-such-bucket");

  auto cb = store->CreateBucket();
  ASSERT_TRUE(cb.ok()) << cb.error().ToString();
  EXPECT_TRUE(cb->created);
  // s3rver does not implement PutPublicAccessBlock; that is reported, not hidden.
  EXPECT_FALSE(cb->public_access_blocked);
  EXPECT_NE(cb->note.find("PutPublicAccessBlock"), std::string::npos);
  auto again = store->CreateBucket();
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_FALSE(again->created);

  ASSERT_TRUE(store->Put("x.bin", small_src).ok());
  auto head = store->Head("x.bin");
  ASSERT_TRUE(head.ok()) << head.error().ToString();
  EXPECT_EQ(head->size, small.size());
  EXPECT_FALSE(head->etag.empty());
  EXPECT_GT(head->modified_unix, 1600000000);

  VectorSink got;
  ASSERT_TRUE(store->Download("x.bin", got).ok());
  EXPECT_EQ(got.bytes(), small);

  VectorSink range;
  ASSERT_TRUE(store->GetRange("x.bin", 10, 90, range, 0).ok());
  EXPECT_EQ(range.bytes(), Bytes(small.begin() + 10, small.begin() + 100));
  VectorSink tail;
  ASSERT_TRUE(store->GetRange("x.bin", 999, 1, tail, 5).ok());
  EXPECT_EQ(tail.bytes().size(), 6u);
  EXPECT_EQ(tail.bytes()[5], small[999]);
  s = store->GetRange("x.bin", 990, 20, tail, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "InvalidRange");

  // Keys that need encoding.
  const std::string odd = "dir/caf\xc3\xa9 \xe6\x97\xa5+&=?#%.bin";
  ASSERT_TRUE(store->Put(odd, small_src).ok());
  VectorSink odd_got;
  ASSERT_TRUE(store->Download(odd, odd_got).ok());
  EXPECT_EQ(odd_got.bytes(), small);

  auto list = store->ListAll("");
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].key, odd);
  EXPECT_EQ((*list)[1].key, "x.bin");
  EXPECT_EQ((*list)[1].size, small.size());

  auto missing = store->Head("missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().reason, "not-found");
  VectorSink none;
  auto dl = store->Download("missing", none);
  ASSERT_FALSE(dl.ok());
  EXPECT_EQ(dl.error().code, ErrorCode::kNotFound);

  ASSERT_TRUE(store->Delete("x.bin").ok());
  EXPECT_EQ(store->Head("x.bin").error().reason, "not-found");
  ASSERT_TRUE(store->Delete("x.bin").ok());
  EXPECT_EQ(store->Put("../x", small_src).error().reason, "invalid-key");
}

TEST_F(S3StoreTest, MultipartParallelUploadAndRangedDownload) {
  auto store = Open("s3://multipart-bucket");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->CreateBucket().ok());
  Bytes big = Pattern((17u << 20) + 12345, 2);  // four parts of 5 MiB (last one short)
  MemorySource src(big);
  uint64_t reported = 0;
  Status s = store->Put("big.bin", src, [&](const ProgressEvent& e) { reported = e.done; });
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(reported, big.size());
  auto head = store->Head("big.bin");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, big.size());
  EXPECT_FALSE(head->etag.empty());

  Bytes out(big.size());
  SpanSink sink(out);
  auto info = store->Download("big.bin", sink);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(out, big);

  VectorSink mid;
  ASSERT_TRUE(store->GetRange("big.bin", (5u << 20) - 7, 100, mid, 0).ok());
  EXPECT_EQ(mid.bytes(), Bytes(big.begin() + (5u << 20) - 7, big.begin() + (5u << 20) + 93));
  // No multipart upload was left behind on the server.
  EXPECT_EQ(PendingUploads(server_->directory(), "multipart-bucket"), 0u);
}

// Parts arrive in any order (the sealer writes its header, in part 1, last); each
// goes up as soon as it is complete, and the object appears only at Commit.
TEST_F(S3StoreTest, WriterUploadsPartsAsTheyCompleteInAnyOrder) {
  auto store = Open("s3://writer-bucket");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->CreateBucket().ok());
  const Bytes big = Pattern((16u << 20) + 333, 5);  // four parts of 5 MiB
  uint64_t reported = 0;
  auto w = store->NewWriter("sealed.bin", big.size(),
                            [&](const ProgressEvent& e) { reported = e.done; });
  ASSERT_TRUE(w.ok()) << w.error().ToString();
  const size_t piece = 1u << 20;
  for (size_t off = piece; off < big.size(); off += piece) {
    const size_t len = std::min(piece, big.size() - off);
    ASSERT_TRUE((*w)->WriteAt(off, std::span(big).subspan(off, len)).ok());
  }
  EXPECT_EQ(store->Head("sealed.bin").error().reason, "not-found");
  ASSERT_TRUE((*w)->WriteAt(0, std::span(big).first(piece)).ok());  // the "header" last
  Status c = (*w)->Commit();
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(reported, big.size());
  Bytes out(big.size());
  SpanSink sink(out);
  ASSERT_TRUE(store->Download("sealed.bin", sink).ok());
  EXPECT_EQ(out, big);
  EXPECT_EQ(PendingUploads(server_->directory(), "writer-bucket"), 0u);

  // Commit before every byte arrived fails and publishes nothing.
  auto small = store->NewWriter("small.bin", 100);
  ASSERT_TRUE(small.ok());
  ASSERT_TRUE((*small)->WriteAt(0, std::span(big).first(99)).ok());
  EXPECT_EQ((*small)->Commit().error().reason, "incomplete");
  EXPECT_EQ(store->Head("small.bin").error().reason, "not-found");
}

TEST_F(S3StoreTest, PaginationPastAThousandKeys) {
  auto store = Open("s3://pages-bucket/p");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->CreateBucket().ok());
  Bytes one = {42};
  MemorySource src(one);
  std::vector<std::string> want;
  for (int i = 0; i < 1105; ++i) {
    char k[32];
    snprintf(k, sizeof(k), "k/%05d", i);
    want.push_back(k);
    ASSERT_TRUE(store->Put(k, src).ok()) << k;
  }
  auto first = store->List("k/", "", 1000);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->objects.size(), 1000u);
  EXPECT_FALSE(first->next_token.empty());
  auto all = store->ListAll("k/");
  ASSERT_TRUE(all.ok()) << all.error().ToString();
  std::vector<std::string> got;
  for (auto& o : *all) got.push_back(o.key);
  EXPECT_EQ(got, want);
}

TEST_F(S3StoreTest, InteroperatesWithOfficialSdk) {
  auto store = Open("s3://interop-bucket/shared");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->CreateBucket().ok());
  const std::string dir = testenv::MakeTempDir("interop");
  const std::string ep = server_->endpoint();

  // modelseal writes (single and multipart); the SDK reads.
  for (size_t size : {size_t{0}, size_t{4321}, size_t{(11u << 20) + 3}}) {
    SCOPED_TRACE(size);
    Bytes data = Pattern(size, static_cast<uint32_t>(size));
    MemorySource src(data);
    const std::string key = "from-modelseal/\xc3\xbc " + std::to_string(size) + ".bin";
    ASSERT_TRUE(store->Put(key, src).ok());
    auto r = testenv::RunNode("tests/js/aws/s3_interop.mjs",
                              {"get", ep, "interop-bucket", "shared/" + key, dir + "/got"});
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(ReadFileBytes(dir + "/got"), data);
  }

  // The SDK writes (PutObject and a multipart upload); modelseal reads.
  for (const char* op : {"put", "multipart"}) {
    SCOPED_TRACE(op);
    Bytes data = Pattern((12u << 20) + 77, op[0]);
    WriteFileBytes(dir + "/in", data);
    const std::string key = std::string("from-sdk/") + op + " \xe6\x97\xa5.bin";
    auto r = testenv::RunNode("tests/js/aws/s3_interop.mjs",
                              {op, ep, "interop-bucket", "shared/" + key, dir + "/in"});
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    Bytes out(data.size());
    SpanSink sink(out);
    auto info = store->Download(key, sink);
    ASSERT_TRUE(info.ok()) << info.error().ToString();
    EXPECT_EQ(out, data);
  }

  // Both list the same keys.
  auto sdk = testenv::RunNode("tests/js/aws/s3_interop.mjs",
                              {"list", ep, "interop-bucket", "shared/", "-"});
  ASSERT_TRUE(sdk.ok()) << sdk.error().ToString();
  auto keys = nlohmann::json::parse(*sdk);
  auto mine = store->ListAll("");
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(keys.size(), mine->size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(keys[i].get<std::string>(), "shared/" + (*mine)[i].key);
  }
  testenv::RemoveTree(dir);
}

}  // namespace
}  // namespace modelseal::store
