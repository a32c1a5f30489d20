// Tamper matrix: every modification of a sealed object is detected with its
// specific error, and no plaintext comes out.
#include <gtest/gtest.h>

#include <set>

#include "tests/sealed/testutil.h"

namespace modelseal::sealed {
namespace {

using testing::RandomData;
using testing::SealBytes;
using testing::TestKey;

constexpr uint32_t kChunk = 4096;
constexpr uint64_t kChunks = 64;

class Tamper : public ::testing::Test {
 protected:
  void SetUp() override {
    // 63 full chunks and a short last one.
    sealed_ = SealBytes(RandomData((kChunks - 1) * kChunk + 1000, 99), key_, kChunk, 2);
    ASSERT_EQ(sealed_.header.chunk_count(), kChunks);
  }

  // Unseals `object` and expects failure with `reason`; returns the message.
  std::string ExpectRejected(const Bytes& object, const std::string& reason,
                             const SecretBuffer* key = nullptr) {
    MemorySource src(object);
    auto m = UnsealToMemfd(src, key ? *key : key_);
    EXPECT_FALSE(m.ok()) << "tampered object was accepted";
    if (m.ok()) return "";
    EXPECT_EQ(m.error().module, "sealed");
    EXPECT_EQ(m.error().reason, reason) << m.error().message;
    return m.error().message;
  }

  uint64_t Stride() const { return kChunk + kTagSize; }
  uint64_t ChunkAt(uint64_t i) const { return sealed_.header.chunk_offset(i); }

