// CheckRoomForModel: a load is refused at its header step, before any key request,
// when the model is larger than the memory the kernel says is available.
#include <gtest/gtest.h>

#include "pipeline/pipeline.h"

namespace modelseal::pipeline {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

TEST(RoomForModel, AModelThatFitsIsAllowed) {
  EXPECT_TRUE(CheckRoomForModel(kGiB, {{"MemAvailable", 2 * kGiB}}).ok());
  EXPECT_TRUE(CheckRoomForModel(kGiB, {{"MemAvailable", kGiB}}).ok());
}

TEST(RoomForModel, AModelLargerThanTheAvailableMemoryIsRefusedWithBothSizes) {
  Status s =
      CheckRoomForModel(8 * kGiB + kGiB / 2, {{"MemTotal", 16 * kGiB}, {"MemAvailable", 3 * kGiB}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(s.error().reason, "not-enough-memory");
  EXPECT_NE(s.error().message.find("needs 8.5 GiB"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("3.0 GiB is available"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("no key was requested"), std::string::npos);
  EXPECT_FALSE(CheckRoomForModel(kGiB + 1, {{"MemAvailable", kGiB}}).ok());
}

TEST(RoomForModel, WithoutMemAvailableTheLoadIsNotRefused) {
  // Kernels before 3.14 have no MemAvailable; MemFree alone would refuse loads that fit.
  EXPECT_TRUE(CheckRoomForModel(8 * kGiB, {{"MemTotal", 16 * kGiB}, {"MemFree", kGiB}}).ok());
  EXPECT_TRUE(CheckRoomForModel(8 * kGiB, {}).ok());
}

}  // namespace
}  // namespace modelseal::pipeline
