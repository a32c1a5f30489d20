#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/clock.h"
#include "tests/sealed/testutil.h"

namespace modelseal::sealed {
namespace {

using testing::RandomData;
using testing::ReadAll;
using testing::SealBytes;
using testing::TestKey;

constexpr uint32_t kChunk = 4096;

class RoundTrip : public ::testing::TestWithParam<size_t> {};

TEST_P(RoundTrip, UnsealReturnsTheSameBytes) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(GetParam(), static_cast<uint32_t>(GetParam()));
  for (unsigned threads : {1u, 2u, 5u}) {
    auto s = SealBytes(plain, key, kChunk, threads);
    EXPECT_EQ(s.object.size(), s.header.sealed_size());
    EXPECT_EQ(s.header.plaintext_size, plain.size());
    MemorySource src(s.object);
    auto m = UnsealToMemfd(src, key, {threads, /*rehash=*/true, {}});
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    EXPECT_TRUE(m->sealed());
    EXPECT_EQ(ReadAll(*m), plain);
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, RoundTrip,
                         ::testing::Values(0, 1, kChunk - 1, kChunk, kChunk + 1, 2 * kChunk,
                                           37 * kChunk + 5, 600 * kChunk + 17));

TEST(Seal, HeaderCarriesDigestsAndMetadata) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(10000, 1);
  auto s = SealBytes(plain, key, kChunk, 2);
  uint8_t d384[48];
  uint8_t d256[32];
  unsigned len;
  EVP_Digest(plain.data(), plain.size(), d384, &len, EVP_sha384(), nullptr);
  EVP_Digest(plain.data(), plain.size(), d256, &len, EVP_sha256(), nullptr);
  EXPECT_EQ(ToHex(s.header.sha384), ToHex(d384));
  EXPECT_EQ(ToHex(s.header.sha256), ToHex(d256));

  MemorySource src(s.object);
  auto h = ReadHeaderUnauthenticated(src);
  ASSERT_TRUE(h.ok()) << h.error().ToString();
  EXPECT_EQ(h->model.name, "tiny");
  EXPECT_EQ(h->model.file_name, "tiny.gguf");
  EXPECT_EQ(h->kms_key_id, "arn:aws:kms:eu-west-1:111122223333:key/test");
  EXPECT_EQ(h->encrypted_data_key, (Bytes{0xde, 0xad, 0xbe, 0xef}));
  EXPECT_EQ(h->encryption_context.at("owner"), "party-a");
  EXPECT_EQ(h->chunk_count(), 3u);
  EXPECT_EQ(h->created_unix_ms, 1764000000000u);
  EXPECT_EQ(ToHex(h->sha384), ToHex(d384));
}

// Without a creation time of its own, a header is stamped with the clock's.
TEST(Seal, HeaderWithoutACreationTimeTakesTheClocks) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(100, 3);
  SealKey sk{&key, "arn:aws:kms:eu-west-1:111122223333:key/test", Bytes{1}, {}};
  MemorySource src(plain);
  VectorSink out;
  Result<Header> h = Error{};
  {
    ScopedWallClock at(1767225600123ULL);
    h = Seal(src, out, sk, {"tiny", "file", "tiny.gguf"}, SealOptions{});
  }
  ASSERT_TRUE(h.ok()) << h.error().ToString();
  MemorySource sealed_src(out.bytes());
  auto read = ReadHeaderUnauthenticated(sealed_src);
  ASSERT_TRUE(read.ok()) << read.error().ToString();
  EXPECT_EQ(read->created_unix_ms, 1767225600123u);
}

TEST(Seal, ParallelAndSequentialOutputIdentical) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(300 * kChunk + 99, 7);
  std::array<uint8_t, 32> salt{};
  salt.fill(0x5a);
  const auto one = SealBytes(plain, key, kChunk, 1, salt);
  for (unsigned threads : {2u, 3u, 8u}) {
    EXPECT_EQ(SealBytes(plain, key, kChunk, threads, salt).object, one.object) << threads;
  }
  MemorySource src(one.object);
  auto reader = SealedReader::Open(src, key);
  ASSERT_TRUE(reader.ok());
  Bytes seq(plain.size()), par(plain.size());
  ASSERT_TRUE((*reader)->DecryptAll(seq, 1, {}).ok());
  ASSERT_TRUE((*reader)->DecryptAll(par, 4, {}).ok());
  EXPECT_EQ(seq, plain);
  EXPECT_EQ(par, plain);
}

// Objects larger than one pipeline batch (8 MiB), with out-of-order writes.
TEST(Seal, ManyBatchesRoundTrip) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData((21 << 20) + 12345, 21);
  std::array<uint8_t, 32> salt{};
  const auto one = SealBytes(plain, key, 1 << 20, 1, salt);
  for (unsigned threads : {2u, 5u, 2u, 5u, 3u}) {  // repeated: races show up only sometimes
    const auto par = SealBytes(plain, key, 1 << 20, threads, salt);
    EXPECT_EQ(par.object, one.object) << threads;
    MemorySource src(par.object);
    auto m = UnsealToMemfd(src, key, {threads, true, {}});
    ASSERT_TRUE(m.ok()) << m.error().ToString();
    EXPECT_EQ(ReadAll(*m), plain);
  }
}

