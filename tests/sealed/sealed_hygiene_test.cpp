// Key and plaintext hygiene of the container: the AES key schedule and plaintext
// scratch buffers do not outlive the call that used them, and a failed unseal
// leaves no plaintext in the memfd.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <unistd.h>

#include <dirent.h>
#include <cstring>
#include <optional>

#include "sealed/internal.h"
#include "tests/sealed/testutil.h"
#include "tests/support/memscan.h"

namespace modelseal::sealed {
namespace {

using testing::RandomData;
using testing::SealBytes;
using testing::TestKey;
using testsupport::DescribeHits;
using testsupport::FindInMemory;
using testsupport::MaskedNeedle;

constexpr uint32_t kChunk = 4096;  // small buffers come from the heap, where freed bytes stay

// The chunk key as docs/container.md defines it, derived with OpenSSL's HKDF
// directly (not through the code under test), in a child process; only the
// masked key comes back.
MaskedNeedle ChunkKeyNeedle(const SecretBuffer& data_key, const std::array<uint8_t, 32>& salt) {
  // A forked child sees a SecretBuffer as zeros (MADV_WIPEONFORK): pass a copy.
  std::array<uint8_t, kDataKeySize> ikm{};
  std::memcpy(ikm.data(), data_key.data(), ikm.size());
  return testsupport::NeedleFromChild(32, [&](uint8_t* out) {
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
    char digest[] = "SHA384";
    char info[] = "modelseal/v1 chunk-key";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm.data(), ikm.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()),
                                          salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, std::strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(ctx, out, 32, params) != 1) std::abort();
  });
}

// Plaintext made on the fly and copied into the caller's scratch, so the only
// copies in memory are the ones the code under test makes.
uint8_t GeneratedByte(uint64_t at) {
  uint64_t z = (at / 8 + 0x9e3779b97f4a7c15ULL) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 31)) * 0x94d049bb133111ebULL;
  z ^= z >> 29;
  return static_cast<uint8_t>(z >> (8 * (at % 8)));
}

class GeneratedSource final : public ByteSource {
 public:
  explicit GeneratedSource(uint64_t size) : size_(size) {}
  uint64_t size() const override { return size_; }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                          uint8_t* scratch) const override {
    if (offset > size_ || len > size_ - offset) {
      return MakeError(ErrorCode::kInvalidArgument, "io", "read-past-end", "past end");
    }
    for (size_t i = 0; i < len; ++i) scratch[i] = GeneratedByte(offset + i);
    return std::span<const uint8_t>(scratch, len);
  }

 private:
  uint64_t size_;
};

MaskedNeedle GeneratedNeedle(uint64_t at, size_t len) {
  return testsupport::NeedleFromChild(len, [&](uint8_t* out) {
    for (size_t i = 0; i < len; ++i) out[i] = GeneratedByte(at + i);
  });
}

class DiscardSink final : public ByteSink {
 public:
  Status WriteAt(uint64_t, std::span<const uint8_t>) override { return Ok{}; }
};

// Reads fail from `limit` on, as a disk or network error would.
class FailingFrom final : public ByteSource {
 public:
  FailingFrom(std::span<const uint8_t> data, uint64_t limit) : data_(data), limit_(limit) {}
  uint64_t size() const override { return data_.size(); }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                          uint8_t* scratch) const override {
    if (offset + len > limit_) {
      return MakeError(ErrorCode::kIo, "io", "os", "read failed: Input/output error");
    }
    std::memcpy(scratch, data_.data() + offset, len);
    return std::span<const uint8_t>(scratch, len);
  }

 private:
  std::span<const uint8_t> data_;
  uint64_t limit_;
};

testing::SealedObject SealGenerated(const SecretBuffer& key, uint64_t size) {
  GeneratedSource src(size);
  SealKey sk{&key, "arn:aws:kms:eu-west-1:111122223333:key/test", Bytes{1}, {}};
  SealOptions so;
  so.chunk_size = kChunk;
  so.threads = 1;  // the calling thread seals: what lingers, lingers here
  VectorSink out;
  auto h = Seal(src, out, sk, {"tiny", "file", "tiny.gguf"}, so);
  if (!h.ok()) throw std::runtime_error(h.error().ToString());
  return {{}, std::move(out.bytes()), *h};
}

