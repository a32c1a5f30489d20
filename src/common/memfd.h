// Memfd: an anonymous in-memory file (memfd_create) that holds plaintext model
// weights. It never touches a file system; other code (llama.cpp) opens it by the
// path /proc/self/fd/N. Once filled it is sealed: no further writes, no resizing.
//
// Lifecycle: Create -> fill (WriteAt, or MapWritable and store) -> Seal ->
// destruction. Ownership: the Memfd owns the descriptor and its own mapping;
// moving transfers both.
//
// Hygiene (docs/security.md, "Plaintext and key hygiene"):
// * Create hardens the process first (HardenProcess, harden.h): whoever makes a
//   Memfd is about to hold plaintext.
// * Every mapping the Memfd makes is excluded from core dumps (MADV_DONTDUMP);
//   ExcludeMappingsFromCoreDumps marks the mappings others made of the file.
// * The contents are overwritten with zeros in place (the physical pages hold no
//   plaintext when the kernel frees them) by Wipe(), by the destructor and when a
//   Memfd is assigned over: on every path, sealed or not.
// * To wipe a sealed memfd, Seal() keeps a writable shared mapping made before
//   sealing and seals with F_SEAL_FUTURE_WRITE (Linux 5.1+): write(2), new
//   writable mappings and fallocate are refused to everyone, but that existing
//   mapping still writes. (F_SEAL_WRITE cannot be added while a writable mapping
//   exists, and after it nothing could clear the pages.)
// * An unsealed memfd's pages are also freed by Wipe (FALLOC_FL_PUNCH_HOLE); a
//   sealed one's are freed by the kernel once the last descriptor and mapping are
//   gone.
//
// Not thread-safe, except that WriteAt and stores into the writable mapping may
// come from several threads at once for disjoint ranges.
// Failures (module "memfd"): os (errno from memfd_create, ftruncate, mmap,
// fcntl), sealed (a write after Seal), write-past-end, unsupported (sealing on a
// kernel before 5.1); Create also fails as HardenProcess does.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"

namespace modelseal {

class Memfd {
 public:
  // The largest name memfd_create accepts (NAME_MAX less "memfd:"); longer names
  // are cut at a UTF-8 character boundary. The name is only for display.
  static constexpr size_t kMaxNameBytes = 249;

  static Result<Memfd> Create(const std::string& name, uint64_t size);

  Memfd() = default;
  ~Memfd();  // wipes, then closes
  Memfd(Memfd&& other) noexcept;
  Memfd& operator=(Memfd&& other) noexcept;  // wipes what this one held
  Memfd(const Memfd&) = delete;
  Memfd& operator=(const Memfd&) = delete;

  // Writes at `offset` with pwrite: the kernel allocates the pages in bulk, which
  // is much cheaper than faulting them in one by one through a mapping.
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data);
  // A shared writable mapping of the whole file; valid until Seal() or destruction.
  Result<std::span<uint8_t>> MapWritable();
  // Adds F_SEAL_FUTURE_WRITE|GROW|SHRINK|SEAL (see above). The writable mapping is
  // no longer handed out, and its page-table entries are dropped (the pages stay in
  // the file), so the model's pages count once in the process, in its reader's
  // mapping.
  Status Seal();
  // Overwrites the contents with zeros in place, sealed or not; an unsealed
  // memfd's pages are then freed. Never fails: if no mapping can be made, an
  // unsealed memfd is zeroed with pwrite.
  void Wipe();
  // Marks every mapping of this file in this process - also those other code
  // made through /proc/self/fd/N - MADV_DONTDUMP (found in /proc/self/maps by
  // device and inode). Returns how many were marked. Call it after such code
  // mapped the file; mappings made later are not covered.
  Result<int> ExcludeMappingsFromCoreDumps() const;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  bool sealed() const { return sealed_; }
  // "/proc/self/fd/N": opens the same in-memory file from this process.
  std::string path() const;

 private:
  void Release();  // wipe if needed, unmap, close
  Status EnsureMapped();
  void Unmap();
  int fd_ = -1;
  uint64_t size_ = 0;
  uint8_t* map_ = nullptr;  // writable, MADV_DONTDUMP; kept across Seal for Wipe
  bool sealed_ = false;
  bool wiped_ = true;  // nothing written since the last Wipe
};

}  // namespace modelseal
