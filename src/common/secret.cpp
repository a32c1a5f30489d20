#include "common/secret.h"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <utility>

namespace modelseal {

namespace {

// One warning per process: a second failure adds nothing the first did not say.
void WarnMlockFailedOnce(int err) {
  static std::atomic<bool> warned{false};
  if (warned.exchange(true)) return;
  std::fprintf(stderr,
               "modelseal: warning: cannot lock key memory in RAM (mlock: %s); keys may be "
               "written to swap. Raise RLIMIT_MEMLOCK (ulimit -l; LimitMEMLOCK= for a systemd "
               "service) to at least 1 MiB, or run without swap (docs/security.md).\n",
               std::strerror(err));
}

}  // namespace

SecretBuffer::SecretBuffer(size_t size) : SecretBuffer(size, true) {}

SecretBuffer SecretBuffer::Unlocked(size_t size) {
  return SecretBuffer(size, false);
}

SecretBuffer::SecretBuffer(size_t size, bool lock) {
  if (size == 0) return;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  mapped_ = (size + page - 1) / page * page;
  void* p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  madvise(p, mapped_, MADV_DONTDUMP);
  madvise(p, mapped_, MADV_WIPEONFORK);  // a forked child sees zeros, not the key
  if (lock) {
    locked_ = mlock(p, mapped_) == 0;
    if (!locked_) WarnMlockFailedOnce(errno);
  }
  data_ = static_cast<uint8_t*>(p);
  size_ = size;
}

SecretBuffer::SecretBuffer(const uint8_t* data, size_t size) : SecretBuffer(size) {
  if (size > 0) std::memcpy(data_, data, size);
}

SecretBuffer::~SecretBuffer() {
  Clear();
}

SecretBuffer::SecretBuffer(SecretBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

SecretBuffer& SecretBuffer::operator=(SecretBuffer&& other) noexcept {
  if (this != &other) {
    Clear();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
    locked_ = std::exchange(other.locked_, false);
  }
  return *this;
}

void SecretBuffer::Clear() {
  if (data_ == nullptr) return;
  OPENSSL_cleanse(data_, mapped_);
  if (locked_) munlock(data_, mapped_);
  munmap(data_, mapped_);
  data_ = nullptr;
  size_ = 0;
  mapped_ = 0;
  locked_ = false;
}

}  // namespace modelseal
