// Moving sealed bytes: a ByteSource over a stored object, and the sink that
// decrypts a download chunk by chunk as its ranges arrive.
#include "pipeline/transfer.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>

#include "pipeline/internal.h"

namespace modelseal::pipeline {

namespace {
// The first read of a stored object fetches at least this much: the sealed
// header (a few hundred bytes to a few KiB) in one round trip.
constexpr size_t kHeadBytes = 64u << 10;
}  // namespace

Error AtStep(const std::string& step, Error e) {
  e.message = step + ": " + e.message;
  return e;
}

Error Cancelled() {
  return Fail(ErrorCode::kCancelled, "cancelled", "cancelled");
}

Result<std::unique_ptr<StoreSource>> StoreSource::Open(store::ObjectStore& store, std::string key) {
  MS_ASSIGN_OR_RETURN(store::ObjectInfo info, store.Head(key));
  return std::unique_ptr<StoreSource>(new StoreSource(store, std::move(info)));
}

Result<std::span<const uint8_t>> StoreSource::ReadAt(uint64_t offset, size_t len,
                                                     uint8_t* scratch) const {
  if (offset > info_.size || len > info_.size - offset) {
    return Fail(ErrorCode::kInvalidArgument, "out-of-range", "read past the end of " + info_.key);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (head_.empty() && offset < kHeadBytes) {
      const uint64_t n =
          std::min<uint64_t>(std::max<uint64_t>(kHeadBytes, offset + len), info_.size);
      Bytes head(static_cast<size_t>(n));
      SpanSink sink(head);
      MS_RETURN_IF_ERROR(store_.GetRange(info_.key, 0, n, sink, 0));
      head_ = std::move(head);
    }
    if (offset + len <= head_.size()) {
      std::memcpy(scratch, head_.data() + offset, len);
      return std::span<const uint8_t>(scratch, len);
    }
  }
  SpanSink sink(std::span(scratch, len));
  MS_RETURN_IF_ERROR(store_.GetRange(info_.key, offset, len, sink, 0));
  return std::span<const uint8_t>(scratch, len);
}

Bytes StoreSource::head() const {
  std::lock_guard<std::mutex> lock(mu_);
  return head_;
}

DecryptingSink::DecryptingSink(const sealed::SealedReader& reader, Bytes header_bytes, Memfd& out,
                               const std::atomic<bool>* cancel)
    : reader_(reader), header_(std::move(header_bytes)), out_(out), cancel_(cancel) {
  const sealed::Header& h = reader_.header();
  chunk_count_ = h.chunk_count();
  stride_ = uint64_t{h.chunk_size} + sealed::kTagSize;
  body_offset_ = h.chunk_offset(0);
  done_.assign(static_cast<size_t>(chunk_count_), false);
}

DecryptingSink::Partial::~Partial() {
  OPENSSL_cleanse(sealed.data(), sealed.size());
}

DecryptingSink::~DecryptingSink() = default;

Status DecryptingSink::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (IsCancelled(cancel_)) return Cancelled();
  // The header region must be the bytes that were authenticated.
  if (offset < body_offset_) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(body_offset_ - offset, data.size()));
    if (offset + n > header_.size() ||
        CRYPTO_memcmp(header_.data() + offset, data.data(), n) != 0) {
      return Fail(ErrorCode::kIntegrity, "changed-during-read",
                  "the sealed object's header changed between the key release and the download");
    }
    offset += n;
    data = data.subspan(n);
  }
  while (!data.empty()) {
    const uint64_t rel = offset - body_offset_;
    const uint64_t index = rel / stride_;
    const uint64_t within = rel % stride_;
    if (index >= chunk_count_) {
      return Fail(ErrorCode::kIntegrity, "trailing-data", "data after the last chunk");
    }
    const sealed::Header& h = reader_.header();
    const uint64_t sealed_len = uint64_t{h.chunk_plain_size(index)} + sealed::kTagSize;
    const size_t take = static_cast<size_t>(std::min<uint64_t>(sealed_len - within, data.size()));
    if (within == 0 && take == sealed_len) {
      // The whole chunk is in this write (a local store's ranges): decrypt it from
      // the caller's buffer, without assembling a copy first.
      MS_RETURN_IF_ERROR(Decrypt(index, data.first(take)));
    } else {
      MS_RETURN_IF_ERROR(Take(index, within, data.first(take), sealed_len));
    }
    offset += take;
    data = data.subspan(take);
  }
  return Ok{};
}

Status DecryptingSink::Take(uint64_t index, uint64_t within, std::span<const uint8_t> piece,
                            uint64_t sealed_len) {
  std::shared_ptr<Partial> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = partial_[index];
    if (!slot) {
      slot = std::make_shared<Partial>();
      slot->sealed.resize(static_cast<size_t>(sealed_len));
    }
    p = slot;
  }
  std::memcpy(p->sealed.data() + within, piece.data(), piece.size());
  if (p->filled.fetch_add(piece.size()) + piece.size() != sealed_len) return Ok{};

  // This write completed the chunk: decrypt it here, on the download's thread.
  Status s = Decrypt(index, p->sealed);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = partial_.find(index); it != partial_.end() && it->second == p) partial_.erase(it);
  return s;
}

Status DecryptingSink::Decrypt(uint64_t index, std::span<const uint8_t> sealed) {
  const sealed::Header& h = reader_.header();
  thread_local Bytes plain;
  plain.resize(h.chunk_size);
  const std::span<uint8_t> out(plain.data(), h.chunk_plain_size(index));
  Status s = reader_.DecryptChunkFrom(index, sealed, out);
  if (s.ok()) s = out_.WriteAt(index * h.chunk_size, out);
  OPENSSL_cleanse(plain.data(), plain.size());
  if (s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_[index]) {  // a chunk that came twice counts once
      done_[index] = true;
      ++decrypted_;
    }
  }
  return s;
}

Status DecryptingSink::Finish() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (decrypted_ != chunk_count_ || !partial_.empty()) {
    return Fail(ErrorCode::kIntegrity, "incomplete",
                "the download ended with " + std::to_string(chunk_count_ - decrypted_) + " of " +
                    std::to_string(chunk_count_) + " chunks missing and " +
                    std::to_string(partial_.size()) + " partly received");
  }
  return Ok{};
}

}  // namespace modelseal::pipeline
