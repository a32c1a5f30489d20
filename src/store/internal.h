// Store internals shared by store.cpp, local_store.cpp and s3_*.cpp.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/store.h"

namespace modelseal::store {

Error StoreError(ErrorCode code, std::string reason, std::string message);

Result<std::unique_ptr<ObjectStore>> NewLocalStore(std::string root, StoreOptions options);
Result<std::unique_ptr<ObjectStore>> NewS3Store(std::string bucket, std::string prefix,
                                                StoreOptions options);

class S3Endpoint;
// The S3 writer behind S3Store::NewWriter (s3_upload.cpp).
std::unique_ptr<ObjectWriter> NewS3Writer(std::shared_ptr<S3Endpoint> ep, std::string full_key,
                                          uint64_t size, const StoreOptions& options,
                                          const ProgressFn& progress);

// Progress from several threads, serialised as progress.h requires.
class ProgressCounter {
 public:
  ProgressCounter(const ProgressFn& fn, std::string stage, uint64_t total)
      : fn_(fn), stage_(std::move(stage)), total_(total) {}
  void Add(uint64_t n);
  void Finish();

 private:
  const ProgressFn& fn_;
  std::string stage_;
  uint64_t total_;
  std::mutex mu_;
  uint64_t done_ = 0;
};

}  // namespace modelseal::store
