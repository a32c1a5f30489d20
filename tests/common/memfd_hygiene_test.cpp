// Memfd hygiene: the plaintext in a memfd is overwritten in place on every path
// (sealed or not, on destruction and reassignment), the Memfd's mappings and
// those others make are kept out of core dumps, and long names are cut.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "common/memfd.h"
#include "tests/common/testutil.h"

namespace modelseal {
namespace {

using namespace modelseal::testing;  // NOLINT: test helpers

TEST(MemfdHygiene, DestructionWipesTheContentsInPlace) {
  const Bytes plain = Pattern(4 * kPage, 3);
  int held = -1;
  std::optional<SplicedPage> page;
  {
    auto m = Memfd::Create("plaintext", plain.size());
    ASSERT_TRUE(m.ok());
    ASSERT_TRUE(m->WriteAt(0, plain).ok());
    ASSERT_TRUE(m->Seal().ok());
    held = ::open(m->path().c_str(), O_RDONLY | O_CLOEXEC);  // keeps the file alive
    ASSERT_GE(held, 0);
    page.emplace(m->fd(), 2 * kPage);  // keeps the physical page alive
    ASSERT_EQ(page->spliced(), static_cast<ssize_t>(kPage));
  }
  const Bytes after = PreadAll(held, plain.size());
  ::close(held);
  EXPECT_EQ(after.size(), plain.size());
  EXPECT_TRUE(AllZero(after)) << "a destroyed memfd still holds plaintext";
  EXPECT_TRUE(AllZero(page->Read())) << "the page was freed without being overwritten";
}

TEST(MemfdHygiene, WipeWorksOnASealedMemfd) {
  const Bytes plain = Pattern(3 * kPage + 5, 4);
  auto m = Memfd::Create("sealed", plain.size());
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->WriteAt(0, plain).ok());
  ASSERT_TRUE(m->Seal().ok());
  SplicedPage page(m->fd(), kPage);
  m->Wipe();
  EXPECT_TRUE(AllZero(PreadAll(m->fd(), plain.size())));
  EXPECT_TRUE(AllZero(page.Read()));
  // Still sealed against writes from anyone else.
  const int fd = ::open(m->path().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::pwrite(fd, "x", 1, 0), -1);
  ::close(fd);
}

TEST(MemfdHygiene, WipeOfAnUnsealedMemfdOverwritesThenFreesThePages) {
  const Bytes plain = Pattern(8 * kPage, 5);
  auto m = Memfd::Create("unsealed", plain.size());
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->WriteAt(0, plain).ok());
  SplicedPage page(m->fd(), 5 * kPage);
  m->Wipe();
  struct stat st {};
  ASSERT_EQ(fstat(m->fd(), &st), 0);
  EXPECT_EQ(st.st_blocks, 0) << "pages still allocated after Wipe";
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), plain.size());
  // Freeing alone would leave the plaintext in the physical page.
  EXPECT_TRUE(AllZero(page.Read()));
}

TEST(MemfdHygiene, MovedFromAndReassignedMemfdsWipeWhatTheyHeld) {
  const Bytes plain = Pattern(2 * kPage, 6);
  auto a = Memfd::Create("a", plain.size());
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->WriteAt(0, plain).ok());
  const int held = ::open(a->path().c_str(), O_RDONLY | O_CLOEXEC);
  Memfd b = std::move(*a);
  EXPECT_EQ(PreadAll(held, plain.size()), plain);  // a move is not a wipe
  auto c = Memfd::Create("c", kPage);
  ASSERT_TRUE(c.ok());
  b = std::move(*c);  // b's old contents are released: wiped
  EXPECT_TRUE(AllZero(PreadAll(held, plain.size())));
  ::close(held);
}

