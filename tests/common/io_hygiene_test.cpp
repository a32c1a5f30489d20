// FileSource reads with pread into the caller's buffer: a file changed or
// truncated while it is read gives a clear error, never a SIGBUS.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/io.h"
#include "tests/common/testutil.h"

namespace modelseal {
namespace {

using namespace modelseal::testing;  // NOLINT: test helpers

std::string WriteFile(const TempDir& dir, const Bytes& content) {
  const std::string path = dir.File("data.bin");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(content.data()),
             static_cast<std::streamsize>(content.size()));
  return path;
}

TEST(FileSourceHygiene, ReadsAreCopiesNotViewsOfAMapping) {
  TempDir dir;
  const Bytes content = Pattern(64 * 1024, 7);
  const std::string path = WriteFile(dir, content);
  auto src = FileSource::Open(path);
  ASSERT_TRUE(src.ok());
  Bytes scratch(5000);
  auto v = (*src)->ReadAt(1000, 5000, scratch.data());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->data(), scratch.data());
  EXPECT_TRUE(std::equal(v->begin(), v->end(), content.begin() + 1000));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_TRUE(MappingFlagsOf(fd).empty()) << "the file is mapped";
  ::close(fd);
  auto past = (*src)->ReadAt(60 * 1024, 8 * 1024, scratch.data());
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().reason, "read-past-end");
}

void ReadAfterTruncation(const std::string& path) {
  auto src = FileSource::Open(path);
  if (!src.ok()) std::exit(2);
  if (truncate(path.c_str(), 10000) != 0) std::exit(3);
  Bytes scratch(8192);
  auto v = (*src)->ReadAt(40000, 8192, scratch.data());  // wholly past the new end
  auto w = (*src)->ReadAt(8000, 4000, scratch.data());   // across the new end
  if (v.ok() || w.ok()) std::exit(4);
  std::fprintf(stderr, "%s;%s;%s\n", v.error().reason.c_str(), w.error().reason.c_str(),
               w.error().message.c_str());
  std::exit(0);
}

TEST(FileSourceHygiene, AFileTruncatedAfterOpenGivesAnErrorNotSigbus) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  const std::string path = WriteFile(dir, Pattern(64 * 1024, 8));
  EXPECT_EXIT(ReadAfterTruncation(path), ::testing::ExitedWithCode(0),
              "changed-during-read;changed-during-read;.*data.bin changed while it was read");
}

}  // namespace
}  // namespace modelseal
