// SecretBuffer: memory for key material and plaintext. Its pages are a private
// mapping of their own: excluded from core dumps (MADV_DONTDUMP), zero in a forked
// child (MADV_WIPEONFORK), locked in RAM (mlock) so they are not swapped, and
// wiped with OPENSSL_cleanse when the buffer is destroyed, cleared or assigned
// over. Not copyable. Not thread-safe for writes; concurrent reads are fine.
//
// mlock counts against RLIMIT_MEMLOCK; when it fails the buffer works unlocked
// and the first failure in the process prints one warning on stderr that names
// RLIMIT_MEMLOCK (keys might then reach swap). Unlocked() makes a buffer that is
// not locked at all, for bulk plaintext (a chunk per thread) that would exceed
// any sensible memlock limit; see docs/security.md on swap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace modelseal {

class SecretBuffer {
 public:
  SecretBuffer() = default;
  explicit SecretBuffer(size_t size);  // zero-filled
  SecretBuffer(const uint8_t* data, size_t size);
  // Not locked in RAM; otherwise the same protections.
  static SecretBuffer Unlocked(size_t size);
  ~SecretBuffer();

  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  SecretBuffer(SecretBuffer&& other) noexcept;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept;

  uint8_t* data() { return data_; }
  std::span<uint8_t> writable_span() { return {data_, size_}; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {data_, size_}; }
  // Whether mlock succeeded (it may not under a small RLIMIT_MEMLOCK).
  bool locked() const { return locked_; }

  // Wipes and releases the memory now.
  void Clear();

 private:
  SecretBuffer(size_t size, bool lock);
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;
  bool locked_ = false;
};

}  // namespace modelseal
