// The engine's ownership of an in-memory model: llama.cpp's mapping of the memfd
// is kept out of core dumps, and unloading (or failing to load) wipes the memfd.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "common/bytes.h"
#include "common/memfd.h"
#include "engine/engine.h"
#include "tests/common/testutil.h"

namespace modelseal::engine {
namespace {

namespace fs = std::filesystem;

constexpr size_t kPage = 4096;

// Holds one page of the memfd in a pipe (splice takes a reference, no copy), to
// look at the physical page after the memfd let go of it.
struct HeldPage {
  int p[2] = {-1, -1};
  bool ok = false;
  HeldPage(int fd, uint64_t offset) {
    if (pipe(p) != 0) return;
    off64_t off = static_cast<off64_t>(offset);
    ok = splice(fd, &off, p[1], nullptr, kPage, 0) == static_cast<ssize_t>(kPage);
  }
  ~HeldPage() {
    ::close(p[0]);
    ::close(p[1]);
  }
  bool IsZero() {
    Bytes b(kPage);
    return ::read(p[0], b.data(), b.size()) == static_cast<ssize_t>(kPage) &&
           std::all_of(b.begin(), b.end(), [](uint8_t v) { return v == 0; });
  }
};

bool FileIsZero(int fd, uint64_t size) {
  Bytes b(size);
  return pread(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(size) &&
         std::all_of(b.begin(), b.end(), [](uint8_t v) { return v == 0; });
}

class EngineMemfd : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ms-engine-memfd-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    TestModelOptions o;
    o.context_length = 256;
    const std::string path = (dir_ / "tiny.gguf").string();
    ASSERT_TRUE(WriteTestModel(path, o).ok());
    std::ifstream f(path, std::ios::binary);
    model_.assign(std::istreambuf_iterator<char>(f), {});
  }
  void TearDown() override { fs::remove_all(dir_); }

  Memfd SealedMemfd(const std::string& bytes) {
    auto m = Memfd::Create("modelseal:test", bytes.size());
    EXPECT_TRUE(m.ok());
    EXPECT_TRUE(
        m->WriteAt(0, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()))
            .ok());
    EXPECT_TRUE(m->Seal().ok());
    return std::move(*m);
  }

  fs::path dir_;
  std::string model_;
  Engine engine_;
};

TEST_F(EngineMemfd, MappingsAreExcludedFromCoreDumpsAndUnloadWipesTheModel) {
  Memfd memfd = SealedMemfd(model_);
  const int held = ::open(memfd.path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  HeldPage page(held, (model_.size() / 2) & ~(kPage - 1));
  ASSERT_TRUE(page.ok);
  LoadOptions lo;
  lo.name = "inmem";
  auto info = engine_.LoadMemfd(std::move(memfd), lo);
  ASSERT_TRUE(info.ok()) << info.error().ToString();

  // llama.cpp mapped the file through /proc/self/fd/N; that mapping and the
  // Memfd's own are all marked "dd" (not dumped).
  const auto flags = testing::MappingFlagsOf(held);
  ASSERT_GE(flags.size(), 2u) << "expected llama.cpp's mapping and the Memfd's";
  for (const auto& [at, f] : flags) EXPECT_NE((f + " ").find(" dd "), std::string::npos) << f;

  ASSERT_TRUE(engine_.Unload("inmem").ok());
  EXPECT_TRUE(testing::MappingFlagsOf(held).empty()) << "the model is still mapped after unload";
  EXPECT_TRUE(FileIsZero(held, model_.size())) << "plaintext left in the memfd after unload";
  EXPECT_TRUE(page.IsZero()) << "a page of the model was freed without being wiped";
  ::close(held);
}

TEST_F(EngineMemfd, AFailedLoadWipesTheMemfd) {
  std::string junk = model_;
  junk.replace(0, 4, "JUNK");  // not GGUF magic: llama.cpp refuses it
  Memfd memfd = SealedMemfd(junk);
  const int held = ::open(memfd.path().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  LoadOptions lo;
  lo.name = "junk";
  auto info = engine_.LoadMemfd(std::move(memfd), lo);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().reason, "load-failed");
  EXPECT_TRUE(FileIsZero(held, junk.size())) << "plaintext left in the memfd after a failed load";
  ::close(held);
}

}  // namespace
}  // namespace modelseal::engine
