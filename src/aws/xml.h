// A deliberately small reader for the XML that S3 returns (flat, well-known
// element names, no namespaces of interest, no DTDs). It finds elements by name
// and decodes the five predefined entities and numeric character references.
// It is not a validating parser; callers treat a missing element as malformed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelseal::aws::xml {

// The inner text (raw, undecoded) of every top-level-in-scan occurrence of
// <name>...</name> (or <name attr..>...</name>) in `doc`, in document order.
// Self-closing <name/> yields an empty string. Nested same-name elements are not
// supported (S3 documents have none).
std::vector<std::string_view> FindAll(std::string_view doc, std::string_view name);

// The first occurrence's inner text, raw.
std::optional<std::string_view> FindFirst(std::string_view doc, std::string_view name);

// The first occurrence's text with entities decoded.
std::optional<std::string> Text(std::string_view doc, std::string_view name);

std::string Decode(std::string_view raw);
std::string Escape(std::string_view text);

}  // namespace modelseal::aws::xml
