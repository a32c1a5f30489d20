// Sealing: a small task scheduler that keeps every core busy while the two
// plaintext digests, which are inherently sequential, run alongside the parallel
// chunk encryption.
//
// The plaintext is cut into batches of whole chunks. Each batch lives in one of a
// few slots and goes through: read -> {SHA-384, SHA-256 (each in batch order),
// encrypt each chunk (any order)} -> write -> retire. Workers take the most urgent
// task available, so with two threads one of them streams SHA-384 (the slowest
// stage) almost without pause. Memory is bounded by the slots, not the model.
#include <openssl/evp.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/parallel.h"
#include "sealed/internal.h"

namespace modelseal::sealed {

using internal::Fail;

namespace {

constexpr uint64_t kBatchBytes = 8u << 20;

class SealPipeline {
 public:
  SealPipeline(const ByteSource& src, ByteSink& out, const Header& h, const SecretBuffer& key,
               unsigned threads, const ProgressFn& progress)
      : src_(src), out_(out), h_(h), key_(key), threads_(threads), progress_(progress) {
    chunks_per_batch_ = std::max<uint64_t>(1, kBatchBytes / h.chunk_size);
    total_chunks_ = h.chunk_count();
    total_batches_ = (total_chunks_ + chunks_per_batch_ - 1) / chunks_per_batch_;
    slots_.resize(std::min<uint64_t>(std::max(3u, threads_ + 1), 8));
  }

  Status Run(std::array<uint8_t, 32>& sha256, std::array<uint8_t, 48>& sha384) {
    d256_.reset(EVP_MD_CTX_new());
    d384_.reset(EVP_MD_CTX_new());
    if (!d256_ || !d384_ || EVP_DigestInit_ex(d256_.get(), EVP_sha256(), nullptr) != 1 ||
        EVP_DigestInit_ex(d384_.get(), EVP_sha384(), nullptr) != 1) {
      return OpenSslError("sealed", "digest init");
    }
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads_; ++t) pool.emplace_back([this] { Work(); });
    Work();
    for (auto& t : pool) t.join();
    if (error_) return *error_;
    unsigned len = 0;
    if (EVP_DigestFinal_ex(d256_.get(), sha256.data(), &len) != 1 ||
        EVP_DigestFinal_ex(d384_.get(), sha384.data(), &len) != 1) {
      return OpenSslError("sealed", "digest final");
    }
    return Ok{};
  }

 private:
  enum class Kind { kRead, kHash384, kHash256, kEncrypt, kWrite };
  struct Task {
    Kind kind;
    size_t slot;
    uint64_t chunk = 0;  // for kEncrypt: index within the batch
  };
  struct Slot {
    bool in_use = false;
    uint64_t batch = 0;
    uint64_t first_chunk = 0;
    uint64_t chunks = 0;
    uint64_t plain_len = 0;
    std::span<const uint8_t> plain;
    SecretBuffer
        scratch;   // plaintext when the source copies into it; wiped on reuse and at the end
    Bytes sealed;  // ciphertext
    bool read = false;
    uint64_t enc_claimed = 0;
    uint64_t enc_done = 0;
    bool writing = false;
    bool written = false;
  };

  size_t SlotOf(uint64_t batch) const { return batch % slots_.size(); }

  std::optional<Task> Pick() {
    // Reading first: it keeps the sequential digest stages fed.
    if (!reading_ && next_read_ < total_batches_ && slots_[SlotOf(next_read_)].in_use &&
        slots_[SlotOf(next_read_)].batch == next_read_ && !slots_[SlotOf(next_read_)].read) {
      reading_ = true;
      return Task{Kind::kRead, SlotOf(next_read_)};
    }
    if (!h384_busy_ && h384_next_ < next_read_ && slots_[SlotOf(h384_next_)].read) {
      h384_busy_ = true;
      return Task{Kind::kHash384, SlotOf(h384_next_)};
    }
    if (!h256_busy_ && h256_next_ < next_read_ && slots_[SlotOf(h256_next_)].read) {
      h256_busy_ = true;
      return Task{Kind::kHash256, SlotOf(h256_next_)};
    }
    for (uint64_t b = retired_; b < next_read_; ++b) {  // oldest batch first
      Slot& s = slots_[SlotOf(b)];
      if (!s.read) continue;
      if (s.enc_done == s.chunks && !s.writing && !s.written) {
        s.writing = true;
        return Task{Kind::kWrite, SlotOf(b)};
      }
      if (s.enc_claimed < s.chunks) return Task{Kind::kEncrypt, SlotOf(b), s.enc_claimed++};
    }
    return std::nullopt;
  }

