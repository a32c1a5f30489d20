// UTF-8 repair and stop-string handling for streamed pieces.
#include "engine/internal.h"

namespace modelseal::engine {

namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the sequence a lead byte starts, 0 when it cannot start one.
size_t SequenceLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

}  // namespace

std::string SanitizeUtf8(std::string_view s, size_t* complete_len) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<uint8_t>(s[i]);
    const size_t len = SequenceLength(lead);
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    size_t have = 1;
    while (have < len && i + have < s.size() &&
           (static_cast<uint8_t>(s[i + have]) & 0xC0) == 0x80) {
      ++have;
    }
    if (have == len) {
      out.append(s.substr(i, len));
      i += len;
    } else if (i + have == s.size() && complete_len) {
      break;  // an unfinished sequence at the end: wait for more
    } else {
      out += kReplacement;
      i += have;
    }
  }
  if (complete_len) *complete_len = i;
  return out;
}

std::string PieceFilter::Push(std::string_view text, bool* stopped) {
  pending_.append(text);
  size_t first = std::string::npos;
  for (const auto& stop : stop_) {
    if (stop.empty()) continue;
    first = std::min(first, pending_.find(stop));
  }
  if (first != std::string::npos) {
    *stopped = true;
    std::string out = SanitizeUtf8(std::string_view(pending_).substr(0, first));
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that may still grow into a stop string.
  size_t hold = 0;
  for (const auto& stop : stop_) {
    for (size_t k = std::min(stop.size() - (stop.empty() ? 0 : 1), pending_.size()); k > hold;
         --k) {
      if (pending_.compare(pending_.size() - k, k, stop, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  size_t complete = 0;
  std::string out =
      SanitizeUtf8(std::string_view(pending_).substr(0, pending_.size() - hold), &complete);
  pending_.erase(0, complete);
  return out;
}

std::string PieceFilter::Flush() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace modelseal::engine
