#include <gtest/gtest.h>

#include <random>

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