  Status Execute(const Task& t, internal::ChunkCipher& cipher) {
    Slot& s = slots_[t.slot];
    switch (t.kind) {
      case Kind::kRead: {
        if (s.scratch.size() < s.plain_len) s.scratch = SecretBuffer::Unlocked(s.plain_len);
        MS_ASSIGN_OR_RETURN(
            s.plain, src_.ReadAt(s.first_chunk * h_.chunk_size, s.plain_len, s.scratch.data()));
        const uint64_t sealed_len = s.plain_len + s.chunks * kTagSize;
        if (s.sealed.size() < sealed_len) s.sealed.resize(sealed_len);
        return Ok{};
      }
      case Kind::kHash384:
        if (EVP_DigestUpdate(d384_.get(), s.plain.data(), s.plain.size()) != 1) {
          return OpenSslError("sealed", "SHA-384");
        }
        return Ok{};
      case Kind::kHash256:
        if (EVP_DigestUpdate(d256_.get(), s.plain.data(), s.plain.size()) != 1) {
          return OpenSslError("sealed", "SHA-256");
        }
        return Ok{};
      case Kind::kEncrypt: {
        const uint64_t index = s.first_chunk + t.chunk;
        const uint32_t len = h_.chunk_plain_size(index);
        const uint64_t in_off = t.chunk * h_.chunk_size;
        uint8_t* dst = s.sealed.data() + t.chunk * (uint64_t{h_.chunk_size} + kTagSize);
        return cipher.Encrypt(key_, index, index + 1 == total_chunks_, s.plain.subspan(in_off, len),
                              dst, dst + len);
      }
      case Kind::kWrite:
        return out_.WriteAt(h_.chunk_offset(s.first_chunk),
                            std::span(s.sealed.data(), s.plain_len + s.chunks * kTagSize));
    }
    return Ok{};
  }

  // Called with mu_ held after task `t` succeeded.
  void Complete(const Task& t) {
    Slot& s = slots_[t.slot];
    switch (t.kind) {
      case Kind::kRead:
        s.read = true;
        reading_ = false;
        ++next_read_;
        break;
      case Kind::kHash384:
        h384_busy_ = false;
        ++h384_next_;
        break;
      case Kind::kHash256:
        h256_busy_ = false;
        ++h256_next_;
        break;
      case Kind::kEncrypt:
        ++s.enc_done;
        break;
      case Kind::kWrite:
        s.written = true;
        break;
    }
    // Retire finished batches in order and prepare their slots for reuse.
    while (retired_ < next_read_) {
      Slot& r = slots_[SlotOf(retired_)];
      if (!r.written || h384_next_ <= retired_ || h256_next_ <= retired_) break;
      done_bytes_ += r.plain_len;
      r.in_use = false;
      ++retired_;
      Report(progress_, {"seal", done_bytes_, h_.plaintext_size, "bytes", "", false});
    }
    if (next_read_ < total_batches_ && !reading_) Prepare(next_read_);
  }

  void Prepare(uint64_t batch) {
    Slot& s = slots_[SlotOf(batch)];
    if (s.in_use) return;
    s.in_use = true;
    s.batch = batch;
    s.first_chunk = batch * chunks_per_batch_;
    s.chunks = std::min(chunks_per_batch_, total_chunks_ - s.first_chunk);
    const uint64_t end_chunk = s.first_chunk + s.chunks;
    const uint64_t begin = s.first_chunk * h_.chunk_size;
    const uint64_t end = end_chunk == total_chunks_ ? h_.plaintext_size : end_chunk * h_.chunk_size;
    s.plain_len = end - begin;
    s.plain = {};
    s.read = false;
    s.enc_claimed = s.enc_done = 0;
    s.writing = s.written = false;
  }

