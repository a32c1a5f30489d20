#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/io.h"
#include "common/memfd.h"
#include "common/parallel.h"
#include "common/secret.h"

namespace modelseal {
namespace {

TEST(Bytes, HexRoundTrip) {
  const Bytes b{0x00, 0x7f, 0x80, 0xff, 0x12};
  EXPECT_EQ(ToHex(b), "007f80ff12");
  EXPECT_EQ(*FromHex("007F80ff12"), b);
  EXPECT_FALSE(FromHex("abc").has_value());
  EXPECT_FALSE(FromHex("zz").has_value());
}

TEST(Bytes, BigEndian) {
  Bytes b;
  PutU16(b, 0x0102);
  PutU32(b, 0x03040506);
  PutU64(b, 0x0708090a0b0c0d0eULL);
  ASSERT_EQ(b.size(), 14u);
  EXPECT_EQ(GetU16(b.data()), 0x0102);
  EXPECT_EQ(GetU32(b.data() + 2), 0x03040506u);
  EXPECT_EQ(GetU64(b.data() + 6), 0x0708090a0b0c0d0eULL);
}

TEST(Bytes, Base64) {
  EXPECT_EQ(Base64Encode(Bytes{}), "");
  EXPECT_EQ(Base64Encode(Bytes{'f'}), "Zg==");
  EXPECT_EQ(Base64Encode(Bytes{'f', 'o'}), "Zm8=");
  EXPECT_EQ(Base64Encode(Bytes{'f', 'o', 'o'}), "Zm9v");
  EXPECT_EQ(*Base64Decode("Zg=="), (Bytes{'f'}));
  EXPECT_EQ(*Base64Decode("Zm8="), (Bytes{'f', 'o'}));
  EXPECT_EQ(*Base64Decode("Zm9vYmFy"), (Bytes{'f', 'o', 'o', 'b', 'a', 'r'}));
  EXPECT_TRUE(Base64Decode("")->empty());
  EXPECT_FALSE(Base64Decode("Zg=").has_value());
  EXPECT_FALSE(Base64Decode("Z=g=").has_value());
  EXPECT_FALSE(Base64Decode("Zm9v\n").has_value());
  EXPECT_FALSE(Base64Decode("Zm*v").has_value());
}

TEST(Bytes, Utf8) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

TEST(Error, ResultAndStatus) {
  Result<int> good = 5;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 5);
  Result<int> bad = MakeError(ErrorCode::kNotFound, "m", "r", "thing not found");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().ToString(), "m: thing not found");
  Status s = bad;
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error().reason, "r");
  auto f = [](bool fail) -> Result<int> {
    MS_ASSIGN_OR_RETURN(
        int v, fail ? Result<int>(MakeError(ErrorCode::kIo, "m", "x", "y")) : Result<int>(7));
    return v + 1;
  };
  EXPECT_EQ(*f(false), 8);
  EXPECT_EQ(f(true).error().reason, "x");
}

TEST(Clock, ASetClockHoldsInEveryThreadUntilItEnds) {
  const auto system_ms = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  };
  const uint64_t before = system_ms();
  EXPECT_GE(NowUnixMs(), before);
  {
    ScopedWallClock at(1767225600000ULL);
    EXPECT_EQ(NowUnixMs(), 1767225600000ULL);
    std::atomic<uint64_t> seen{0};
    std::thread([&] { seen = NowUnixMs(); }).join();
    EXPECT_EQ(seen.load(), 1767225600000ULL);
  }
  const uint64_t after = NowUnixMs();
  EXPECT_GE(after, before);
  EXPECT_LE(after, system_ms());
}

TEST(ParallelFor, RunsEveryItemOnce) {
  std::vector<std::atomic<int>> hits(1000);
  ASSERT_TRUE(ParallelFor(hits.size(), 4, [&](uint64_t i, unsigned) -> Status {
                hits[i]++;
                return Ok{};
              }).ok());
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ParallelFor, ReportsLowestFailingIndex) {
  for (int round = 0; round < 20; ++round) {
    Status s = ParallelFor(500, 3, [](uint64_t i, unsigned) -> Status {
      if (i == 77 || i == 78 || i == 300) {
        return MakeError(ErrorCode::kIo, "t", "fail", std::to_string(i));
      }
      return Ok{};
    });
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().message, "77");
  }
}

TEST(SecretBuffer, HoldsAndMoves) {
  const uint8_t k[4] = {1, 2, 3, 4};
  SecretBuffer a(k, 4);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(a.data()[3], 4);
  SecretBuffer b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT: moved-from state is specified
  EXPECT_EQ(b.data()[0], 1);
  b.Clear();
  EXPECT_TRUE(b.empty());
}

TEST(Memfd, FillSealAndReadBackByPath) {
  auto m = Memfd::Create("test", 10000);
  ASSERT_TRUE(m.ok());
  auto map = m->MapWritable();
  ASSERT_TRUE(map.ok());
  for (size_t i = 0; i < map->size(); ++i) (*map)[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(m->Seal().ok());
  EXPECT_TRUE(m->sealed());
  // The sealed memfd refuses writes, even through a fresh descriptor.
  const int fd = ::open(m->path().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::pwrite(fd, "x", 1, 0), -1);
  uint8_t b = 0;
  EXPECT_EQ(::pread(fd, &b, 1, 9999), 1);
  EXPECT_EQ(b, static_cast<uint8_t>(9999 * 7));
  ::close(fd);
  EXPECT_FALSE(m->MapWritable().ok());
}

TEST(Memfd, WipeZeroes) {
  auto m = Memfd::Create("wipe", 4096);
  ASSERT_TRUE(m.ok());
  auto map = m->MapWritable();
  ASSERT_TRUE(map.ok());
  std::fill(map->begin(), map->end(), 0xAB);
  m->Wipe();
  const int fd = ::open(m->path().c_str(), O_RDONLY);
  uint8_t buf[4096];
  ASSERT_EQ(::pread(fd, buf, sizeof(buf), 0), 4096);
  ::close(fd);
  for (uint8_t v : buf) ASSERT_EQ(v, 0);
}

TEST(AtomicFileSink, NothingVisibleUntilCommit) {
  const auto dir = std::filesystem::temp_directory_path() / ("ms-sink-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string target = (dir / "out.bin").string();
  {
    auto sink = AtomicFileSink::Create(target);
    ASSERT_TRUE(sink.ok());
    const Bytes data{1, 2, 3};
    ASSERT_TRUE((*sink)->WriteAt(0, data).ok());
    EXPECT_FALSE(std::filesystem::exists(target));
    // Destroyed without Commit: no file, no temporary left behind.
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  {
    auto sink = AtomicFileSink::Create(target);
    ASSERT_TRUE(sink.ok());
    ASSERT_TRUE((*sink)->WriteAt(2, Bytes{9}).ok());
    ASSERT_TRUE((*sink)->WriteAt(0, Bytes{7, 8}).ok());
    ASSERT_TRUE((*sink)->Commit().ok());
  }
  auto src = FileSource::Open(target);
  ASSERT_TRUE(src.ok());
  uint8_t scratch[3];
  auto v = (*src)->ReadAt(0, 3, scratch);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(Bytes(v->begin(), v->end()), (Bytes{7, 8, 9}));
  EXPECT_FALSE((*src)->ReadAt(1, 3, scratch).ok());
  std::filesystem::remove_all(dir);
}

TEST(FileSource, MissingFileIsNotFound) {
  auto src = FileSource::Open("/nonexistent/modelseal/file");
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace modelseal
