// ASCII text helpers for protocol text (HTTP and AWS names, hex, config keys):
// locale-independent, bytes above 0x7F left as they are.
#pragma once

#include <string>
#include <string_view>

namespace modelseal {

// "Content-Type" -> "content-type".
std::string AsciiLower(std::string_view s);
// 'A'..'Z' -> 'a'..'z'; every other byte as it is.
constexpr char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}
constexpr char AsciiUpper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
}

// `s` without leading and trailing characters from `chars` (default: space, tab,
// CR, LF, vertical tab, form feed, as isspace in the C locale).
inline constexpr std::string_view kAsciiSpace = " \t\r\n\v\f";
std::string_view TrimView(std::string_view s, std::string_view chars = kAsciiSpace);
std::string Trim(std::string_view s, std::string_view chars = kAsciiSpace);

// A byte count for people, in binary units: "512 B", "1.5 KiB", "8.5 GiB" (one
// decimal from KiB up; TiB is the largest unit).
std::string HumanBytes(double bytes);

}  // namespace modelseal
