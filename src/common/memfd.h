// Memfd: an anonymous in-memory file (memfd_create) that holds plaintext model
// weights. It never touches a file system; other code (llama.cpp) opens it by the
// path /proc/self/fd/N. Once filled it is sealed: no further writes, no resizing.
//
// Lifecycle: Create -> fill (WriteAt, or MapWritable and store) -> Seal. If
// filling fails, call Wipe(): the contents are overwritten and the pages freed.
// Not thread-safe, except that WriteAt and stores into the writable mapping may
// come from several threads at once for disjoint ranges.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"

namespace modelseal {

class Memfd {
 public:
  static Result<Memfd> Create(const std::string& name, uint64_t size);

  Memfd() = default;
  ~Memfd();
  Memfd(Memfd&& other) noexcept;
  Memfd& operator=(Memfd&& other) noexcept;
  Memfd(const Memfd&) = delete;
  Memfd& operator=(const Memfd&) = delete;

  // Writes at `offset` with pwrite: the kernel allocates the pages in bulk, which
  // is much cheaper than faulting them in one by one through a mapping.
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data);
  // A shared writable mapping of the whole file; valid until Seal() or destruction.
  Result<std::span<uint8_t>> MapWritable();
  // Drops the writable mapping and adds F_SEAL_WRITE|GROW|SHRINK|SEAL.
  Status Seal();
  // Overwrites the contents with zeros (used when a fill fails).
  void Wipe();

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  bool sealed() const { return sealed_; }
  // "/proc/self/fd/N": opens the same in-memory file from this process.
  std::string path() const;

 private:
  void Unmap();
  int fd_ = -1;
  uint64_t size_ = 0;
  uint8_t* map_ = nullptr;
  bool sealed_ = false;
};

}  // namespace modelseal
