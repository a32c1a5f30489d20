// A sealed object that changes while it is being read: the reader parses exactly
// the header bytes it authenticated, decrypts from a private copy of each chunk,
// and turns a file that is rewritten or truncated under it into a clear error,
// never a forged header field, unauthenticated plaintext or a SIGBUS.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/sealed/testutil.h"

namespace modelseal::sealed {
namespace {

using testing::RandomData;
using testing::SealBytes;
using testing::TestKey;

constexpr uint32_t kChunk = 4096;

// A file in a fresh temporary directory, removed with it.
class TempFile {
 public:
  explicit TempFile(const Bytes& content) {
    dir_ = std::filesystem::temp_directory_path() /
           ("ms-race-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "object.sealed").string();
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0 || !PwriteAll(fd_, 0, content, "test", "write").ok()) std::abort();
  }
  ~TempFile() {
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::string path_;
  int fd_ = -1;
};

// What FileSource used to be: views into a shared mapping of the file, which
// change when anyone writes the file.
class SharedMappingSource final : public ByteSource {
 public:
  SharedMappingSource(int fd, uint64_t size) : size_(size) {
    void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) std::abort();
    map_ = static_cast<const uint8_t*>(p);
  }
  ~SharedMappingSource() override { munmap(const_cast<uint8_t*>(map_), size_); }
  uint64_t size() const override { return size_; }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len, uint8_t*) const override {
    if (offset > size_ || len > size_ - offset) {
      return MakeError(ErrorCode::kInvalidArgument, "io", "read-past-end", "past end");
    }
    return std::span<const uint8_t>(map_ + offset, len);
  }

 private:
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
};

// Serves `first` the first time a byte is read and `second` on every later read
// of it (an object replaced between two reads of the same range).
class TwoFacedSource final : public ByteSource {
 public:
  TwoFacedSource(Bytes first, Bytes second)
      : first_(std::move(first)), second_(std::move(second)), seen_(first_.size(), false) {}
  uint64_t size() const override { return first_.size(); }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                          uint8_t* scratch) const override {
    if (offset > first_.size() || len > first_.size() - offset) {
      return MakeError(ErrorCode::kInvalidArgument, "io", "read-past-end", "past end");
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < len; ++i) {
      const size_t at = static_cast<size_t>(offset) + i;
      scratch[i] = seen_[at] ? second_[at] : first_[at];
      seen_[at] = true;
    }
    return std::span<const uint8_t>(scratch, len);
  }

 private:
  Bytes first_, second_;
  mutable std::mutex mu_;
  mutable std::vector<bool> seen_;
};

