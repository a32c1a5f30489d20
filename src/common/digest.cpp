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

Result<ModelDigests> DigestFd(int fd, uint64_t size, const std::string& module) {
  if (size == 0) return DigestBytes({});
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return ErrnoError(module, "map the model to digest it", errno);
  madvise(map, size, MADV_DONTDUMP);  // plaintext weights stay out of core dumps
  ModelDigests d = DigestBytes({static_cast<const uint8_t*>(map), size});
  munmap(map, size);
  return d;
}

}  // namespace modelseal
