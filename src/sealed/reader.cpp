// Authenticated reading: header MAC, size checks, per-chunk decryption, random
// access and parallel unseal into a memfd.
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <mutex>
#include <vector>

#include "common/digest.h"
#include "common/parallel.h"
#include "sealed/internal.h"

namespace modelseal::sealed {

using internal::ChunkName;
using internal::Fail;

namespace {

// Describes how an object of `size` bytes falls short of or exceeds `h`.
Status CheckObjectSize(const Header& h, uint64_t size) {
  const uint64_t want = h.sealed_size();
  const uint64_t n = h.chunk_count();
  if (size < want) {
    const uint64_t stride = uint64_t{h.chunk_size} + kTagSize;
    const uint64_t complete = (size - h.header_size) / stride;
    const std::string where = complete == 0 ? "truncated before the first chunk"
                                            : "truncated after " + ChunkName(complete - 1, n);
    return Fail(ErrorCode::kIntegrity, "truncated",
                where + " (object is " + std::to_string(size) + " bytes, expected " +
                    std::to_string(want) + ")");
  }
  if (size > want) {
    return Fail(ErrorCode::kIntegrity, "trailing-data",
                "unexpected data after the last chunk (object is " + std::to_string(size) +
                    " bytes, expected " + std::to_string(want) + ")");
  }
  return Ok{};
}

}  // namespace

SealedReader::SealedReader(const ByteSource& src, Header header, SecretBuffer chunk_key)
    : src_(src), header_(std::move(header)), chunk_key_(std::move(chunk_key)) {}

SealedReader::~SealedReader() = default;

Result<std::unique_ptr<SealedReader>> SealedReader::Open(const ByteSource& src,
                                                         const SecretBuffer& data_key) {
  // The header is read once, into a private buffer, and both authenticated and
  // parsed from that buffer.
  MS_ASSIGN_OR_RETURN(internal::RawHeader raw, internal::ReadRawHeader(src));
  Header& h = raw.header;
  const std::span<const uint8_t> bytes = raw.bytes;
  MS_ASSIGN_OR_RETURN(auto keys, internal::DeriveKeys(data_key, h.salt));
  const auto covered = bytes.first(bytes.size() - internal::kMacSize);
  MS_ASSIGN_OR_RETURN(auto mac, internal::HeaderMac(keys.mac_key, covered));
  if (CRYPTO_memcmp(mac.data(), bytes.data() + covered.size(), internal::kMacSize) != 0) {
    return Fail(ErrorCode::kIntegrity, "header-auth-failed",
                "header authentication failed (the header was modified or the data key is wrong)");
  }
  MS_RETURN_IF_ERROR(CheckObjectSize(h, src.size()));
  return std::unique_ptr<SealedReader>(
      new SealedReader(src, std::move(h), std::move(keys.chunk_key)));
}

Status SealedReader::DecryptChunk(uint64_t index, uint8_t* out, uint8_t* scratch,
                                  internal::ChunkCipher& cipher) const {
  const uint64_t n = header_.chunk_count();
  const uint32_t plain = header_.chunk_plain_size(index);
  const size_t len = plain + kTagSize;
  MS_ASSIGN_OR_RETURN(auto in, internal::ReadChecked(src_, header_.chunk_offset(index), len,
                                                     scratch, ChunkName(index, n)));
  const bool last = index + 1 == n;
  // GCM must authenticate and decrypt the same bytes: a copy in our scratch is
  // private, and so is a stable source's view; any other view (memory that might
  // change while it is read) is decrypted from private copies of its pieces.
  auto ok = in.data() == scratch || src_.stable()
                ? cipher.Decrypt(chunk_key_, index, last, in.first(plain), in.data() + plain, out)
                : cipher.DecryptFromShared(chunk_key_, index, last, in.first(plain),
                                           in.data() + plain, out);
  return ChunkResult(std::move(ok), index, std::span(out, plain));
}

Status SealedReader::ChunkResult(Result<bool> authentic, uint64_t index,
                                 std::span<uint8_t> out) const {
  if (authentic.ok() && *authentic) return Ok{};
  OPENSSL_cleanse(out.data(), out.size());  // garbage, or a partial decryption
  if (!authentic.ok()) return authentic.take_error();
  ERR_clear_error();
  return Fail(ErrorCode::kIntegrity, "chunk-auth-failed",
              ChunkName(index, header_.chunk_count()) + " failed authentication");
}

Status SealedReader::DecryptChunkFrom(uint64_t index, std::span<const uint8_t> sealed,
                                      std::span<uint8_t> out) const {
  const uint64_t n = header_.chunk_count();
  if (index >= n) {
    OPENSSL_cleanse(out.data(), out.size());
    return Fail(ErrorCode::kInvalidArgument, "out-of-range",
                "chunk index " + std::to_string(index) + " is past the last chunk");
  }
  const uint32_t plain = header_.chunk_plain_size(index);
  if (sealed.size() != uint64_t{plain} + kTagSize || out.size() != plain) {
    OPENSSL_cleanse(out.data(), out.size());
    return Fail(ErrorCode::kInvalidArgument, "out-of-range",
                ChunkName(index, n) + ": sealed or output buffer has the wrong size");
  }
  internal::ChunkCipher cipher;  // its key schedule is cleansed when it goes
  // `sealed` is the caller's memory, which might change while it is read: it is
  // decrypted from private copies of its pieces.
  auto ok = cipher.DecryptFromShared(chunk_key_, index, index + 1 == n, sealed.first(plain),
                                     sealed.data() + plain, out.data());
  return ChunkResult(std::move(ok), index, out);
}

Status SealedReader::ReadAt(uint64_t offset, std::span<uint8_t> out) const {
  const uint64_t size = header_.plaintext_size;
  if (offset > size || out.size() > size - offset) {
    return Fail(ErrorCode::kInvalidArgument, "out-of-range",
                "read of " + std::to_string(out.size()) + " bytes at " + std::to_string(offset) +
                    " is past the end of the " + std::to_string(size) + "-byte plaintext");
  }
  if (out.empty()) return Ok{};
  const uint64_t cs = header_.chunk_size;
  internal::ChunkCipher cipher;
  SecretBuffer plain = SecretBuffer::Unlocked(cs);  // wiped on every return
  Bytes scratch(cs + kTagSize);                     // ciphertext only
  uint64_t pos = offset;
  size_t done = 0;
  while (done < out.size()) {
    const uint64_t index = pos / cs;
    const uint64_t within = pos % cs;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(cs - within, out.size() - done));
    Status s = DecryptChunk(index, plain.data(), scratch.data(), cipher);
    if (!s.ok()) {
      OPENSSL_cleanse(out.data(), out.size());
      return s;
    }
    std::memcpy(out.data() + done, plain.data() + within, take);
    done += take;
    pos += take;
  }
  return Ok{};
}

