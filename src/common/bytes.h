// Small helpers for byte strings: hex, big-endian integers, UTF-8 validation.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace modelseal {

using Bytes = std::vector<uint8_t>;

std::string ToHex(std::span<const uint8_t> data);  // lower case
// Accepts upper or lower case; nullopt on odd length or a non-hex character.
std::optional<Bytes> FromHex(std::string_view hex);

inline void PutU16(Bytes& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
inline void PutU32(Bytes& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
inline void PutU64(Bytes& out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
inline uint16_t GetU16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t GetU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline uint64_t GetU64(const uint8_t* p) {
  return (uint64_t{GetU32(p)} << 32) | GetU32(p + 4);
}

bool IsValidUtf8(std::string_view s);

// Standard base64 with padding (RFC 4648 section 4).
std::string Base64Encode(std::span<const uint8_t> data);
// Strict: padded, no whitespace; nullopt on anything else.
std::optional<Bytes> Base64Decode(std::string_view text);
// Canonical padded base64 (RFC 4648): a multiple of 4 characters, '=' only as the
// last one or two. What Base64Decode (and the key service's secret decoder) accept.
bool IsBase64(std::string_view text);

}  // namespace modelseal
