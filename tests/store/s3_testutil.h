// Helpers for the S3 tests: a suite with one s3rver, store options for it.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>

#include "aws/credentials.h"
#include "store/store.h"
#include "tests/store/data_testutil.h"
#include "tests/support/testenv.h"

namespace modelseal::store::testing {

inline StoreOptions S3rverOptions(const std::string& endpoint) {
  StoreOptions o;
  o.endpoint = endpoint;
  o.region = "us-east-1";
  o.credentials = aws::StaticCredentials(aws::Credentials::Make("S3RVER", "S3RVER"));
  o.retry.base_delay = std::chrono::milliseconds(10);
  o.retry.max_delay = std::chrono::milliseconds(100);
  o.threads = 4;
  o.part_size = 5ull << 20;
  o.multipart_threshold = 6ull << 20;
  return o;
}

// A test suite whose tests share one s3rver (started once, on a free loopback port).
class S3rverSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = testenv::S3rver::Start();
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  static inline testenv::S3rver* server_ = nullptr;
};

// Multipart uploads s3rver still holds for `bucket` (started, neither completed nor
// aborted): the entries of its "._S3rver_uploads" directory.
inline size_t PendingUploads(const std::string& s3rver_dir, const std::string& bucket) {
  const std::string d = s3rver_dir + "/" + bucket + "/._S3rver_uploads";
  if (!std::filesystem::exists(d)) return 0;
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(d)) {
    (void)e;
    ++n;
  }
  return n;
}

}  // namespace modelseal::store::testing
