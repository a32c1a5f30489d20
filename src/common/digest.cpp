#include "common/digest.h"

#include <openssl/evp.h>
#include <sys/mman.h>

#include "common/io.h"

namespace modelseal {

ModelDigests DigestBytes(std::span<const uint8_t> data) {
  ModelDigests d;
  unsigned len = 0;
  // EVP_Digest with the default SHA-2 implementations cannot fail on valid input.
  EVP_Digest(data.data(), data.size(), d.sha256.data(), &len, EVP_sha256(), nullptr);
  EVP_Digest(data.data(), data.size(), d.sha384.data(), &len, EVP_sha384(), nullptr);
  return d;
}

namespace {

// Maps `size` bytes of `fd` read-only, kept out of core dumps, for `digest` to read.
template <typename F>
auto WithMapping(int fd, uint64_t size, const std::string& module, F digest)
    -> Result<decltype(digest(std::span<const uint8_t>{}))> {
  if (size == 0) return digest(std::span<const uint8_t>{});
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return ErrnoError(module, "map the file to digest it", errno);
  madvise(map, size, MADV_DONTDUMP);  // plaintext weights stay out of core dumps
  auto d = digest(std::span<const uint8_t>(static_cast<const uint8_t*>(map), size));
  munmap(map, size);
  return d;
}

}  // namespace

Result<ModelDigests> DigestFd(int fd, uint64_t size, const std::string& module) {
  return WithMapping(fd, size, module, DigestBytes);
}

Result<std::array<uint8_t, 32>> Sha256Fd(int fd, uint64_t size, const std::string& module) {
  return WithMapping(fd, size, module, [](std::span<const uint8_t> data) {
    std::array<uint8_t, 32> d{};
    unsigned len = 0;
    EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
    return d;
  });
}

}  // namespace modelseal