TEST(Seal, RandomSaltMakesEveryObjectDifferent) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(5000, 3);
  EXPECT_NE(SealBytes(plain, key, kChunk, 1).object, SealBytes(plain, key, kChunk, 1).object);
}

TEST(SealedReader, RandomAccessEqualsTheSameSlice) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(50 * kChunk + 333, 11);
  auto s = SealBytes(plain, key, kChunk, 2);
  MemorySource src(s.object);
  auto reader = SealedReader::Open(src, key);
  ASSERT_TRUE(reader.ok()) << reader.error().ToString();
  std::mt19937_64 rng(5);
  for (int i = 0; i < 300; ++i) {
    const uint64_t off = rng() % plain.size();
    const uint64_t len = rng() % std::min<uint64_t>(plain.size() - off + 1, 3 * kChunk);
    Bytes out(len);
    ASSERT_TRUE((*reader)->ReadAt(off, out).ok());
    ASSERT_TRUE(std::equal(out.begin(), out.end(), plain.begin() + static_cast<ptrdiff_t>(off)))
        << off << "+" << len;
  }
  // Exactly the last byte, and a read past the end.
  Bytes last(1);
  ASSERT_TRUE((*reader)->ReadAt(plain.size() - 1, last).ok());
  EXPECT_EQ(last[0], plain.back());
  Bytes past(2);
  auto bad = (*reader)->ReadAt(plain.size() - 1, past);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().reason, "out-of-range");
}

// The load pipeline decrypts downloaded ranges chunk by chunk with DecryptChunkFrom.
TEST(SealedReader, DecryptChunkFromDecryptsEachChunkOfTheObject) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(6 * kChunk + 70, 13);
  auto s = SealBytes(plain, key, kChunk, 2);
  MemorySource src(s.object);
  auto reader = SealedReader::Open(src, key);
  ASSERT_TRUE(reader.ok()) << reader.error().ToString();
  const Header& h = (*reader)->header();
  ASSERT_EQ(h.chunk_count(), 7u);
  for (uint64_t i = 0; i < h.chunk_count(); ++i) {
    const uint32_t len = h.chunk_plain_size(i);
    const std::span<const uint8_t> sealed(s.object.data() + h.chunk_offset(i), len + kTagSize);
    Bytes out(len);
    ASSERT_TRUE((*reader)->DecryptChunkFrom(i, sealed, out).ok()) << i;
    ASSERT_TRUE(std::equal(out.begin(), out.end(), plain.begin() + i * kChunk)) << i;
  }
  // Bytes of another chunk, a flipped bit, wrong sizes and a chunk past the end.
  Bytes out(kChunk, 0xee);
  const std::span<const uint8_t> chunk2(s.object.data() + h.chunk_offset(2), kChunk + kTagSize);
  auto wrong_index = (*reader)->DecryptChunkFrom(3, chunk2, out);
  ASSERT_FALSE(wrong_index.ok());
  EXPECT_EQ(wrong_index.error().reason, "chunk-auth-failed");
  EXPECT_EQ(wrong_index.error().message, "chunk 4 of 7 failed authentication");
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; }));
  Bytes flipped(chunk2.begin(), chunk2.end());
  flipped[kChunk + 3] ^= 1;  // in the tag
  EXPECT_EQ((*reader)->DecryptChunkFrom(2, flipped, out).error().reason, "chunk-auth-failed");
  EXPECT_EQ((*reader)->DecryptChunkFrom(2, chunk2.first(kChunk), out).error().reason,
            "out-of-range");
  Bytes small(kChunk - 1);
  EXPECT_EQ((*reader)->DecryptChunkFrom(2, chunk2, small).error().reason, "out-of-range");
  EXPECT_EQ((*reader)->DecryptChunkFrom(7, chunk2, out).error().reason, "out-of-range");
}

