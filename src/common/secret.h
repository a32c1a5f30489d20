// SecretBuffer: memory for key material. The pages are locked (mlock) so they are
// not swapped, excluded from core dumps, and wiped with OPENSSL_cleanse when the
// buffer is destroyed or moved from. Not copyable. Not thread-safe for writes;
// concurrent reads are fine.
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
  ~SecretBuffer();

  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  SecretBuffer(SecretBuffer&& other) noexcept;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {data_, size_}; }
  // Whether mlock succeeded (it may not under a small RLIMIT_MEMLOCK).
  bool locked() const { return locked_; }

  // Wipes and releases the memory now.
  void Clear();

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;
  bool locked_ = false;
};

}  // namespace modelseal
