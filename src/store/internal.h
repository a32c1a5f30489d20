// Store internals shared by store.cpp, local_store.cpp and s3_*.cpp.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/store.h"

namespace modelseal::store {

Error StoreError(ErrorCode code, std::string reason, std::string message);

Result<std::unique_ptr<ObjectStore>> NewLocalStore(std::string root);
Result<std::unique_ptr<ObjectStore>> NewS3Store(std::string bucket, std::string prefix,
                                                StoreOptions options);

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