// Runs `step` over and over on a second thread until the object is dropped.
class Rewriter {
 public:
  explicit Rewriter(std::function<void(uint64_t)> step)
      : thread_([this, step = std::move(step)] {
          for (uint64_t i = 0; !stop_.load(std::memory_order_relaxed); ++i) step(i);
        }) {}
  ~Rewriter() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Two objects under one key and salt that differ only in a header field: `good`
// is genuine; `forged` has a different SHA-384 (as a forger would want measured
// into PCR15) and good's MAC, so on its own it fails authentication.
struct HeaderPair {
  testing::SealedObject good;
  Bytes forged;
  size_t sha384_at = 0;  // offset of the SHA-384 field's value in the header
};

HeaderPair MakeHeaderPair(const SecretBuffer& key, size_t plain_size) {
  HeaderPair p;
  p.good = SealBytes(RandomData(plain_size, 7), key, kChunk, 1);
  const auto& sha = p.good.header.sha384;
  auto it = std::search(p.good.object.begin(), p.good.object.begin() + p.good.header.header_size,
                        sha.begin(), sha.end());
  p.sha384_at = static_cast<size_t>(it - p.good.object.begin());
  p.forged = p.good.object;
  for (size_t i = 0; i < 48; ++i) p.forged[p.sha384_at + i] ^= 0xff;
  return p;
}

// Reasons that are acceptable when the object changes during a read.
const std::set<std::string> kChangedReasons = {"header-auth-failed", "chunk-auth-failed",
                                               "truncated",          "changed-during-read",
                                               "malformed-header",   "trailing-data"};

// A forger flips the header between a genuine and a forged SHA-384 while the
// reader opens it through `make_source`. Every open that succeeds must show the
// genuine header: the bytes parsed are the bytes authenticated.
void ExpectNoForgedHeader(
    const std::function<std::unique_ptr<ByteSource>(const TempFile&)>& make_source, int rounds) {
  const SecretBuffer key = TestKey();
  const HeaderPair pair = MakeHeaderPair(key, 3 * kChunk);
  TempFile file(pair.good.object);
  std::unique_ptr<ByteSource> src = make_source(file);
  int rejected = 0, accepted = 0;
  {
    const std::span<const uint8_t> good(pair.good.object.data() + pair.sha384_at, 48);
    const std::span<const uint8_t> forged(pair.forged.data() + pair.sha384_at, 48);
    Rewriter forger([&](uint64_t i) {
      (void)PwriteAll(file.fd(), pair.sha384_at, (i % 2) ? good : forged, "test", "rewrite");
    });
    for (int round = 0; round < rounds; ++round) {
      auto reader = SealedReader::Open(*src, key);
      if (!reader.ok()) {
        ASSERT_TRUE(kChangedReasons.count(reader.error().reason)) << reader.error().ToString();
        ++rejected;
        continue;
      }
      ++accepted;
      ASSERT_EQ(ToHex((*reader)->header().sha384), ToHex(pair.good.header.sha384))
          << "round " << round << ": a header field that was not authenticated was returned";
    }
  }
  std::printf("[          ] %d opens accepted (genuine header), %d rejected while rewritten\n",
              accepted, rejected);
}

TEST(ChangingObject, HeaderFromASharedMappingIsParsedFromTheAuthenticatedCopy) {
  // The reader must not parse a view that may change after it was authenticated.
  ExpectNoForgedHeader(
      [](const TempFile& f) {
        return std::make_unique<SharedMappingSource>(f.fd(), std::filesystem::file_size(f.path()));
      },
      20000);
}

TEST(ChangingObject, HeaderOfAFileRewrittenDuringOpenIsNeverForged) {
  ExpectNoForgedHeader(
      [](const TempFile& f) {
        auto s = FileSource::Open(f.path());
        if (!s.ok()) std::abort();
        return std::unique_ptr<ByteSource>(std::move(*s));
      },
      20000);
}

// Chunks rewritten while they are decrypted: each read either returns exactly
// the sealed plaintext or fails with chunk-auth-failed; never other bytes.
TEST(ChangingObject, ChunksRewrittenDuringDecryptionNeverYieldOtherPlaintext) {
  const SecretBuffer key = TestKey();
  const auto obj = SealBytes(RandomData(16 * kChunk, 8), key, kChunk, 1);
  TempFile file(obj.object);
  Bytes flipped(obj.object.begin() + static_cast<ptrdiff_t>(obj.header.chunk_offset(0)),
                obj.object.end());
  for (size_t i = 0; i < flipped.size(); i += 64) flipped[i] ^= 0x01;
  const std::span<const uint8_t> good(obj.object.data() + obj.header.chunk_offset(0),
                                      flipped.size());
  for (int kind = 0; kind < 2; ++kind) {
    std::unique_ptr<ByteSource> src;
    if (kind == 0) {
      src = std::make_unique<SharedMappingSource>(file.fd(), obj.object.size());
    } else {
      auto f = FileSource::Open(file.path());
      ASSERT_TRUE(f.ok());
      src = std::move(*f);
    }
    auto reader = SealedReader::Open(*src, key);
    ASSERT_TRUE(reader.ok()) << reader.error().ToString();
    int failed = 0;
    {
      Rewriter writer([&](uint64_t i) {
        (void)PwriteAll(file.fd(), obj.header.chunk_offset(0),
                        (i % 2) ? good : std::span<const uint8_t>(flipped), "test", "rewrite");
      });
      Bytes out(obj.plain.size());
      for (int round = 0; round < 400; ++round) {
        Status s = (*reader)->DecryptAll(out, 2, {});
        if (!s.ok()) {
          ASSERT_EQ(s.error().reason, "chunk-auth-failed") << s.error().ToString();
          ++failed;
          continue;
        }
        ASSERT_TRUE(out == obj.plain) << "round " << round << ": plaintext that was not sealed";
      }
    }
    ASSERT_TRUE(PwriteAll(file.fd(), obj.header.chunk_offset(0), good, "test", "restore").ok());
    std::printf("[          ] %s: %d of 400 reads failed authentication while rewritten\n",
                kind == 0 ? "shared mapping" : "file", failed);
  }
}

// Truncating and restoring the file while it is unsealed: every attempt either
// returns the sealed plaintext or fails with a clear reason; the reader never
// dies of SIGBUS. Runs in a child process so a crash is a test failure.
void UnsealWhileTruncated() {
  const SecretBuffer key = TestKey();
  const auto obj = SealBytes(RandomData(64 * kChunk + 100, 9), key, kChunk, 1);
  TempFile file(obj.object);
  const uint64_t cut = obj.header.chunk_offset(40);
  const std::span<const uint8_t> tail(obj.object.data() + cut, obj.object.size() - cut);
  std::map<std::string, int> outcomes;
  {
    Rewriter truncator([&](uint64_t i) {
      if (i % 2 == 0) {
        if (ftruncate(file.fd(), static_cast<off_t>(cut)) != 0) std::abort();
      } else {
        (void)PwriteAll(file.fd(), cut, tail, "test", "restore");
      }
    });
    for (int round = 0; round < 300; ++round) {
      auto src = FileSource::Open(file.path());
      if (!src.ok()) std::abort();
      auto m = UnsealToMemfd(**src, key, {2, false, {}});
      if (m.ok()) {
        if (testing::ReadAll(*m) != obj.plain) {
          std::fprintf(stderr, "round %d: unsealed bytes differ from the sealed plaintext\n",
                       round);
          std::exit(3);
        }
        ++outcomes["ok"];
      } else {
        if (!kChangedReasons.count(m.error().reason)) {
          std::fprintf(stderr, "round %d: unexpected error %s\n", round,
                       m.error().ToString().c_str());
          std::exit(4);
        }
        ++outcomes[m.error().reason];
      }
    }
  }
  for (const auto& [what, n] : outcomes) std::fprintf(stderr, "outcome %s: %d\n", what.c_str(), n);
  std::exit(0);
}

TEST(ChangingObject, FileTruncatedDuringUnsealGivesAnErrorNotSigbus) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(UnsealWhileTruncated(), ::testing::ExitedWithCode(0), "outcome");
}