  SecretBuffer key_ = TestKey();
  testing::SealedObject sealed_;
};

TEST_F(Tamper, UntouchedObjectUnseals) {
  MemorySource src(sealed_.object);
  EXPECT_TRUE(UnsealToMemfd(src, key_).ok());
}

TEST_F(Tamper, EveryHeaderByteFlipIsDetected) {
  const uint32_t hs = sealed_.header.header_size;
  const uint32_t mac_start = hs - 48;
  for (uint32_t i = 0; i < hs; ++i) {
    for (uint8_t mask : {0x01, 0x80}) {
      Bytes t = sealed_.object;
      t[i] ^= mask;
      MemorySource src(t);
      auto m = UnsealToMemfd(src, key_);
      ASSERT_FALSE(m.ok()) << "flip of header byte " << i << " was not detected";
      const std::string& r = m.error().reason;
      if (i < 8) {
        EXPECT_EQ(r, "not-a-container") << i;
      } else if (i < 12) {
        EXPECT_EQ(r, "unsupported-version") << i;
        EXPECT_NE(m.error().message.find("unsupported format version"), std::string::npos);
      } else if (i >= mac_start) {
        EXPECT_EQ(r, "header-auth-failed") << i;
      } else {
        static const std::set<std::string> kStructural = {"malformed-header", "header-auth-failed",
                                                          "truncated"};
        EXPECT_TRUE(kStructural.count(r)) << "byte " << i << ": " << r;
      }
    }
  }
}

TEST_F(Tamper, UnsupportedVersionIsNamed) {
  Bytes t = sealed_.object;
  t[11] = 9;
  EXPECT_EQ(ExpectRejected(t, "unsupported-version"),
            "unsupported format version 9 (this build reads version 1)");
}

TEST_F(Tamper, FlippedChunkBytesAreNamed) {
  struct Case {
    uint64_t chunk;
    uint64_t at;
  };
  for (Case c : {Case{0, 0}, Case{31, 2000}, Case{63, 999}, Case{63, 1000 + 3} /* tag */}) {
    Bytes t = sealed_.object;
    t[ChunkAt(c.chunk) + c.at] ^= 0x20;
    EXPECT_EQ(ExpectRejected(t, "chunk-auth-failed"),
              "chunk " + std::to_string(c.chunk + 1) + " of 64 failed authentication");
  }
}

TEST_F(Tamper, SwappedChunksAreDetected) {
  Bytes t = sealed_.object;
  std::swap_ranges(t.begin() + static_cast<ptrdiff_t>(ChunkAt(10)),
                   t.begin() + static_cast<ptrdiff_t>(ChunkAt(11)),
                   t.begin() + static_cast<ptrdiff_t>(ChunkAt(20)));
  EXPECT_EQ(ExpectRejected(t, "chunk-auth-failed"), "chunk 11 of 64 failed authentication");
}

TEST_F(Tamper, DroppedChunkIsDetected) {
  Bytes t = sealed_.object;
  t.erase(t.begin() + static_cast<ptrdiff_t>(ChunkAt(5)),
          t.begin() + static_cast<ptrdiff_t>(ChunkAt(6)));
  EXPECT_NE(ExpectRejected(t, "truncated").find("truncated after chunk 62 of 64"),
            std::string::npos);
}

TEST_F(Tamper, DuplicatedChunkIsDetected) {
  Bytes t = sealed_.object;
  Bytes dup(t.begin() + static_cast<ptrdiff_t>(ChunkAt(7)),
            t.begin() + static_cast<ptrdiff_t>(ChunkAt(8)));
  t.insert(t.begin() + static_cast<ptrdiff_t>(ChunkAt(8)), dup.begin(), dup.end());
  EXPECT_NE(ExpectRejected(t, "trailing-data").find("unexpected data after the last chunk"),
            std::string::npos);
}

TEST_F(Tamper, AppendedChunkIsDetected) {
  Bytes t = sealed_.object;
  const Bytes extra = RandomData(Stride(), 5);
  t.insert(t.end(), extra.begin(), extra.end());
  ExpectRejected(t, "trailing-data");
  Bytes one = sealed_.object;
  one.push_back(0);
  ExpectRejected(one, "trailing-data");
}

TEST_F(Tamper, TruncationOnABoundaryAndInsideAChunk) {
  Bytes boundary(sealed_.object.begin(),
                 sealed_.object.begin() + static_cast<ptrdiff_t>(ChunkAt(41)));
  EXPECT_EQ(ExpectRejected(boundary, "truncated").substr(0, 30), "truncated after chunk 41 of 64");
  Bytes inside(sealed_.object.begin(),
               sealed_.object.begin() + static_cast<ptrdiff_t>(ChunkAt(41) + 100));
  EXPECT_EQ(ExpectRejected(inside, "truncated").substr(0, 30), "truncated after chunk 41 of 64");
  Bytes last_tag(sealed_.object.begin(), sealed_.object.end() - 1);
  EXPECT_EQ(ExpectRejected(last_tag, "truncated").substr(0, 30), "truncated after chunk 63 of 64");
  Bytes no_chunks(sealed_.object.begin(), sealed_.object.begin() + sealed_.header.header_size + 10);
  EXPECT_EQ(ExpectRejected(no_chunks, "truncated").substr(0, 32),
            "truncated before the first chunk");
  Bytes in_header(sealed_.object.begin(), sealed_.object.begin() + 40);
  ExpectRejected(in_header, "truncated");
  ExpectRejected(Bytes{}, "not-a-container");
}

TEST_F(Tamper, WrongKeyFailsHeaderAuthentication) {
  const SecretBuffer other = TestKey(0x10);
  EXPECT_EQ(ExpectRejected(sealed_.object, "header-auth-failed", &other),
            "header authentication failed (the header was modified or the data key is wrong)");
}

TEST_F(Tamper, RandomAccessFailsOnlyForTheDamagedChunk) {
  Bytes t = sealed_.object;
  t[ChunkAt(3) + 17] ^= 1;
  MemorySource src(t);
  auto reader = SealedReader::Open(src, key_);
  ASSERT_TRUE(reader.ok());
  Bytes good(100);
  ASSERT_TRUE((*reader)->ReadAt(2 * kChunk, good).ok());
  Bytes bad(2 * kChunk);
  bad.assign(bad.size(), 0xee);
  auto s = (*reader)->ReadAt(2 * kChunk + 50, bad);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "chunk 4 of 64 failed authentication");
  for (uint8_t b : bad) ASSERT_EQ(b, 0) << "plaintext left in the output after a failed read";
}

TEST_F(Tamper, FailedDecryptAllLeavesNoPlaintext) {
  Bytes t = sealed_.object;
  t[ChunkAt(60)] ^= 1;
  MemorySource src(t);
  auto reader = SealedReader::Open(src, key_);
  ASSERT_TRUE(reader.ok());
  Bytes out(sealed_.plain.size());
  ASSERT_FALSE((*reader)->DecryptAll(out, 2, {}).ok());
  for (uint8_t b : out) ASSERT_EQ(b, 0);
}

TEST(Inspect, NonContainerIsNamed) {
  const Bytes junk = RandomData(1000, 4);
  MemorySource src(junk);
  auto h = ReadHeaderUnauthenticated(src);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().reason, "not-a-container");
  EXPECT_EQ(h.error().message, "not a modelseal container (bad magic)");
}

}  // namespace
}  // namespace modelseal::sealed
