// The process log: stderr gets each line unchanged, the ring keeps the last
// kKeptLines with their UTC time.
#include "common/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ctime>
#include <string>

namespace modelseal::log {
namespace {

TEST(Log, StderrGetsTheLineAndTheRingKeepsItWithItsUtcTime) {
  testing::internal::CaptureStderr();
  const std::time_t before = std::time(nullptr);
  Line("modelseal: job %s started (%d)", "load-1", 7);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "modelseal: job load-1 started (7)\n");
  const auto recent = Recent(1);
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_THAT(recent[0], testing::MatchesRegex(R"(^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:)"
                                               R"([0-9]{2}\.[0-9]{3}Z modelseal: job load-1 )"
                                               R"(started \(7\)$)"));
  // The time is UTC as gmtime(3) gives it, within the seconds this took.
  std::tm tm{};
  gmtime_r(&before, &tm);
  char day[16];
  std::strftime(day, sizeof(day), "%Y-%m-%d", &tm);
  EXPECT_EQ(recent[0].substr(0, 10), day);
}

TEST(Log, TheRingKeepsOnlyTheLastLinesOldestFirst) {
  testing::internal::CaptureStderr();
  for (size_t i = 0; i < kKeptLines + 25; ++i) Line("line %zu", i);
  testing::internal::GetCapturedStderr();
  const auto all = Recent(kKeptLines * 2);
  ASSERT_EQ(all.size(), kKeptLines);
  EXPECT_THAT(all.front(), testing::EndsWith(" line 25"));
  EXPECT_THAT(all.back(), testing::EndsWith(" line " + std::to_string(kKeptLines + 24)));
  const auto three = Recent(3);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[2], all.back());
}

TEST(Log, ALongLineIsCutNotOverflowed) {
  testing::internal::CaptureStderr();
  Line("%s", std::string(10000, 'x').c_str());
  EXPECT_EQ(testing::internal::GetCapturedStderr().size(), 4095u + 1u);
  EXPECT_LT(Recent(1)[0].size(), 4200u);
}

}  // namespace
}  // namespace modelseal::log
