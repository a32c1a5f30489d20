#include "aws/xml.h"

#include <cstdint>

namespace modelseal::aws::xml {
namespace {

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x110000) {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Position just past the tag name if `doc[pos]` starts "<name" followed by a
// delimiter, else npos.
size_t MatchOpen(std::string_view doc, size_t pos, std::string_view name) {
  if (doc.compare(pos + 1, name.size(), name) != 0) return std::string_view::npos;
  const size_t end = pos + 1 + name.size();
  if (end >= doc.size()) return std::string_view::npos;
  const char c = doc[end];
  if (c == '>' || c == '/' || c == ' ' || c == '\t' || c == '\n' || c == '\r') return end;
  return std::string_view::npos;
}

}  // namespace

std::vector<std::string_view> FindAll(std::string_view doc, std::string_view name) {
  std::vector<std::string_view> out;
  const std::string close = "</" + std::string(name) + ">";
  size_t pos = 0;
  while ((pos = doc.find('<', pos)) != std::string_view::npos) {
    const size_t after = MatchOpen(doc, pos, name);
    if (after == std::string_view::npos) {
      ++pos;
      continue;
    }
    const size_t gt = doc.find('>', after);
    if (gt == std::string_view::npos) break;
    if (doc[gt - 1] == '/') {  // <name/>
      out.emplace_back();
      pos = gt + 1;
      continue;
    }
    const size_t end = doc.find(close, gt + 1);
    if (end == std::string_view::npos) break;
    out.push_back(doc.substr(gt + 1, end - gt - 1));
    pos = end + close.size();
  }
  return out;
}

std::optional<std::string_view> FindFirst(std::string_view doc, std::string_view name) {
  auto all = FindAll(doc, name);
  if (all.empty()) return std::nullopt;
  return all.front();
}

std::optional<std::string> Text(std::string_view doc, std::string_view name) {
  auto raw = FindFirst(doc, name);
  if (!raw) return std::nullopt;
  return Decode(*raw);
}

std::string Decode(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '&') {
      out.push_back(raw[i]);
      continue;
    }
    // An entity ends within 12 characters ("&#x10FFFF;", "&quot;"): look no further,
    // so that a run of '&' without a ';' stays linear.
    const size_t near = raw.substr(i, 13).find(';');
    if (near == std::string_view::npos) {
      out.push_back('&');
      continue;
    }
    const size_t semi = i + near;
    const std::string_view ent = raw.substr(i + 1, semi - i - 1);
    if (ent == "amp")
      out.push_back('&');
    else if (ent == "lt")
      out.push_back('<');
    else if (ent == "gt")
      out.push_back('>');
    else if (ent == "quot")
      out.push_back('"');
    else if (ent == "apos")
      out.push_back('\'');
    else if (!ent.empty() && ent[0] == '#') {
      uint32_t cp = 0;
      bool hex = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X');
      bool ok = ent.size() > (hex ? 2u : 1u);
      for (size_t k = hex ? 2 : 1; k < ent.size() && ok; ++k) {
        const char c = ent[k];
        int d = -1;
        if (c >= '0' && c <= '9')
          d = c - '0';
        else if (hex && c >= 'a' && c <= 'f')
          d = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F')
          d = c - 'A' + 10;
        if (d < 0 || cp > 0x10FFFF)
          ok = false;
        else
          cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
      }
      if (!ok) {
        out.push_back('&');
        continue;
      }
      AppendUtf8(out, cp);
    } else {
      out.push_back('&');
      continue;
    }
    i = semi;
  }
  return out;
}

std::string Escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\r':
        out += "&#13;";
        break;
      case '\n':
        out += "&#10;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace modelseal::aws::xml
