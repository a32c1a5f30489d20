// Sealed bytes in transit (pipeline internals).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/io.h"
#include "common/memfd.h"
#include "sealed/sealed.h"
#include "store/store.h"

namespace modelseal::pipeline {

// A ByteSource over one object of a store: ReadAt is a ranged GET. The first
// read caches the object's first bytes (the sealed header), so reading the
// header twice costs one round trip.
class StoreSource final : public ByteSource {
 public:
  static Result<std::unique_ptr<StoreSource>> Open(store::ObjectStore& store, std::string key);
  uint64_t size() const override { return info_.size; }
  const store::ObjectInfo& info() const { return info_; }
  Result<std::span<const uint8_t>> ReadAt(uint64_t offset, size_t len,
                                          uint8_t* scratch) const override;
  // The object's first bytes as read (empty before the first read).
  Bytes head() const;

 private:
  StoreSource(store::ObjectStore& store, store::ObjectInfo info)
      : store_(store), info_(std::move(info)) {}
  store::ObjectStore& store_;
  store::ObjectInfo info_;
  mutable std::mutex mu_;
  mutable Bytes head_;  // the first bytes, once read
};

// The sink of a download of a sealed object: each chunk is decrypted into `out`
// by the thread whose write completed it, so decryption overlaps the download and
// runs on as many threads as the download has ranges. Memory: the chunks being
// assembled (about two per range in flight). Ranges may arrive in any order;
// every byte exactly once. The header region must equal `header_bytes` (the bytes
// authenticated before the key release).
class DecryptingSink final : public ByteSink {
 public:
  DecryptingSink(const sealed::SealedReader& reader, Bytes header_bytes, Memfd& out,
                 const std::atomic<bool>* cancel);
  ~DecryptingSink() override;
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  // Ok when every chunk was decrypted (reason "incomplete" otherwise).
  Status Finish() const;

 private:
  // A chunk being assembled from pieces. Shared: a piece being copied in keeps it
  // alive even if another thread completes the chunk meanwhile (a duplicate piece).
  struct Partial {
    Bytes sealed;
    std::atomic<uint64_t> filled{0};
    ~Partial();  // wipes `sealed`
  };
  Status Take(uint64_t index, uint64_t within, std::span<const uint8_t> piece, uint64_t sealed_len);
  // Decrypts chunk `index` from all of its sealed bytes into the memfd.
  Status Decrypt(uint64_t index, std::span<const uint8_t> sealed);

  const sealed::SealedReader& reader_;
  const Bytes header_;
  Memfd& out_;
  const std::atomic<bool>* cancel_;
  uint64_t chunk_count_ = 0;
  uint64_t stride_ = 0;
  uint64_t body_offset_ = 0;
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Partial>> partial_;
  std::vector<bool> done_;  // by chunk index
  uint64_t decrypted_ = 0;  // chunks decrypted, each counted once
};

}  // namespace modelseal::pipeline
