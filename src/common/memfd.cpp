#include "common/memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/io.h"

namespace modelseal {

Result<Memfd> Memfd::Create(const std::string& name, uint64_t size) {
  Memfd m;
  m.fd_ = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (m.fd_ < 0) return ErrnoError("memfd", "memfd_create", errno);
  if (ftruncate(m.fd_, static_cast<off_t>(size)) != 0) {
    return ErrnoError("memfd", "size memfd to " + std::to_string(size) + " bytes", errno);
  }
  m.size_ = size;
  return m;
}

Memfd::~Memfd() {
  Unmap();
  if (fd_ >= 0) ::close(fd_);
}

Memfd::Memfd(Memfd&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      size_(std::exchange(o.size_, 0)),
      map_(std::exchange(o.map_, nullptr)),
      sealed_(std::exchange(o.sealed_, false)) {}

Memfd& Memfd::operator=(Memfd&& o) noexcept {
  if (this != &o) {
    Unmap();
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = std::exchange(o.size_, 0);
    map_ = std::exchange(o.map_, nullptr);
    sealed_ = std::exchange(o.sealed_, false);
  }
  return *this;
}

void Memfd::Unmap() {
  if (map_ != nullptr) munmap(map_, size_);
  map_ = nullptr;
}

Result<std::span<uint8_t>> Memfd::MapWritable() {
  if (sealed_) {
    return MakeError(ErrorCode::kInternal, "memfd", "sealed", "memfd is sealed against writes");
  }
  if (size_ == 0) return std::span<uint8_t>();
  if (map_ == nullptr) {
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return ErrnoError("memfd", "mmap memfd", errno);
    map_ = static_cast<uint8_t*>(p);
  }
  return std::span<uint8_t>(map_, size_);
}

Status Memfd::Seal() {
  Unmap();
  const int seals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
  if (fcntl(fd_, F_ADD_SEALS, seals) != 0) return ErrnoError("memfd", "seal memfd", errno);
  sealed_ = true;
  return Ok{};
}

Status Memfd::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (sealed_)
    return MakeError(ErrorCode::kInternal, "memfd", "sealed", "memfd is sealed against writes");
  if (offset > size_ || data.size() > size_ - offset) {
    return MakeError(ErrorCode::kInvalidArgument, "memfd", "write-past-end",
                     "write past the end of a memfd");
  }
  return PwriteAll(fd_, offset, data, "memfd", "write memfd");
}

void Memfd::Wipe() {
  if (fd_ < 0 || sealed_ || size_ == 0) return;
  // Overwrite through a mapping (freed pages are not cleared by the kernel until
  // reused), then free the pages.
  if (map_ == nullptr) {
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p != MAP_FAILED) map_ = static_cast<uint8_t*>(p);
  }
  if (map_ != nullptr) {
    std::memset(map_, 0, size_);
    __asm__ __volatile__("" : : "r"(map_) : "memory");  // keep the stores
  }
  Unmap();
  fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(size_));
}

std::string Memfd::path() const {
  return "/proc/self/fd/" + std::to_string(fd_);
}

}  // namespace modelseal
