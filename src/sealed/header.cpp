// Header encoding and parsing (docs/container.md, "Header").
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/bytes.h"
#include "sealed/internal.h"

namespace modelseal::sealed {

using internal::Fail;

uint64_t Header::chunk_count() const {
  if (plaintext_size == 0) return 1;
  return (plaintext_size + chunk_size - 1) / chunk_size;
}

uint32_t Header::chunk_plain_size(uint64_t index) const {
  const uint64_t n = chunk_count();
  if (index + 1 < n) return chunk_size;
  return static_cast<uint32_t>(plaintext_size - (n - 1) * uint64_t{chunk_size});
}

uint64_t Header::chunk_offset(uint64_t index) const {
  return header_size + index * (uint64_t{chunk_size} + kTagSize);
}

uint64_t Header::sealed_size() const {
  return uint64_t{header_size} + plaintext_size + chunk_count() * kTagSize;
}

std::array<uint8_t, kNonceSize> ChunkNonce(uint64_t index, bool last) {
  std::array<uint8_t, kNonceSize> n{};
  for (int i = 0; i < 8; ++i) n[3 + i] = static_cast<uint8_t>(index >> (56 - 8 * i));
  n[11] = last ? 1 : 0;
  return n;
}

namespace internal {

namespace {

constexpr uint64_t kMaxPlaintextSize = uint64_t{1} << 50;  // 1 PiB
constexpr size_t kMaxKeyIdLen = 2048;
constexpr size_t kMaxEncryptedKeyLen = 8192;
constexpr size_t kMaxNameLen = 1024;
constexpr size_t kMaxSourceLen = 4096;
constexpr size_t kMaxContextEntries = 64;

Error Malformed(const std::string& what) {
  return Fail(ErrorCode::kIntegrity, "malformed-header", "malformed header: " + what);
}

void PutField(Bytes& out, uint16_t tag, std::span<const uint8_t> value) {
  PutU16(out, tag);
  PutU32(out, static_cast<uint32_t>(value.size()));
  out.insert(out.end(), value.begin(), value.end());
}

void PutField(Bytes& out, uint16_t tag, const std::string& s) {
  PutField(out, tag, std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

Bytes EncodeContext(const EncryptionContext& ctx) {
  Bytes b;
  PutU32(b, static_cast<uint32_t>(ctx.size()));
  for (const auto& [k, v] : ctx) {  // std::map iterates in byte order: canonical
    PutU16(b, static_cast<uint16_t>(k.size()));
    b.insert(b.end(), k.begin(), k.end());
    PutU16(b, static_cast<uint16_t>(v.size()));
    b.insert(b.end(), v.begin(), v.end());
  }
  return b;
}

Status CheckString(const std::string& field, const std::string& s, size_t max, bool allow_empty) {
  if (!allow_empty && s.empty()) return Malformed(field + " is empty");
  if (s.size() > max) {
    return Malformed(field + " is " + std::to_string(s.size()) + " bytes, at most " +
                     std::to_string(max) + " allowed");
  }
  if (!IsValidUtf8(s)) return Malformed(field + " is not valid UTF-8");
  return Ok{};
}

bool IsPowerOfTwo(uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

Status CheckChunkSize(uint32_t cs) {
  if (!IsPowerOfTwo(cs) || cs < kMinChunkSize || cs > kMaxChunkSize) {
    return Malformed("chunk size " + std::to_string(cs) +
                     " is not a power of two between 4 KiB and 64 MiB");
  }
  return Ok{};
}

Status CheckContext(const EncryptionContext& ctx) {
  if (ctx.size() > kMaxContextEntries) return Malformed("encryption context has too many entries");
  for (const auto& [k, v] : ctx) {
    MS_RETURN_IF_ERROR(CheckString("encryption context key", k, 0xffff, false));
    MS_RETURN_IF_ERROR(CheckString("encryption context value", v, 0xffff, true));
  }
  return Ok{};
}

// A bounds-checked cursor over the field area.
struct Cursor {
  const uint8_t* p;
  size_t left;
  bool Take(size_t n, const uint8_t** out) {
    if (n > left) return false;
    *out = p;
    p += n;
    left -= n;
    return true;
  }
};

std::string TagName(uint16_t tag) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%04x", tag);
  return buf;
}

Result<EncryptionContext> ParseContext(std::span<const uint8_t> v) {
  Cursor c{v.data(), v.size()};
  const uint8_t* p;
  if (!c.Take(4, &p)) return Malformed("encryption context is truncated");
  const uint32_t count = GetU32(p);
  if (count > kMaxContextEntries) return Malformed("encryption context has too many entries");
  EncryptionContext ctx;
  std::string prev;
  for (uint32_t i = 0; i < count; ++i) {
    std::string kv[2];
    for (auto& s : kv) {
      if (!c.Take(2, &p)) return Malformed("encryption context is truncated");
      const uint16_t len = GetU16(p);
      if (!c.Take(len, &p)) return Malformed("encryption context is truncated");
      s.assign(reinterpret_cast<const char*>(p), len);
    }
    if (i > 0 && kv[0] <= prev) return Malformed("encryption context keys are not in strict order");
    prev = kv[0];
    ctx.emplace(std::move(kv[0]), std::move(kv[1]));
  }
  if (c.left != 0) return Malformed("encryption context has trailing bytes");
  MS_RETURN_IF_ERROR(CheckContext(ctx));
  return ctx;
}

}  // namespace

Status ValidateForWrite(const Header& h) {
  MS_RETURN_IF_ERROR(CheckChunkSize(h.chunk_size));
  if (h.plaintext_size > kMaxPlaintextSize) return Malformed("plaintext is larger than 1 PiB");
  MS_RETURN_IF_ERROR(CheckString("KMS key id", h.kms_key_id, kMaxKeyIdLen, false));
  if (h.encrypted_data_key.empty() || h.encrypted_data_key.size() > kMaxEncryptedKeyLen) {
    return Malformed("encrypted data key must be 1 to 8192 bytes");
  }
  MS_RETURN_IF_ERROR(CheckContext(h.encryption_context));
  MS_RETURN_IF_ERROR(CheckString("model name", h.model.name, kMaxNameLen, true));
  MS_RETURN_IF_ERROR(CheckString("model source", h.model.source, kMaxSourceLen, true));
  MS_RETURN_IF_ERROR(CheckString("file name", h.model.file_name, kMaxNameLen, true));
  return Ok{};
}

Bytes EncodeHeaderWithoutMac(const Header& h) {
  Bytes fields;
  Bytes v;
  PutU32(v, h.chunk_size);
  PutField(fields, kTagChunkSize, v);
  v.clear();
  PutU64(v, h.plaintext_size);
  PutField(fields, kTagPlaintextSize, v);
  PutField(fields, kTagSalt, h.salt);
  v.clear();
  PutU64(v, h.created_unix_ms);
  PutField(fields, kTagCreated, v);
  PutField(fields, kTagKmsKeyId, h.kms_key_id);
  PutField(fields, kTagEncryptedDataKey, h.encrypted_data_key);
  PutField(fields, kTagEncryptionContext, EncodeContext(h.encryption_context));
  PutField(fields, kTagSha256, h.sha256);
  PutField(fields, kTagSha384, h.sha384);
  PutField(fields, kTagModelName, h.model.name);
  PutField(fields, kTagModelSource, h.model.source);
  PutField(fields, kTagFileName, h.model.file_name);

  Bytes out(kMagic, kMagic + sizeof(kMagic));
  PutU32(out, h.format_version);
  PutU32(out, static_cast<uint32_t>(kPreambleSize + fields.size() + kMacSize));
  out.insert(out.end(), fields.begin(), fields.end());
  return out;
}

Result<Header> ParseHeader(std::span<const uint8_t> hdr) {
  if (hdr.size() < kPreambleSize + kMacSize) return Malformed("shorter than its fixed part");
  Header h;
  h.format_version = GetU32(hdr.data() + 8);
  h.header_size = GetU32(hdr.data() + 12);
  if (h.header_size != hdr.size()) return Malformed("header size field disagrees");

  Cursor c{hdr.data() + kPreambleSize, hdr.size() - kPreambleSize - kMacSize};
  uint32_t seen_required = 0;
  int last_tag = -1;
  while (c.left > 0) {
    const uint8_t* p;
    if (!c.Take(6, &p)) return Malformed("field header runs past the end of the header");
    const uint16_t tag = GetU16(p);
    const uint32_t len = GetU32(p + 2);
    const uint8_t* val;
    if (!c.Take(len, &val)) {
      return Malformed("field " + TagName(tag) + " runs past the end of the header");
    }
    if (static_cast<int>(tag) <= last_tag) {
      return Malformed("field " + TagName(tag) + " is out of order or repeated");
    }
    last_tag = tag;
    const std::span<const uint8_t> value(val, len);
    const std::string str(reinterpret_cast<const char*>(val), len);
    auto need_len = [&](size_t want) -> Status {
      if (len != want) {
        return Malformed("field " + TagName(tag) + " has length " + std::to_string(len) +
                         ", expected " + std::to_string(want));
      }
      return Ok{};
    };
    int bit = -1;
    switch (tag) {
      case kTagChunkSize:
        MS_RETURN_IF_ERROR(need_len(4));
        h.chunk_size = GetU32(val);
        bit = 0;
        break;
      case kTagPlaintextSize:
        MS_RETURN_IF_ERROR(need_len(8));
        h.plaintext_size = GetU64(val);
        bit = 1;
        break;
      case kTagSalt:
        MS_RETURN_IF_ERROR(need_len(32));
        std::memcpy(h.salt.data(), val, 32);
        bit = 2;
        break;
      case kTagCreated:
        MS_RETURN_IF_ERROR(need_len(8));
        h.created_unix_ms = GetU64(val);
        bit = 3;
        break;
      case kTagKmsKeyId:
        h.kms_key_id = str;
        bit = 4;
        break;
      case kTagEncryptedDataKey:
        h.encrypted_data_key.assign(value.begin(), value.end());
        bit = 5;
        break;
      case kTagEncryptionContext: {
        MS_ASSIGN_OR_RETURN(h.encryption_context, ParseContext(value));
        bit = 6;
        break;
      }
      case kTagSha256:
        MS_RETURN_IF_ERROR(need_len(32));
        std::memcpy(h.sha256.data(), val, 32);
        bit = 7;
        break;
      case kTagSha384:
        MS_RETURN_IF_ERROR(need_len(48));
        std::memcpy(h.sha384.data(), val, 48);
        bit = 8;
        break;
      case kTagModelName:
        h.model.name = str;
        bit = 9;
        break;
      case kTagModelSource:
        h.model.source = str;
        bit = 10;
        break;
      case kTagFileName:
        h.model.file_name = str;
        bit = 11;
        break;
      default:
        if (tag < kFirstExtensionTag) return Malformed("unknown required field " + TagName(tag));
        break;  // optional extension: skipped
    }
    if (bit >= 0) seen_required |= 1u << bit;
  }
  if (seen_required != 0xfff) {
    for (int b = 0; b < 12; ++b) {
      if (!(seen_required & (1u << b))) {
        return Malformed("required field number " + std::to_string(b + 1) + " is missing");
      }
    }
  }
  MS_RETURN_IF_ERROR(ValidateForWrite(h));
  return h;
}

std::string ChunkName(uint64_t index, uint64_t count) {
  return "chunk " + std::to_string(index + 1) + " of " + std::to_string(count);
}

}  // namespace internal

Result<std::span<const uint8_t>> internal::ReadChecked(const ByteSource& src, uint64_t offset,
                                                       size_t len, uint8_t* scratch,
                                                       const std::string& what) {
  auto got = src.ReadAt(offset, len, scratch);
  if (!got.ok()) {
    if (got.error().reason == "changed-during-read") {
      return Fail(ErrorCode::kIntegrity, "changed-during-read",
                  what + ": the object changed while it was read (" + got.error().message + ")");
    }
    return got.take_error();
  }
  if (got->size() != len) {
    return Fail(ErrorCode::kIntegrity, "changed-during-read",
                what + ": the source returned " + std::to_string(got->size()) + " of " +
                    std::to_string(len) + " bytes");
  }
  return got;
}

Result<std::span<const uint8_t>> internal::ReadPrivate(const ByteSource& src, uint64_t offset,
                                                       size_t len, uint8_t* buf,
                                                       const std::string& what) {
  MS_ASSIGN_OR_RETURN(auto got, ReadChecked(src, offset, len, buf, what));
  if (len > 0 && got.data() != buf) std::memcpy(buf, got.data(), len);
  return std::span<const uint8_t>(buf, len);
}

Result<internal::RawHeader> internal::ReadRawHeader(const ByteSource& src) {
  using internal::kPreambleSize;
  const uint64_t size = src.size();
  const size_t magic_len = sizeof(internal::kMagic);
  if (size < magic_len) {
    return Fail(ErrorCode::kInvalidArgument, "not-a-container",
                "not a modelseal container (" + std::to_string(size) + " bytes, no magic)");
  }
  // The preamble, then the rest of the header after it: no byte is read twice.
  uint8_t pre[kPreambleSize];
  const size_t pre_len = static_cast<size_t>(std::min<uint64_t>(size, kPreambleSize));
  MS_ASSIGN_OR_RETURN(auto head, ReadPrivate(src, 0, pre_len, pre, "header"));
  if (std::memcmp(head.data(), internal::kMagic, magic_len) != 0) {
    return Fail(ErrorCode::kInvalidArgument, "not-a-container",
                "not a modelseal container (bad magic)");
  }
  if (head.size() < kPreambleSize) {
    return Fail(ErrorCode::kIntegrity, "truncated",
                "truncated inside the header (object is " + std::to_string(size) + " bytes)");
  }
  const uint32_t version = GetU32(head.data() + 8);
  if (version != kFormatVersion) {
    return Fail(ErrorCode::kUnsupported, "unsupported-version",
                "unsupported format version " + std::to_string(version) +
                    " (this build reads version " + std::to_string(kFormatVersion) + ")");
  }
  const uint32_t header_size = GetU32(head.data() + 12);
  if (header_size < kPreambleSize + internal::kMacSize || header_size > internal::kMaxHeaderSize) {
    return Fail(
        ErrorCode::kIntegrity, "malformed-header",
        "malformed header: header size " + std::to_string(header_size) + " is out of range");
  }
  if (header_size > size) {
    return Fail(ErrorCode::kIntegrity, "truncated",
                "truncated inside the header (object is " + std::to_string(size) +
                    " bytes, header needs " + std::to_string(header_size) + ")");
  }
  Bytes buf(header_size);
  std::memcpy(buf.data(), pre, kPreambleSize);
  MS_RETURN_IF_ERROR(ReadPrivate(src, kPreambleSize, header_size - kPreambleSize,
                                 buf.data() + kPreambleSize, "header"));
  MS_ASSIGN_OR_RETURN(Header h, internal::ParseHeader(buf));
  return internal::RawHeader{std::move(h), std::move(buf)};
}

Result<Header> ReadHeaderUnauthenticated(const ByteSource& src) {
  MS_ASSIGN_OR_RETURN(internal::RawHeader raw, internal::ReadRawHeader(src));
  return std::move(raw.header);
}

}  // namespace modelseal::sealed
