#include "common/digest.h"

#include <openssl/evp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/bytes.h"
#include "common/io.h"
#include "common/ossl.h"

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

Result<std::array<uint8_t, 32>> Sha256Fd(int fd, uint64_t size, const std::string& module) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return OpenSslError(module, "sha256 init");
  }
  constexpr size_t kChunk = 8u << 20;
  Bytes buf(static_cast<size_t>(std::min<uint64_t>(kChunk, size)));
  for (uint64_t done = 0; done < size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    const ssize_t n = pread(fd, buf.data(), want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(module, "read the file to digest it", errno);
    if (n == 0) {
      return MakeError(ErrorCode::kIntegrity, module, "changed-during-read",
                       "the file became shorter while it was digested");
    }
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  std::array<uint8_t, 32> d{};
  unsigned len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), d.data(), &len) != 1) return OpenSslError(module, "sha256");
  return d;
}

}  // namespace modelseal
