// The local directory store and what both stores share (URLs, key rules).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "store/store.h"
#include "tests/store/data_testutil.h"
#include "tests/support/testenv.h"

namespace modelseal::store {
namespace {

using testing::Pattern;

// A source that fails after `ok_bytes`, to prove failed writes leave nothing.
class FailingSource final : public ByteSource {
 public:
  FailingSource(uint64_t size, uint64_t ok_bytes) : size_(size), ok_(ok_bytes) {}
  uint64_t size() const override { return size_; }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                          uint8_t* scratch) const override {
    if (offset + len > ok_) return MakeError(ErrorCode::kIo, "test", "boom", "source failed");
    std::memset(scratch, 7, len);
    return std::span<const uint8_t>(scratch, len);
  }

 private:
  uint64_t size_, ok_;
};

TEST(StoreKeys, Validation) {
  for (const char* good : {"a", "models/llama.gguf", "caf\xc3\xa9/\xe6\x97\xa5 x.bin", "a.b/c..d",
                           ".hidden", "x/...", "a b+c=d&e"}) {
    EXPECT_TRUE(ValidateKey(good).ok()) << good;
  }
  const std::string long_key(1025, 'k');
  const std::string long_part(256, 'p');
  for (const std::string& bad :
       {std::string(""), std::string("/abs"), std::string("../up"), std::string("a/../b"),
        std::string("a/./b"), std::string("a//b"), std::string("dir/"), std::string("a\nb"),
        std::string("\xff\xfe"), long_key, long_part, std::string("..")}) {
    Status s = ValidateKey(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.error().reason, "invalid-key");
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(StoreUrls, Parse) {
  auto s3 = ParseStoreUrl("s3://my-bucket/models/v1/");
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(s3->scheme, "s3");
  EXPECT_EQ(s3->bucket, "my-bucket");
  EXPECT_EQ(s3->path, "models/v1/");
  auto bare = ParseStoreUrl("s3://my-bucket");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->path, "");
  auto f = ParseStoreUrl("file:///var/lib/x/");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->path, "/var/lib/x");
  for (const char* bad : {"s3://B/x", "s3://ab", "file://relative", "file:///a/../b", "http://x/",
                          "s3://bucket/../x"}) {
    auto r = ParseStoreUrl(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
}

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testenv::MakeTempDir("localstore");
    root_ = dir_ + "/store";
    auto s = OpenStore("file://" + root_);
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
  }
  void TearDown() override { testenv::RemoveTree(dir_); }
  std::string dir_, root_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(LocalStoreTest, EveryOperation) {
  Bytes data = Pattern(3 << 20, 1);
  MemorySource src(data);
  // Before the bucket exists, operations say so.
  Status s = store_->Put("a/b.bin", src);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "no-such-bucket");
  auto cb = store_->CreateBucket();
  ASSERT_TRUE(cb.ok());
  EXPECT_TRUE(cb->created);
  struct stat st {};
  ASSERT_EQ(stat(root_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(store_->CreateBucket()->created);

  uint64_t last_done = 0;
  bool finished = false;
  ASSERT_TRUE(store_
                  ->Put("a/b.bin", src,
                        [&](const ProgressEvent& e) {
                          EXPECT_GE(e.done, last_done);
                          last_done = e.done;
                          finished = finished || e.finished;
                        })
                  .ok());
  EXPECT_EQ(last_done, data.size());
  EXPECT_TRUE(finished);
  auto head = store_->Head("a/b.bin");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, data.size());
  EXPECT_FALSE(head->etag.empty());

  VectorSink whole;
  auto info = store_->Download("a/b.bin", whole);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(whole.bytes(), data);

  VectorSink part;
  ASSERT_TRUE(store_->GetRange("a/b.bin", 1000, 5000, part, 0).ok());
  EXPECT_EQ(part.bytes(), Bytes(data.begin() + 1000, data.begin() + 6000));
  s = store_->GetRange("a/b.bin", data.size() - 10, 11, part, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "InvalidRange");

  // Overwrite is atomic and replaces the object.
  Bytes data2 = Pattern(100, 2);
  MemorySource src2(data2);
  ASSERT_TRUE(store_->Put("a/b.bin", src2).ok());
  VectorSink again;
  ASSERT_TRUE(store_->Download("a/b.bin", again).ok());
  EXPECT_EQ(again.bytes(), data2);

  auto missing = store_->Head("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().reason, "not-found");
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->Download("nope", again).error().reason, "not-found");

  ASSERT_TRUE(store_->Delete("a/b.bin").ok());
  ASSERT_TRUE(store_->Delete("a/b.bin").ok());          // idempotent
  EXPECT_FALSE(std::filesystem::exists(root_ + "/a"));  // empty dirs pruned
  EXPECT_EQ(store_->Head("../escape").error().reason, "invalid-key");
}

TEST_F(LocalStoreTest, FailedPutLeavesNothing) {
  ASSERT_TRUE(store_->CreateBucket().ok());
  Bytes old = Pattern(10, 3);
  MemorySource old_src(old);
  ASSERT_TRUE(store_->Put("m.bin", old_src).ok());
  FailingSource bad(10 << 20, 5 << 20);
  Status s = store_->Put("m.bin", bad);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "boom");
  VectorSink v;
  ASSERT_TRUE(store_->Download("m.bin", v).ok());
  EXPECT_EQ(v.bytes(), old);  // the old object is intact
  size_t files = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(root_)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);  // no temporary file left
}