Status SealedReader::DecryptChunks(unsigned threads, const ProgressFn& progress,
                                   const ChunkFn& chunk) const {
  if (threads == 0) threads = DefaultThreads();
  threads = static_cast<unsigned>(std::min<uint64_t>(threads, header_.chunk_count()));
  const uint64_t n = header_.chunk_count();
  const uint64_t stride = uint64_t{header_.chunk_size} + kTagSize;
  // Per worker: a cipher context and a plaintext + ciphertext buffer, all wiped
  // and freed when this call returns.
  std::vector<internal::ChunkCipher> ciphers(threads);
  std::vector<SecretBuffer> scratch(threads);
  std::atomic<uint64_t> done_bytes{0};
  std::mutex progress_mu;
  const uint64_t report_every = std::max<uint64_t>(header_.plaintext_size / 200, 1);
  uint64_t next_report = report_every;  // guarded by progress_mu
  Status s = ParallelFor(n, threads, [&](uint64_t i, unsigned w) -> Status {
    SecretBuffer& buf = scratch[w];
    if (buf.empty()) buf = SecretBuffer::Unlocked(2 * stride);
    MS_RETURN_IF_ERROR(chunk(i, buf.data(), buf.data() + stride, ciphers[w]));
    const uint32_t len = header_.chunk_plain_size(i);
    const uint64_t d = done_bytes.fetch_add(len) + len;
    if (progress) {
      std::lock_guard<std::mutex> lock(progress_mu);
      if (d >= next_report) {
        next_report = d + report_every;
        progress({"unseal", d, header_.plaintext_size, "bytes", ChunkName(i, n), false});
      }
    }
    return Ok{};
  });
  if (s.ok())
    Report(progress, {"unseal", header_.plaintext_size, header_.plaintext_size, "bytes", "", true});
  return s;
}