// memfd_create takes names of at most 249 bytes; the header allows 1024.
TEST(UnsealToMemfd, ModelNamesOfEveryAllowedLengthUnseal) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(kChunk + 9, 14);
  // ASCII at the limit, and four-byte characters that do not end on the cut.
  for (const std::string& name :
       {std::string(1024, 'n'), std::string(237, 'a') + "\xf0\x9f\xa6\x99\xf0\x9f\xa6\x99", [] {
          std::string s;
          while (s.size() + 4 <= 1024) s += "\xf0\x9f\xa6\x99";
          return s;
        }()}) {
    SealKey sk{&key, "arn:aws:kms:eu-west-1:111122223333:key/test", Bytes{1}, {}};
    SealOptions so;
    so.chunk_size = kChunk;
    MemorySource src(plain);
    VectorSink out;
    auto h = Seal(src, out, sk, {name, "file", "m.gguf"}, so);
    ASSERT_TRUE(h.ok()) << h.error().ToString();
    MemorySource sealed(out.bytes());
    auto m = UnsealToMemfd(sealed, key);
    ASSERT_TRUE(m.ok()) << name.size() << " bytes: " << m.error().ToString();
    EXPECT_EQ(ReadAll(*m), plain);
    // The name the kernel shows is a valid UTF-8 prefix of "modelseal:<name>".
    char link[512] = {0};
    const ssize_t n = readlink(m->path().c_str(), link, sizeof(link) - 1);
    ASSERT_GT(n, 0);
    std::string shown(link, static_cast<size_t>(n));
    ASSERT_TRUE(shown.starts_with("/memfd:modelseal:")) << shown;
    shown = shown.substr(std::strlen("/memfd:"));
    if (shown.ends_with(" (deleted)")) shown.resize(shown.size() - std::strlen(" (deleted)"));
    EXPECT_TRUE(IsValidUtf8(shown)) << shown;
    EXPECT_TRUE(("modelseal:" + name).starts_with(shown));
    EXPECT_GE(shown.size(), 246u);
  }
}

TEST(Seal, ProgressReachesTotal) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(3 << 20, 2);
  SealKey sk{&key, "k", Bytes{1}, {}};
  SealOptions so;
  so.threads = 2;
  so.chunk_size = 1 << 16;
  uint64_t last = 0;
  bool monotonic = true, finished = false;
  so.progress = [&](const ProgressEvent& e) {
    monotonic = monotonic && e.done >= last && e.total == plain.size();
    last = e.done;
    finished = finished || e.finished;
  };
  MemorySource src(plain);
  VectorSink out;
  ASSERT_TRUE(Seal(src, out, sk, {}, so).ok());
  EXPECT_TRUE(monotonic);
  EXPECT_TRUE(finished);
  EXPECT_EQ(last, plain.size());
}

TEST(Seal, RejectsBadParameters) {
  const SecretBuffer key = TestKey();
  const Bytes plain = RandomData(10, 1);
  MemorySource src(plain);
  VectorSink out;
  SealKey sk{&key, "k", Bytes{1}, {}};
  SealOptions so;
  so.chunk_size = 1000;
  auto r = Seal(src, out, sk, {}, so);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find("chunk size 1000"), std::string::npos) << r.error().message;

  SecretBuffer short_key(16);
  SealKey sk2{&short_key, "k", Bytes{1}, {}};
  EXPECT_EQ(Seal(src, out, sk2, {}, {}).error().reason, "bad-key");
  SealKey sk3{&key, "", Bytes{1}, {}};
  EXPECT_FALSE(Seal(src, out, sk3, {}, {}).ok());
  SealKey sk4{&key, "k", Bytes{1}, {{"bad", "\xff"}}};
  EXPECT_FALSE(Seal(src, out, sk4, {}, {}).ok());
}

TEST(ChunkNonce, LayoutAndIndicesAbove2To32) {
  const auto zero = ChunkNonce(0, false);
  for (uint8_t b : zero) EXPECT_EQ(b, 0);
  EXPECT_EQ(ToHex(ChunkNonce(1, true)), "000000000000000000000101");
  EXPECT_EQ(ToHex(ChunkNonce(uint64_t{1} << 32, false)), "000000000000010000000000");
  EXPECT_EQ(ToHex(ChunkNonce((uint64_t{1} << 32) + 5, true)), "000000000000010000000501");
  EXPECT_EQ(ToHex(ChunkNonce(UINT64_MAX, false)), "000000ffffffffffffffff00");
  // No truncation to 32 bits: the nonces of i and i + 2^32 differ.
  EXPECT_NE(ChunkNonce(5, false), ChunkNonce((uint64_t{1} << 32) + 5, false));
  EXPECT_NE(ChunkNonce(7, false), ChunkNonce(7, true));
}

TEST(Header, GeometryForLargeObjects) {
  Header h;
  h.chunk_size = 1u << 20;
  h.header_size = 400;
  h.plaintext_size = (uint64_t{1} << 32) * h.chunk_size + 3;  // 2^32 + 1 chunks
  EXPECT_EQ(h.chunk_count(), (uint64_t{1} << 32) + 1);
  EXPECT_EQ(h.chunk_plain_size(uint64_t{1} << 32), 3u);
  EXPECT_EQ(h.chunk_plain_size(0), 1u << 20);
  EXPECT_EQ(h.chunk_offset(uint64_t{1} << 32), 400 + (uint64_t{1} << 32) * ((1u << 20) + 16));
  EXPECT_EQ(h.sealed_size(), 400 + h.plaintext_size + ((uint64_t{1} << 32) + 1) * 16);
}

}  // namespace
}  // namespace modelseal::sealed