// A writer takes bytes in any order (a sealer writes its header last); only
// Commit makes the object visible, and an abandoned or incomplete one leaves nothing.
TEST_F(LocalStoreTest, WriterTakesBytesInAnyOrderAndOnlyCommitPublishes) {
  ASSERT_TRUE(store_->CreateBucket().ok());
  const Bytes data = Pattern(3 * 4096 + 5, 9);
  auto w = store_->NewWriter("m/x.bin", data.size());
  ASSERT_TRUE(w.ok()) << w.error().ToString();
  for (int piece = 3; piece >= 0; --piece) {  // last piece first
    const size_t off = static_cast<size_t>(piece) * 4096;
    const size_t len = std::min<size_t>(4096, data.size() - off);
    ASSERT_TRUE((*w)->WriteAt(off, std::span(data).subspan(off, len)).ok());
    EXPECT_EQ(store_->Head("m/x.bin").error().reason, "not-found");  // nothing visible yet
  }
  EXPECT_EQ((*w)->WriteAt(data.size() - 1, std::span(data).first(2)).error().reason,
            "out-of-range");
  ASSERT_TRUE((*w)->Commit().ok());
  VectorSink got;
  ASSERT_TRUE(store_->Download("m/x.bin", got).ok());
  EXPECT_EQ(got.bytes(), data);

  {  // abandoned: destroyed without Commit
    auto abandoned = store_->NewWriter("m/y.bin", 10);
    ASSERT_TRUE(abandoned.ok());
    ASSERT_TRUE((*abandoned)->WriteAt(0, std::span(data).first(10)).ok());
  }
  auto incomplete = store_->NewWriter("m/z.bin", 10);
  ASSERT_TRUE(incomplete.ok());
  ASSERT_TRUE((*incomplete)->WriteAt(0, std::span(data).first(9)).ok());
  EXPECT_EQ((*incomplete)->Commit().error().reason, "incomplete");
  size_t files = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(root_ + "/m")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);  // x.bin only: no temporary files, no partial objects
}