Status SealedReader::DecryptAll(std::span<uint8_t> out, unsigned threads,
                                const ProgressFn& progress) const {
  if (out.size() != header_.plaintext_size) {
    return Fail(ErrorCode::kInvalidArgument, "out-of-range", "output buffer has the wrong size");
  }
  Status s = DecryptChunks(
      threads, progress,
      [&](uint64_t i, uint8_t*, uint8_t* scratch, internal::ChunkCipher& cipher) -> Status {
        return DecryptChunk(i, out.data() + i * header_.chunk_size, scratch, cipher);
      });
  if (!s.ok()) OPENSSL_cleanse(out.data(), out.size());
  return s;
}

Status SealedReader::DecryptInto(Memfd& out, unsigned threads, const ProgressFn& progress) const {
  if (out.size() != header_.plaintext_size) {
    return Fail(ErrorCode::kInvalidArgument, "out-of-range", "memfd has the wrong size");
  }
  // Decrypt into a cache-resident buffer, then pwrite: cheaper than faulting
  // fresh pages in through a mapping.
  return DecryptChunks(
      threads, progress,
      [&](uint64_t i, uint8_t* plain, uint8_t* scratch, internal::ChunkCipher& cipher) -> Status {
        MS_RETURN_IF_ERROR(DecryptChunk(i, plain, scratch, cipher));
        return out.WriteAt(i * header_.chunk_size, std::span(plain, header_.chunk_plain_size(i)));
      });
}

namespace {

Status CheckDigests(const Header& h, std::span<const uint8_t> plain) {
  const ModelDigests d = DigestBytes(plain);
  if (CRYPTO_memcmp(d.sha256.data(), h.sha256.data(), 32) != 0 ||
      CRYPTO_memcmp(d.sha384.data(), h.sha384.data(), 48) != 0) {
    return Fail(
        ErrorCode::kIntegrity, "digest-mismatch",
        "plaintext digest does not match the header (the owner sealed inconsistent metadata)");
  }
  return Ok{};
}

}  // namespace

Result<Memfd> UnsealToMemfd(const ByteSource& src, const SecretBuffer& data_key,
                            const UnsealOptions& options) {
  MS_ASSIGN_OR_RETURN(auto reader, SealedReader::Open(src, data_key));
  const Header& h = reader->header();
  // Memfd::Create hardens the process and cuts long names. From here on, every
  // return that does not hand the memfd out destroys it, which wipes it.
  MS_ASSIGN_OR_RETURN(
      Memfd memfd,
      Memfd::Create("modelseal:" + (h.model.name.empty() ? std::string("model") : h.model.name),
                    h.plaintext_size));
  MS_RETURN_IF_ERROR(reader->DecryptInto(memfd, options.threads, options.progress));
  if (options.rehash) {
    MS_ASSIGN_OR_RETURN(auto view, memfd.MapWritable());
    MS_RETURN_IF_ERROR(CheckDigests(h, view));
  }
  MS_RETURN_IF_ERROR(memfd.Seal());
  return memfd;
}

}  // namespace modelseal::sealed
