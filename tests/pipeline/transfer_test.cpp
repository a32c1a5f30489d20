// The download sink of the load pipeline: a sealed object's bytes, in any order, are
// decrypted into the memfd as chunks complete; a header region that differs from the
// bytes authenticated before the key release is refused as changed-during-read.
#include "pipeline/transfer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/sealed/testutil.h"

namespace modelseal::pipeline {
namespace {

using sealed::testing::RandomData;
using sealed::testing::ReadAll;
using sealed::testing::SealBytes;
using sealed::testing::TestKey;

constexpr uint32_t kChunk = 4096;

struct Fixture {
  SecretBuffer key = TestKey();
  sealed::testing::SealedObject obj = SealBytes(RandomData(10 * kChunk + 123, 8), key, kChunk, 1);
  MemorySource src{obj.object};
  std::unique_ptr<sealed::SealedReader> reader;
  Result<Memfd> memfd = Memfd::Create("transfer-test", obj.plain.size());
  Bytes head() const {
    const size_t n = static_cast<size_t>(obj.header.chunk_offset(0));
    return Bytes(obj.object.begin(), obj.object.begin() + static_cast<std::ptrdiff_t>(n));
  }
  Fixture() {
    auto r = sealed::SealedReader::Open(src, key);
    if (!r.ok()) throw std::runtime_error(r.error().ToString());
    reader = std::move(*r);
    if (!memfd.ok()) throw std::runtime_error(memfd.error().ToString());
  }
};

TEST(DecryptingSink, RangesInAnyOrderDecryptIntoTheMemfd) {
  Fixture f;
  DecryptingSink sink(*f.reader, f.head(), *f.memfd, nullptr);
  // 1000-byte pieces, last first: chunks complete out of order and across pieces.
  std::vector<uint64_t> offsets;
  for (uint64_t at = 0; at < f.obj.object.size(); at += 1000) offsets.push_back(at);
  std::reverse(offsets.begin(), offsets.end());
  for (uint64_t at : offsets) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(1000, f.obj.object.size() - at));
    ASSERT_TRUE(sink.WriteAt(at, std::span(f.obj.object).subspan(at, n)).ok()) << at;
  }
  ASSERT_TRUE(sink.Finish().ok());
  EXPECT_EQ(ReadAll(*f.memfd), f.obj.plain);
}

TEST(DecryptingSink, AHeaderOtherThanTheAuthenticatedOneIsChangedDuringRead) {
  Fixture f;
  Bytes authenticated = f.head();
  authenticated[authenticated.size() / 2] ^= 1;  // what was checked before the release
  DecryptingSink sink(*f.reader, authenticated, *f.memfd, nullptr);
  Status s = sink.WriteAt(0, f.obj.object);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "changed-during-read") << s.error().ToString();
  EXPECT_EQ(s.error().code, ErrorCode::kIntegrity);
}

TEST(DecryptingSink, AMissingRangeIsIncomplete) {
  Fixture f;
  DecryptingSink sink(*f.reader, f.head(), *f.memfd, nullptr);
  const uint64_t cut = f.obj.header.chunk_offset(5);
  ASSERT_TRUE(sink.WriteAt(0, std::span(f.obj.object).first(cut)).ok());
  Status s = sink.Finish();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "incomplete") << s.error().ToString();
}

TEST(DecryptingSink, RangesHoldingWholeChunksDecryptTooAndATamperedOneIsRefused) {
  Fixture f;
  // Ranges of 3.5 chunks, as a local store delivers them: whole chunks in the
  // middle of each write, pieces of one at its edges.
  const uint64_t range = 3 * kChunk + kChunk / 2;
  {
    DecryptingSink sink(*f.reader, f.head(), *f.memfd, nullptr);
    for (uint64_t at = 0; at < f.obj.object.size(); at += range) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(range, f.obj.object.size() - at));
      ASSERT_TRUE(sink.WriteAt(at, std::span(f.obj.object).subspan(at, n)).ok()) << at;
    }
    ASSERT_TRUE(sink.Finish().ok());
    EXPECT_EQ(ReadAll(*f.memfd), f.obj.plain);
  }
  Bytes tampered = f.obj.object;
  const uint64_t third = f.obj.header.chunk_offset(3);
  tampered[third + 10] ^= 1;
  DecryptingSink sink(*f.reader, f.head(), *f.memfd, nullptr);
  Status s = sink.WriteAt(0, tampered);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "chunk-auth-failed") << s.error().ToString();
  EXPECT_FALSE(sink.Finish().ok());
}

TEST(DecryptingSink, AChunkDeliveredTwiceDoesNotStandInForAMissingOne) {
  Fixture f;
  DecryptingSink sink(*f.reader, f.head(), *f.memfd, nullptr);
  const uint64_t c4 = f.obj.header.chunk_offset(4), c5 = f.obj.header.chunk_offset(5);
  const uint64_t c6 = f.obj.header.chunk_offset(6);
  ASSERT_TRUE(sink.WriteAt(0, std::span(f.obj.object).first(c5)).ok());
  ASSERT_TRUE(sink.WriteAt(c4, std::span(f.obj.object).subspan(c4, c5 - c4)).ok());
  ASSERT_TRUE(sink.WriteAt(c6, std::span(f.obj.object).subspan(c6)).ok());
  Status s = sink.Finish();  // chunk 5 never came; chunk 4 came twice
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "incomplete") << s.error().ToString();
}

}  // namespace
}  // namespace modelseal::pipeline
