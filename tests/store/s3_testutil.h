// Helpers for the S3 tests: s3rver-backed store options and deterministic data.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>

#include "aws/credentials.h"
#include "store/store.h"
#include "tests/aws/testenv.h"

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

inline Bytes Pattern(size_t n, uint32_t seed) {
  Bytes b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : b) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<uint8_t>(x >> 24);
  }
  return b;
}

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

inline Bytes ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteFileBytes(const std::string& path, const Bytes& b) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace modelseal::store::testing