  void Work() {
    // This worker's cipher context: its key schedule is cleansed when Work returns.
    internal::ChunkCipher cipher;
    std::unique_lock<std::mutex> lock(mu_);
    if (!started_) {
      started_ = true;
      Prepare(0);
    }
    while (!error_ && retired_ < total_batches_) {
      std::optional<Task> t = Pick();
      if (!t) {
        cv_.wait(lock);
        continue;
      }
      lock.unlock();
      Status st = Execute(*t, cipher);
      lock.lock();
      if (!st.ok()) {
        if (!error_) error_ = st.take_error();
      } else {
        Complete(*t);
      }
      cv_.notify_all();
    }
    cv_.notify_all();
  }

  const ByteSource& src_;
  ByteSink& out_;
  const Header& h_;
  const SecretBuffer& key_;
  const unsigned threads_;
  const ProgressFn& progress_;
  MdCtxPtr d256_;
  MdCtxPtr d384_;

  uint64_t chunks_per_batch_ = 0;
  uint64_t total_chunks_ = 0;
  uint64_t total_batches_ = 0;
  std::vector<Slot> slots_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool reading_ = false;
  uint64_t next_read_ = 0;  // batches [0, next_read_) have been read
  uint64_t h384_next_ = 0;
  uint64_t h256_next_ = 0;
  bool h384_busy_ = false;
  bool h256_busy_ = false;
  uint64_t retired_ = 0;
  uint64_t done_bytes_ = 0;
  std::optional<Error> error_;
};

}  // namespace

namespace {

// The header Seal writes, before the digests and the salt are known: everything
// that decides its size.
Result<Header> PrepareHeader(uint64_t plaintext_size, const SealKey& key, const ModelInfo& model,
                             const SealOptions& options) {
  if (key.data_key == nullptr || key.data_key->size() != kDataKeySize) {
    return Fail(ErrorCode::kInvalidArgument, "bad-key", "data key must be 32 bytes");
  }
  Header h;
  h.chunk_size = options.chunk_size;
  h.plaintext_size = plaintext_size;
  h.kms_key_id = key.kms_key_id;
  h.encrypted_data_key = key.encrypted_data_key;
  h.encryption_context = key.encryption_context;
  h.model = model;
  h.created_unix_ms = options.created_unix_ms ? options.created_unix_ms : NowUnixMs();
  if (Status v = internal::ValidateForWrite(h); !v.ok()) {
    return Fail(ErrorCode::kInvalidArgument, "invalid-argument",
                "cannot seal: " + v.error().message.substr(std::strlen("malformed header: ")));
  }
  h.header_size =
      static_cast<uint32_t>(internal::EncodeHeaderWithoutMac(h).size() + internal::kMacSize);
  return h;
}

}  // namespace

Result<uint64_t> SealedSize(uint64_t plaintext_size, const SealKey& key, const ModelInfo& model,
                            const SealOptions& options) {
  MS_ASSIGN_OR_RETURN(Header h, PrepareHeader(plaintext_size, key, model, options));
  return h.sealed_size();
}

Result<Header> Seal(const ByteSource& plaintext, ByteSink& out, const SealKey& key,
                    const ModelInfo& model, const SealOptions& options) {
  MS_ASSIGN_OR_RETURN(Header h, PrepareHeader(plaintext.size(), key, model, options));
  if (options.salt) {
    h.salt = *options.salt;
  } else {
    MS_RETURN_IF_ERROR(RandomBytes(h.salt.data(), h.salt.size()));
  }
  MS_ASSIGN_OR_RETURN(auto keys, internal::DeriveKeys(*key.data_key, h.salt));

  const unsigned threads = options.threads ? options.threads : DefaultThreads();
  SealPipeline pipeline(plaintext, out, h, keys.chunk_key, threads, options.progress);
  MS_RETURN_IF_ERROR(pipeline.Run(h.sha256, h.sha384));

  Bytes header = internal::EncodeHeaderWithoutMac(h);
  if (header.size() + internal::kMacSize != h.header_size) {
    return Fail(ErrorCode::kInternal, "internal", "header size changed while sealing");
  }
  MS_ASSIGN_OR_RETURN(auto mac, internal::HeaderMac(keys.mac_key, header));
  header.insert(header.end(), mac.begin(), mac.end());
  MS_RETURN_IF_ERROR(out.WriteAt(0, header));
  Report(options.progress, {"seal", h.plaintext_size, h.plaintext_size, "bytes", "", true});
  return h;
}

}  // namespace modelseal::sealed