TEST(MemfdHygiene, OurMappingsAreExcludedFromCoreDumps) {
  auto m = Memfd::Create("dump", 4 * kPage);
  ASSERT_TRUE(m.ok());
  auto map = m->MapWritable();
  ASSERT_TRUE(map.ok());
  auto flags = MappingFlagsOf(m->fd());
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_TRUE(HasFlag(flags.begin()->second, "dd")) << flags.begin()->second;
  ASSERT_TRUE(m->Seal().ok());
  flags = MappingFlagsOf(m->fd());
  ASSERT_FALSE(flags.empty());
  for (const auto& [at, f] : flags) EXPECT_TRUE(HasFlag(f, "dd")) << f;
}

TEST(MemfdHygiene, MappingsMadeByOthersCanBeExcludedFromCoreDumps) {
  auto m = Memfd::Create("foreign", 4 * kPage);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->Seal().ok());
  // What llama.cpp does: open the path and map the file itself.
  const int fd = ::open(m->path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* a = mmap(nullptr, 4 * kPage, PROT_READ, MAP_SHARED, fd, 0);
  void* b = mmap(nullptr, kPage, PROT_READ, MAP_SHARED, fd, 2 * kPage);
  ::close(fd);
  ASSERT_NE(a, MAP_FAILED);
  ASSERT_NE(b, MAP_FAILED);
  const auto before = MappingFlagsOf(m->fd());
  EXPECT_FALSE(HasFlag(before.at(reinterpret_cast<uintptr_t>(a)), "dd"));
  auto marked = m->ExcludeMappingsFromCoreDumps();
  ASSERT_TRUE(marked.ok()) << marked.error().ToString();
  EXPECT_GE(*marked, 2);
  const auto after = MappingFlagsOf(m->fd());
  for (void* p : {a, b}) {
    EXPECT_TRUE(HasFlag(after.at(reinterpret_cast<uintptr_t>(p)), "dd"))
        << after.at(reinterpret_cast<uintptr_t>(p));
  }
  munmap(a, 4 * kPage);
  munmap(b, kPage);
}

TEST(MemfdHygiene, SealingUnmapsWhatWasStoredThroughTheMappingButKeepsIt) {
  // Otherwise the model's pages would count twice in the process: once here, once
  // in the mapping llama.cpp makes.
  constexpr size_t kSize = 64 * kPage;
  auto m = Memfd::Create("unmap", kSize);
  ASSERT_TRUE(m.ok());
  auto map = m->MapWritable();
  ASSERT_TRUE(map.ok());
  for (size_t i = 0; i < kSize; ++i) (*map)[i] = static_cast<uint8_t>(i * 7 + 1);
  auto rss_kib = [&] {
    const auto rss = MappingFieldOf(m->fd(), "Rss:");
    EXPECT_EQ(rss.size(), 1u);
    return rss.empty() ? -1L : std::stol(rss.begin()->second.substr(4));
  };
  EXPECT_GE(rss_kib(), static_cast<long>(kSize / 1024));
  ASSERT_TRUE(m->Seal().ok());
  EXPECT_EQ(rss_kib(), 0);
  Bytes back(kSize);
  ASSERT_EQ(pread(m->fd(), back.data(), kSize, 0), static_cast<ssize_t>(kSize));
  for (size_t i = 0; i < kSize; ++i) ASSERT_EQ(back[i], static_cast<uint8_t>(i * 7 + 1)) << i;
}

TEST(MemfdHygiene, LongNamesAreCutAtACharacterBoundary) {
  std::string name = "modelseal:" + std::string(236, 'x') + "\xc3\xa9\xc3\xa9\xc3\xa9";  // 252
  auto m = Memfd::Create(name, kPage);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  char link[512] = {0};
  ASSERT_GT(readlink(m->path().c_str(), link, sizeof(link) - 1), 0);
  std::string shown = link;
  EXPECT_EQ(shown, "/memfd:modelseal:" + std::string(236, 'x') + "\xc3\xa9 (deleted)");
  EXPECT_TRUE(Memfd::Create(std::string(5000, 'y'), kPage).ok());
}

}  // namespace
}  // namespace modelseal
