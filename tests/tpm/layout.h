// Matching a TPM command or response against its layout written by hand.
#pragma once

#include <cctype>
#include <cstdint>
#include <map>
#include <span>
#include <sstream>
#include <string>

#include "common/bytes.h"

namespace modelseal::testing {

// Matches `bytes` against `pattern`, space-separated tokens, each one of
//   hex digits  exactly those bytes
//   *N          any N bytes (random nonces, encrypted parameters, HMACs)
//   %size       four bytes holding the length of `bytes` (the size field)
//   $name       four bytes: bound to `name` at its first use, equal to it later
//   ...         whatever remains (last token only)
// Returns "" on a match, else what differs and where.
inline std::string MatchLayout(std::span<const uint8_t> bytes, const std::string& pattern,
                               std::map<std::string, uint32_t>& vars) {
  std::istringstream in(pattern);
  std::string tok;
  size_t at = 0;
  auto need = [&](size_t n) { return bytes.size() - at >= n; };
  while (in >> tok) {
    if (tok == "...") return "";
    if (tok[0] == '*') {
      const size_t n = std::stoul(tok.substr(1));
      if (!need(n)) return "too short for " + tok + " at offset " + std::to_string(at);
      at += n;
    } else if (tok == "%size") {
      if (!need(4)) return "too short for the size at offset " + std::to_string(at);
      if (GetU32(bytes.data() + at) != bytes.size()) {
        return "size field " + std::to_string(GetU32(bytes.data() + at)) + " but length " +
               std::to_string(bytes.size());
      }
      at += 4;
    } else if (tok[0] == '$') {
      if (!need(4)) return "too short for " + tok + " at offset " + std::to_string(at);
      const uint32_t v = GetU32(bytes.data() + at);
      auto [it, inserted] = vars.emplace(tok.substr(1), v);
      if (!inserted && it->second != v) {
        return tok + " is " + ToHex(bytes.subspan(at, 4)) + " at offset " + std::to_string(at) +
               ", was " + std::to_string(it->second);
      }
      at += 4;
    } else {
      auto want = FromHex(tok);
      if (!want) return "bad pattern token " + tok;
      if (!need(want->size())) return "too short for " + tok + " at offset " + std::to_string(at);
      const auto got = bytes.subspan(at, want->size());
      if (!std::equal(got.begin(), got.end(), want->begin())) {
        return "expected " + tok + " at offset " + std::to_string(at) + ", got " + ToHex(got);
      }
      at += want->size();
    }
  }
  if (at != bytes.size()) {
    return std::to_string(bytes.size() - at) + " bytes beyond the layout at offset " +
           std::to_string(at);
  }
  return "";
}

}  // namespace modelseal::testing
