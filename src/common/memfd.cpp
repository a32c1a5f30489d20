#include "common/memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "common/harden.h"
#include "common/io.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace modelseal {

namespace {

// At most `max` bytes of `s`, not ending inside a UTF-8 sequence.
std::string CutAtCharacter(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<uint8_t>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

// Stores that the compiler may not drop although nothing reads them afterwards.
void ZeroMemory(uint8_t* p, size_t n) {
  std::memset(p, 0, n);
  __asm__ __volatile__("" : : "r"(p) : "memory");
}

}  // namespace

Result<Memfd> Memfd::Create(const std::string& name, uint64_t size) {
  MS_RETURN_IF_ERROR(HardenProcess());
  const std::string shown = CutAtCharacter(name, kMaxNameBytes);
  Memfd m;
  // Weights are never executed: seal against exec where the kernel can (6.3+).
  m.fd_ = memfd_create(shown.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
  if (m.fd_ < 0 && errno == EINVAL)
    m.fd_ = memfd_create(shown.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (m.fd_ < 0) return ErrnoError("memfd", "memfd_create", errno);
  if (ftruncate(m.fd_, static_cast<off_t>(size)) != 0) {
    return ErrnoError("memfd", "size memfd to " + std::to_string(size) + " bytes", errno);
  }
  m.size_ = size;
  return m;
}

Memfd::~Memfd() {
  Release();
}

Memfd::Memfd(Memfd&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      size_(std::exchange(o.size_, 0)),
      map_(std::exchange(o.map_, nullptr)),
      sealed_(std::exchange(o.sealed_, false)),
      wiped_(std::exchange(o.wiped_, true)) {}

Memfd& Memfd::operator=(Memfd&& o) noexcept {
  if (this != &o) {
    Release();
    fd_ = std::exchange(o.fd_, -1);
    size_ = std::exchange(o.size_, 0);
    map_ = std::exchange(o.map_, nullptr);
    sealed_ = std::exchange(o.sealed_, false);
    wiped_ = std::exchange(o.wiped_, true);
  }
  return *this;
}

void Memfd::Release() {
  if (!wiped_) Wipe();
  Unmap();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  size_ = 0;
  sealed_ = false;
  wiped_ = true;
}

void Memfd::Unmap() {
  if (map_ != nullptr) munmap(map_, size_);
  map_ = nullptr;
}

Status Memfd::EnsureMapped() {
  if (map_ != nullptr || size_ == 0) return Ok{};
  void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) return ErrnoError("memfd", "mmap memfd", errno);
  madvise(p, size_, MADV_DONTDUMP);
  map_ = static_cast<uint8_t*>(p);
  return Ok{};
}

Result<std::span<uint8_t>> Memfd::MapWritable() {
  if (sealed_) {
    return MakeError(ErrorCode::kInternal, "memfd", "sealed", "memfd is sealed against writes");
  }
  if (size_ == 0) return std::span<uint8_t>();
  MS_RETURN_IF_ERROR(EnsureMapped());
  wiped_ = false;
  return std::span<uint8_t>(map_, size_);
}

Status Memfd::Seal() {
  // The mapping is made before sealing: afterwards no writable mapping can be.
  MS_RETURN_IF_ERROR(EnsureMapped());
  const int seals = F_SEAL_FUTURE_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
  if (fcntl(fd_, F_ADD_SEALS, seals) != 0) {
    if (errno == EINVAL) {
      return MakeError(
          ErrorCode::kUnsupported, "memfd", "unsupported",
          "sealing the in-memory model needs Linux 5.1 or later (F_SEAL_FUTURE_WRITE)");
    }
    return ErrnoError("memfd", "seal memfd", errno);
  }
  sealed_ = true;
  // Whatever was stored through the mapping is unmapped from it (the pages stay in
  // the file): the process then counts the model's pages once, in the mapping its
  // reader makes, not twice.
  madvise(map_, size_, MADV_DONTNEED);
  return Ok{};
}

Status Memfd::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (sealed_)
    return MakeError(ErrorCode::kInternal, "memfd", "sealed", "memfd is sealed against writes");
  if (offset > size_ || data.size() > size_ - offset) {
    return MakeError(ErrorCode::kInvalidArgument, "memfd", "write-past-end",
                     "write past the end of a memfd");
  }
  wiped_ = false;
  return PwriteAll(fd_, offset, data, "memfd", "write memfd");
}

void Memfd::Wipe() {
  if (fd_ < 0 || size_ == 0) {
    wiped_ = true;
    return;
  }
  if (!sealed_) {
    // pwrite stores into the file's existing pages (in place) without faulting
    // them into a mapping one by one; then the pages are freed.
    static const uint8_t kZeros[1 << 16] = {};
    bool zeroed = true;
    for (uint64_t off = 0; off < size_ && zeroed; off += sizeof(kZeros)) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof(kZeros), size_ - off));
      zeroed = PwriteAll(fd_, off, std::span(kZeros, n), "memfd", "wipe memfd").ok();
    }
    if (!zeroed && EnsureMapped().ok()) ZeroMemory(map_, size_);
    fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(size_));
  } else if (map_ != nullptr) {
    // Sealed: only the mapping kept from before sealing can write. Window by
    // window: fault the pages in with one call (Linux 5.14+; plain stores fault
    // them otherwise), zero them, and unmap them from this process again, so the
    // wipe does not map the whole model at once.
    constexpr uint64_t kWindow = 16u << 20;
    for (uint64_t off = 0; off < size_; off += kWindow) {
      const size_t n = static_cast<size_t>(std::min(kWindow, size_ - off));
      madvise(map_ + off, n, MADV_POPULATE_WRITE);
      ZeroMemory(map_ + off, n);
      madvise(map_ + off, n, MADV_DONTNEED);  // the zeroed pages stay in the file
    }
  }
  wiped_ = true;
}

Result<int> Memfd::ExcludeMappingsFromCoreDumps() const {
  struct stat st {};
  if (fstat(fd_, &st) != 0) return ErrnoError("memfd", "stat memfd", errno);
  FILE* maps = std::fopen("/proc/self/maps", "re");
  if (maps == nullptr) return ErrnoError("memfd", "open /proc/self/maps", errno);
  int marked = 0;
  int failure = 0;
  char line[4096 + 256];
  while (std::fgets(line, sizeof(line), maps) != nullptr) {
    unsigned long lo = 0, hi = 0;
    unsigned maj = 0, mnr = 0;
    unsigned long long offset = 0, inode = 0;
    char perms[8];
    const bool parsed = std::sscanf(line, "%lx-%lx %7s %llx %x:%x %llu", &lo, &hi, perms, &offset,
                                    &maj, &mnr, &inode) == 7;
    // A line longer than the buffer continues in the next fgets; its rest does not parse.
    if (!parsed || inode != st.st_ino || makedev(maj, mnr) != st.st_dev) continue;
    if (madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTDUMP) == 0) {
      ++marked;
    } else if (errno != ENOMEM) {  // ENOMEM: unmapped since the line was read
      failure = errno;
    }
  }
  std::fclose(maps);
  if (failure != 0) return ErrnoError("memfd", "exclude memfd mappings from core dumps", failure);
  return marked;
}

std::string Memfd::path() const {
  return "/proc/self/fd/" + std::to_string(fd_);
}

}  // namespace modelseal