TEST(KeyHygiene, ChunkKeyScheduleDoesNotOutliveSealing) {
  const SecretBuffer key = TestKey();
  const auto obj = SealGenerated(key, 5 * kChunk + 10);
  const MaskedNeedle chunk_key = ChunkKeyNeedle(key, obj.header.salt);
  const auto hits = FindInMemory(chunk_key);
  EXPECT_TRUE(hits.empty()) << "the chunk key is still in memory after Seal returned:\n"
                            << DescribeHits(hits);
}

TEST(KeyHygiene, ChunkKeyScheduleDoesNotOutliveTheReader) {
  const SecretBuffer key = TestKey();
  const auto obj = SealGenerated(key, 5 * kChunk + 10);
  const MaskedNeedle chunk_key = ChunkKeyNeedle(key, obj.header.salt);
  ASSERT_TRUE(FindInMemory(chunk_key).empty());
  {
    MemorySource src(obj.object);
    auto reader = SealedReader::Open(src, key);
    ASSERT_TRUE(reader.ok());
    Bytes out(obj.header.plaintext_size);
    ASSERT_TRUE((*reader)->ReadAt(100, std::span(out).first(2 * kChunk)).ok());
    ASSERT_TRUE((*reader)->DecryptAll(out, 1, {}).ok());
    Bytes one(kChunk);
    ASSERT_TRUE((*reader)
                    ->DecryptChunkFrom(1,
                                       std::span<const uint8_t>(obj.object)
                                           .subspan(obj.header.chunk_offset(1), kChunk + kTagSize),
                                       one)
                    .ok());
    auto m = UnsealToMemfd(src, key, {1, true, {}});
    ASSERT_TRUE(m.ok());
    // The needle is right: while the reader lives, its chunk key is in memory.
    ASSERT_FALSE(FindInMemory(chunk_key).empty());
    OPENSSL_cleanse(out.data(), out.size());
    OPENSSL_cleanse(one.data(), one.size());
  }
  const auto hits = FindInMemory(chunk_key);
  EXPECT_TRUE(hits.empty()) << "the chunk key is still in memory after the reader is gone:\n"
                            << DescribeHits(hits);
}

TEST(PlaintextHygiene, SealLeavesNoPlaintextInItsBuffers) {
  const SecretBuffer key = TestKey();
  const uint64_t size = 6 * kChunk + 99;
  const MaskedNeedle marker = GeneratedNeedle(3 * kChunk + 200, 64);
  {  // The marker is right: the source makes it.
    Bytes control(kChunk);
    ASSERT_TRUE(GeneratedSource(size).ReadAt(3 * kChunk, kChunk, control.data()).ok());
    ASSERT_FALSE(FindInMemory(marker).empty());
    OPENSSL_cleanse(control.data(), control.size());
  }
  const auto obj = SealGenerated(key, size);
  auto hits = FindInMemory(marker);
  EXPECT_TRUE(hits.empty()) << "plaintext left behind by Seal:\n" << DescribeHits(hits);

  VectorSink legacy;
  GeneratedSource src(size);
  ASSERT_TRUE(SealLegacy(src, legacy, key).ok());
  hits = FindInMemory(marker);
  EXPECT_TRUE(hits.empty()) << "plaintext left behind by SealLegacy:\n" << DescribeHits(hits);
}

TEST(PlaintextHygiene, AFailedReadAtLeavesNoPlaintextBehind) {
  const SecretBuffer key = TestKey();
  const auto obj = SealGenerated(key, 6 * kChunk);
  const MaskedNeedle marker = GeneratedNeedle(kChunk + 500, 64);  // in chunk 2
  // The source fails inside chunk 3, after chunks 1 and 2 were decrypted.
  FailingFrom src(obj.object, obj.header.chunk_offset(2) + 10);
  auto reader = SealedReader::Open(src, key);
  ASSERT_TRUE(reader.ok());
  {  // The marker is right: a successful read puts it in memory.
    Bytes control(kChunk);
    ASSERT_TRUE((*reader)->ReadAt(kChunk, control).ok());
    ASSERT_FALSE(FindInMemory(marker).empty());
    OPENSSL_cleanse(control.data(), control.size());
  }
  Bytes out(3 * kChunk, 0xee);
  Status s = (*reader)->ReadAt(0, out);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; }));
  const auto hits = FindInMemory(marker);
  EXPECT_TRUE(hits.empty()) << "plaintext left behind by a failed ReadAt:\n" << DescribeHits(hits);
}

// ---------------------------------------------------------- failed unseals

