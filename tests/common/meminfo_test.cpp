// ParseMemInfo: /proc/meminfo's format as proc(5) describes it ("Field:  N kB", and a
// few unitless counters), and this machine's own file; the shared-memory huge page
// policy as the kernel's transhuge documentation shows its file.
#include "common/meminfo.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace modelseal {
namespace {

TEST(MemInfo, ParsesKibibytesAndUnitlessCounters) {
  const auto m = ParseMemInfo(
      "MemTotal:       24683936 kB\n"
      "MemFree:        17123456 kB\n"
      "MemAvailable:   22917120 kB\n"
      "Shmem:              8192 kB\n"
      "HugePages_Total:       0\n"
      "Hugepagesize:       2048 kB\n");
  EXPECT_EQ(m.at("MemTotal"), 24683936ull * 1024);
  EXPECT_EQ(m.at("MemAvailable"), 22917120ull * 1024);
  EXPECT_EQ(m.at("Shmem"), 8192ull * 1024);
  EXPECT_EQ(m.at("HugePages_Total"), 0u);
  EXPECT_EQ(m.at("Hugepagesize"), 2048ull * 1024);
  EXPECT_EQ(m.size(), 6u);
}

TEST(MemInfo, SkipsLinesThatDoNotParse) {
  const auto m = ParseMemInfo(
      "garbage\n"
      ": 12 kB\n"
      "NoNumber: kB\n"
      "OddUnit: 12 MB\n"
      "Huge: 99999999999999999999 kB\n"
      "Overflow: 18446744073709551615 kB\n"
      "MemAvailable: 1 kB");  // no final newline
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m.at("MemAvailable"), 1024u);
}

TEST(MemInfo, ThisMachinesFileHasItsMemory) {
  const auto m = ReadMemInfo();
  ASSERT_TRUE(m.count("MemTotal"));
  ASSERT_TRUE(m.count("MemAvailable"));
  EXPECT_GT(m.at("MemTotal"), 0u);
  EXPECT_LE(m.at("MemAvailable"), m.at("MemTotal"));
}

TEST(MemInfo, TheKernelsSharedMemoryHugePagePolicyIsRead) {
  // The file's text, as Documentation/admin-guide/mm/transhuge.rst shows it.
  EXPECT_EQ(ParseShmemHugePagePolicy("always within_size advise [never] deny force\n"), "never");
  EXPECT_EQ(ParseShmemHugePagePolicy("always within_size [advise] never deny force\n"), "advise");
  EXPECT_EQ(ParseShmemHugePagePolicy("always [within_size] advise never"), "within_size");
  EXPECT_EQ(ParseShmemHugePagePolicy(""), "");
  EXPECT_EQ(ParseShmemHugePagePolicy("always never"), "");
  EXPECT_EQ(ParseShmemHugePagePolicy("[never"), "");
  // This machine's, whatever it is, is one of the words the kernel knows.
  const std::string here = ShmemHugePagePolicy();
  if (here.empty()) GTEST_SKIP() << "no shmem_enabled here";
  const std::set<std::string> known = {"never", "advise", "within_size", "always", "deny", "force"};
  EXPECT_TRUE(known.count(here)) << here;
}

}  // namespace
}  // namespace modelseal