// The same range read twice gives different bytes (the object was replaced in
// between): the reader reads every byte once, so it sees one consistent object.
TEST(ChangingObject, EveryByteIsReadOnceSoASecondVersionIsNeverMixedIn) {
  const SecretBuffer key = TestKey();
  const auto first = SealBytes(RandomData(5 * kChunk + 3, 10), key, kChunk, 1);
  // A genuine object of another model under the same key: another header size.
  SealKey sk{&key,
             "arn:aws:kms:eu-west-1:111122223333:key/test",
             Bytes{0xde, 0xad, 0xbe, 0xef},
             {{"model", "tiny"}, {"owner", "party-a"}}};
  SealOptions so;
  so.chunk_size = kChunk;
  so.created_unix_ms = 1764000000000;
  const Bytes second_bytes = RandomData(first.plain.size(), 11);
  MemorySource second_plain(second_bytes);
  VectorSink second;
  ASSERT_TRUE(Seal(second_plain, second, sk, {"another-model", "file", "other.gguf"}, so).ok());
  ASSERT_NE(second.bytes().size(), first.object.size());  // another header size
  second.bytes().resize(first.object.size());

  TwoFacedSource src(first.object, second.bytes());
  auto m = UnsealToMemfd(src, key, {1, true, {}});
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(testing::ReadAll(*m), first.plain);
}

// A chunk whose bytes change on a second read: DecryptChunkFrom and the reader
// decrypt and authenticate one private copy.
TEST(ChangingObject, DecryptChunkFromUsesOneCopyOfTheCallersBytes) {
  const SecretBuffer key = TestKey();
  const auto obj = SealBytes(RandomData(4 * kChunk, 12), key, kChunk, 1);
  MemorySource src(obj.object);
  auto reader = SealedReader::Open(src, key);
  ASSERT_TRUE(reader.ok());
  // The caller's download buffer lives in a shared mapping another thread rewrites.
  TempFile file(obj.object);
  SharedMappingSource shared(file.fd(), obj.object.size());
  const uint64_t at = obj.header.chunk_offset(1);
  const size_t len = kChunk + kTagSize;
  Bytes flipped(obj.object.begin() + static_cast<ptrdiff_t>(at),
                obj.object.begin() + static_cast<ptrdiff_t>(at + len));
  for (size_t i = 0; i < flipped.size(); i += 97) flipped[i] ^= 0x80;
  const std::span<const uint8_t> good(obj.object.data() + at, len);
  const Bytes expected(obj.plain.begin() + kChunk, obj.plain.begin() + 2 * kChunk);
  int failed = 0;
  {
    Rewriter writer([&](uint64_t i) {
      (void)PwriteAll(file.fd(), at, (i % 2) ? good : std::span<const uint8_t>(flipped), "test",
                      "rewrite");
    });
    Bytes out(kChunk);
    for (int round = 0; round < 20000; ++round) {
      auto view = shared.ReadAt(at, len, nullptr);
      ASSERT_TRUE(view.ok());
      Status s = (*reader)->DecryptChunkFrom(1, *view, out);
      if (!s.ok()) {
        ASSERT_EQ(s.error().reason, "chunk-auth-failed");
        ++failed;
        continue;
      }
      ASSERT_TRUE(out == expected) << "round " << round << ": plaintext that was not sealed";
    }
  }
  std::printf("[          ] %d of 20000 decryptions failed authentication while rewritten\n",
              failed);
}

}  // namespace
}  // namespace modelseal::sealed