// Finds the memfd UnsealToMemfd is filling (by its name) and opens it, so the
// test can look at it after UnsealToMemfd returned.
int OpenUnsealingMemfd() {
  DIR* d = opendir("/proc/self/fd");
  int found = -1;
  while (dirent* e = readdir(d)) {
    const std::string link = "/proc/self/fd/" + std::string(e->d_name);
    char target[512] = {0};
    if (readlink(link.c_str(), target, sizeof(target) - 1) <= 0) continue;
    if (std::string(target).rfind("/memfd:modelseal:", 0) == 0) {
      found = ::open(link.c_str(), O_RDWR | O_CLOEXEC);  // writable: it may add seals
      break;
    }
  }
  closedir(d);
  return found;
}

// Watches one UnsealToMemfd: keeps the memfd open and one page of it in a pipe,
// and optionally does something to it from the progress callback.
struct UnsealWatch {
  int fd = -1;
  int pipe_fds[2] = {-1, -1};
  bool spliced = false;
  std::function<void(int)> on_progress;

  ~UnsealWatch() {
    if (fd >= 0) ::close(fd);
    for (int p : pipe_fds)
      if (p >= 0) ::close(p);
  }
  ProgressFn Callback(uint64_t splice_at) {
    return [this, splice_at](const ProgressEvent& e) {
      if (fd < 0) fd = OpenUnsealingMemfd();
      if (!spliced && e.done > splice_at + 4096 && fd >= 0 && pipe(pipe_fds) == 0) {
        off64_t off = static_cast<off64_t>(splice_at);
        spliced = splice(fd, &off, pipe_fds[1], nullptr, 4096, 0) == 4096;
      }
      if (on_progress) on_progress(fd);
    };
  }
  bool MemfdIsZero(uint64_t size) const {
    Bytes b(size);
    if (pread(fd, b.data(), b.size(), 0) != static_cast<ssize_t>(size)) return false;
    return std::all_of(b.begin(), b.end(), [](uint8_t v) { return v == 0; });
  }
  bool PageIsZero() const {
    Bytes b(4096);
    if (read(pipe_fds[0], b.data(), b.size()) != 4096) return false;
    return std::all_of(b.begin(), b.end(), [](uint8_t v) { return v == 0; });
  }
};

TEST(PlaintextHygiene, UnsealFailuresLeaveNoPlaintextInTheMemfd) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(64 * kChunk, 21);
  const auto obj = SealBytes(plain, key, kChunk, 1);
  struct Case {
    const char* what;
    Bytes object;
    std::function<void(int)> meddle;
    bool rehash;
  };
  std::vector<Case> cases;
  {  // the last chunk fails authentication after all others were written
    Bytes t = obj.object;
    t[obj.header.chunk_offset(63) + 5] ^= 1;
    cases.push_back({"chunk-auth-failed", t, nullptr, false});
  }
  // Sealing the memfd fails (someone sealed it against further seals first).
  cases.push_back(
      {"seal fails", obj.object, [](int fd) { fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL); }, false});
  {  // --rehash finds a digest that does not match (an owner's inconsistent header)
    Header h = obj.header;
    h.sha256[0] ^= 1;
    Bytes hdr = internal::EncodeHeaderWithoutMac(h);
    auto keys = internal::DeriveKeys(key, h.salt);
    ASSERT_TRUE(keys.ok());
    auto mac = internal::HeaderMac(keys->mac_key, hdr);
    ASSERT_TRUE(mac.ok());
    hdr.insert(hdr.end(), mac->begin(), mac->end());
    Bytes t = obj.object;
    std::copy(hdr.begin(), hdr.end(), t.begin());
    cases.push_back({"digest-mismatch", t, nullptr, true});
  }
  for (auto& c : cases) {
    SCOPED_TRACE(c.what);
    UnsealWatch watch;
    watch.on_progress = c.meddle;
    MemorySource src(c.object);
    auto m = UnsealToMemfd(src, key, {1, c.rehash, watch.Callback(20 * kChunk)});
    ASSERT_FALSE(m.ok());
    if (std::string(c.what) != "seal fails") {  // the others are named by their reason
      EXPECT_EQ(m.error().reason, c.what) << m.error().ToString();
    }
    ASSERT_GE(watch.fd, 0);
    ASSERT_TRUE(watch.spliced);
    EXPECT_TRUE(watch.MemfdIsZero(plain.size())) << "plaintext left in the memfd";
    EXPECT_TRUE(watch.PageIsZero()) << "a page of plaintext was freed without being wiped";
  }
}

}  // namespace
}  // namespace modelseal::sealed