// The object's file is cut short while it is read (another process truncating it):
// the read fails as changed-during-read, never a short object handed on as whole.
TEST_F(LocalStoreTest, AnObjectCutShortWhileReadIsChangedDuringRead) {
  ASSERT_TRUE(store_->CreateBucket().ok());
  Bytes data = Pattern(12 << 20, 5);
  MemorySource src(data);
  ASSERT_TRUE(store_->Put("m.bin", src).ok());
  // One reading thread, so the cut comes before the rest is read (the sink is not
  // thread-safe).
  StoreOptions one;
  one.threads = 1;
  auto single = OpenStore("file://" + root_, one);
  ASSERT_TRUE(single.ok());
  struct TruncatingSink final : ByteSink {
    std::string path;
    Bytes got;
    bool cut = false;
    Status WriteAt(uint64_t offset, std::span<const uint8_t> d) override {
      if (!cut) {
        cut = true;
        if (::truncate(path.c_str(), 1 << 20) != 0) return MakeError(ErrorCode::kIo, "t", "t", "t");
      }
      if (got.size() < offset + d.size()) got.resize(offset + d.size());
      std::copy(d.begin(), d.end(), got.begin() + static_cast<std::ptrdiff_t>(offset));
      return Ok{};
    }
  } sink;
  sink.path = root_ + "/m.bin";
  auto info = (*single)->Download("m.bin", sink);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().reason, "changed-during-read") << info.error().ToString();
  EXPECT_EQ(info.error().code, ErrorCode::kIntegrity);
}

TEST_F(LocalStoreTest, ListingOrderPrefixAndPagination) {
  ASSERT_TRUE(store_->CreateBucket().ok());
  Bytes one = {1};
  MemorySource src(one);
  std::vector<std::string> keys;
  for (int i = 0; i < 1234; ++i) {
    char k[64];
    snprintf(k, sizeof(k), "many/%c/obj-%05d", 'a' + i % 3, i);
    keys.push_back(k);
  }
  keys.push_back("many-sibling");
  keys.push_back("other/x");
  keys.push_back("many/\xc3\xa9t\xc3\xa9");
  for (const auto& k : keys) ASSERT_TRUE(store_->Put(k, src).ok()) << k;

  auto page = store_->List("many/", "", 1000);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->objects.size(), 1000u);
  EXPECT_FALSE(page->next_token.empty());
  auto page2 = store_->List("many/", page->next_token, 1000);
  ASSERT_TRUE(page2.ok());
  EXPECT_EQ(page2->objects.size(), 235u);
  EXPECT_TRUE(page2->next_token.empty());

  auto all = store_->ListAll("many/");
  ASSERT_TRUE(all.ok());
  std::vector<std::string> got;
  for (auto& o : *all) got.push_back(o.key);
  std::vector<std::string> want;
  for (auto& k : keys) {
    if (k.starts_with("many/")) want.push_back(k);
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.back(), "many/\xc3\xa9t\xc3\xa9");  // UTF-8 byte order
  auto everything = store_->ListAll("");
  ASSERT_TRUE(everything.ok());
  EXPECT_EQ(everything->size(), keys.size());
}

// One '/' between the store's URL and the key, whichever form the URL has (an S3
// prefix is kept with its trailing '/', a directory without one): a loaded model's
// source read "s3://bucket/prefix//key" before.
TEST(StoreUrls, ObjectUrlJoinsWithOneSlash) {
  auto local = OpenStore("file:///srv/models/");
  ASSERT_TRUE(local.ok()) << local.error().ToString();
  EXPECT_EQ((*local)->ObjectUrl("tiny.msealed"), "file:///srv/models/tiny.msealed");
  StoreOptions o;
  o.endpoint = "http://127.0.0.1:9";
  o.region = "us-east-1";
  for (const auto& [url, want] : std::vector<std::pair<std::string, std::string>>{
           {"s3://bucket/published", "s3://bucket/published/tiny.msealed"},
           {"s3://bucket/published/", "s3://bucket/published/tiny.msealed"},
           {"s3://bucket", "s3://bucket/tiny.msealed"}}) {
    auto s3 = OpenStore(url, o);
    ASSERT_TRUE(s3.ok()) << url << ": " << s3.error().ToString();
    EXPECT_EQ((*s3)->ObjectUrl("tiny.msealed"), want) << url;
  }
}

}  // namespace
}  // namespace modelseal::store
