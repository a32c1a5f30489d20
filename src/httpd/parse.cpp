// Strict RFC 9112 request heads and chunked bodies (see parse.h).
#include "httpd/parse.h"
#include "common/text.h"

#include <algorithm>
#include <cctype>
#include <ctime>

namespace modelseal::httpd::internal {

namespace {

bool IsDigit(unsigned char c) {
  return c >= '0' && c <= '9';
}

int HexValue(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Field value bytes: VCHAR, obs-text, SP, HTAB (RFC 9110 5.5).
bool IsFieldByte(unsigned char c) {
  return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

// Bytes of an origin-form path or query (RFC 3986 pchar / "/" / "?"), '%' checked apart.
bool IsTargetByte(unsigned char c) {
  if (std::isalnum(c)) return true;
  switch (c) {
    case '-':
    case '.':
    case '_':
    case '~':  // unreserved
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':  // sub-delims
    case ':':
    case '@':
    case '/':
    case '?':
    case '%':
      return true;
    default:
      return false;
  }
}

// Optional white space (RFC 9110 section 5.6.3): spaces and tabs.
std::string_view TrimOws(std::string_view s) {
  return TrimView(s, " \t");
}

// Splits a comma-separated field value into trimmed, lower-cased, non-empty items.
std::vector<std::string> ListItems(std::string_view v) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    if (comma == std::string_view::npos) comma = v.size();
    const std::string_view item = TrimOws(v.substr(start, comma - start));
    if (!item.empty()) out.push_back(AsciiLower(item));
    start = comma + 1;
  }
  return out;
}

// Checks a path or query: allowed bytes and well-formed %XX escapes.
bool ValidTargetPart(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (!IsTargetByte(c)) return false;
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      if (HexValue(static_cast<unsigned char>(s[i + 1])) < 0 ||
          HexValue(static_cast<unsigned char>(s[i + 2])) < 0) {
        return false;
      }
      i += 2;
    }
  }
  return true;
}

}  // namespace

bool IsTchar(unsigned char c) {
  if (std::isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

std::string Decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = HexValue(static_cast<unsigned char>(s[i + 1]));
      const int lo = HexValue(static_cast<unsigned char>(s[i + 2]));
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start < q.size()) {
    size_t amp = q.find('&', start);
    if (amp == std::string_view::npos) amp = q.size();
    const std::string_view kv = q.substr(start, amp - start);
    if (!kv.empty()) {
      const size_t eq = kv.find('=');
      out.emplace_back(Decode(kv.substr(0, eq), true),
                       eq == std::string_view::npos ? "" : Decode(kv.substr(eq + 1), true));
    }
    start = amp + 1;
  }
  return out;
}

// ---- HeadParser ----------------------------------------------------------------

void HeadParser::Reset() {
  pos_ = 0;
  started_ = false;
  have_request_line_ = false;
  leading_blank_lines_ = 0;
  head_ = Head{};
  error_ = ParseError{};
}

HeadParser::State HeadParser::Fail(int status, std::string message) {
  error_ = {status, std::move(message)};
  return State::kError;
}

HeadParser::State HeadParser::Feed(std::string_view in) {
  while (true) {
    const size_t lf = in.find('\n', pos_);
    const size_t end = lf == std::string_view::npos ? in.size() : lf;
    // Bare CR anywhere, or control bytes, are refused as soon as they are seen.
    for (size_t i = pos_; i < end; ++i) {
      if (in[i] == '\r' && i + 1 != end) return Fail(400, "bare CR in the request head");
      if (in[i] == '\0') return Fail(400, "NUL byte in the request head");
    }
    if (lf == std::string_view::npos) {
      if (in.size() - pos_ > 0) started_ = true;
      if (in.size() > max_bytes_) {
        return have_request_line_ ? Fail(431, "the request head is larger than " +
                                                  std::to_string(max_bytes_) + " bytes")
                                  : Fail(414, "the request line is longer than " +
                                                  std::to_string(max_bytes_) + " bytes");
      }
      return State::kIncomplete;
    }
    if (lf == pos_ || in[lf - 1] != '\r') return Fail(400, "bare LF in the request head");
    if (lf + 1 > max_bytes_) {
      return Fail(have_request_line_ ? 431 : 414,
                  "the request head is larger than " + std::to_string(max_bytes_) + " bytes");
    }
    const std::string_view line = in.substr(pos_, lf - 1 - pos_);
    pos_ = lf + 1;
    if (!have_request_line_ && line.empty()) {
      // RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request.
      if (++leading_blank_lines_ > 4) return Fail(400, "empty lines instead of a request");
      continue;
    }
    started_ = true;
    if (have_request_line_ && line.empty()) return Finish();
    if (const State s = Line(line); s != State::kIncomplete) return s;
  }
}

HeadParser::State HeadParser::Line(std::string_view line) {
  if (!have_request_line_) {
    have_request_line_ = true;
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
      return Fail(400, "the request line is not METHOD SP TARGET SP VERSION");
    }
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (method.empty() || !std::all_of(method.begin(), method.end(), [](char c) {
          return IsTchar(static_cast<unsigned char>(c));
        })) {
      return Fail(400, "invalid request method");
    }
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" ||
        !IsDigit(static_cast<unsigned char>(version[5])) || version[6] != '.' ||
        !IsDigit(static_cast<unsigned char>(version[7]))) {
      return Fail(400, "invalid HTTP version");
    }
    if (version[5] != '1') return Fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
    head_.version_minor = version[7] == '0' ? 0 : 1;
    head_.method = std::string(method);
    head_.target = std::string(target);
    std::string_view path_and_query = target;
    if (target == "*") {
      if (method != "OPTIONS") return Fail(400, "the target * is only for OPTIONS");
      head_.path = "*";
      return State::kIncomplete;
    }
    if (target.empty()) return Fail(400, "empty request target");
    if (target.front() != '/') {
      // absolute-form (RFC 9112 3.2.2): http(s)://authority[/path][?query]
      const std::string lower = AsciiLower(target.substr(0, std::min<size_t>(target.size(), 8)));
      size_t skip = lower.rfind("http://", 0) == 0 ? 7 : lower.rfind("https://", 0) == 0 ? 8 : 0;
      if (skip == 0) return Fail(400, "the request target is not origin-form or absolute-form");
      const size_t slash = target.find_first_of("/?", skip);
      const std::string_view authority =
          target.substr(skip, slash == std::string_view::npos ? target.npos : slash - skip);
      if (authority.empty() || !std::all_of(authority.begin(), authority.end(), [](char c) {
            const auto u = static_cast<unsigned char>(c);
            return IsTargetByte(u) || u == '[' || u == ']';
          })) {
        return Fail(400, "invalid authority in the request target");
      }
      path_and_query = slash == std::string_view::npos ? "/" : target.substr(slash);
      if (path_and_query.front() == '?') {
        head_.path = "/";
        const std::string_view q = path_and_query.substr(1);
        if (!ValidTargetPart(q)) return Fail(400, "invalid bytes in the request target");
        head_.raw_query = std::string(q);
        return State::kIncomplete;
      }
    }
    const size_t qm = path_and_query.find('?');
    const std::string_view path = path_and_query.substr(0, qm);
    const std::string_view query =
        qm == std::string_view::npos ? std::string_view() : path_and_query.substr(qm + 1);
    if (!ValidTargetPart(path) || path.find('?') != std::string_view::npos ||
        !ValidTargetPart(query)) {
      return Fail(400, "invalid bytes in the request target");
    }
    head_.path = std::string(path);
    head_.raw_query = std::string(query);
    return State::kIncomplete;
  }
  // A field line: name ":" OWS value OWS.
  if (line.front() == ' ' || line.front() == '\t') {
    return Fail(400, "obsolete line folding (a header line starting with whitespace)");
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return Fail(400, "a header line without a colon");
  const std::string_view name = line.substr(0, colon);
  if (name.empty()) return Fail(400, "empty header name");
  for (const char c : name) {
    if (c == ' ' || c == '\t') return Fail(400, "whitespace between a header name and its colon");
    if (!IsTchar(static_cast<unsigned char>(c))) return Fail(400, "invalid header name");
  }
  const std::string_view value = TrimOws(line.substr(colon + 1));
  for (const char c : value) {
    if (!IsFieldByte(static_cast<unsigned char>(c))) {
      return Fail(400, "control byte in the value of header " + std::string(name));
    }
  }
  if (head_.headers.size() >= max_headers_) {
    return Fail(431, "more than " + std::to_string(max_headers_) + " header fields");
  }
  head_.headers.push_back({AsciiLower(name), std::string(value)});
  return State::kIncomplete;
}

HeadParser::State HeadParser::Finish() {
  Head& h = head_;
  int hosts = 0, lengths = 0, encodings = 0;
  std::string length_value, encoding_value;
  std::vector<std::string> connection;
  for (const auto& [name, value] : h.headers) {
    if (name == "host") ++hosts;
    if (name == "content-length") {
      ++lengths;
      length_value = value;
    }
    if (name == "transfer-encoding") {
      ++encodings;
      encoding_value = value;
    }
    if (name == "connection") {
      for (auto& item : ListItems(value)) connection.push_back(std::move(item));
    }
    if (name == "expect" && h.version_minor == 1) {
      if (AsciiLower(value) != "100-continue")
        return Fail(417, "unsupported expectation: " + value);
      h.expect_continue = true;
    }
  }
  if (h.version_minor == 1 && hosts != 1) {
    return Fail(
        400, hosts == 0 ? "an HTTP/1.1 request needs a Host header" : "more than one Host header");
  }
  if (hosts > 1) return Fail(400, "more than one Host header");
  if (lengths > 1) return Fail(400, "more than one Content-Length header");
  if (encodings > 0) {
    if (h.version_minor == 0) return Fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (lengths > 0) return Fail(400, "both Content-Length and Transfer-Encoding");
    if (encodings > 1) return Fail(400, "more than one Transfer-Encoding header");
    if (AsciiLower(encoding_value) != "chunked") {
      return Fail(501,
                  "transfer coding '" + encoding_value + "' is not supported; only 'chunked' is");
    }
    h.body = BodyKind::kChunked;
  } else if (lengths == 1) {
    if (length_value.empty() || length_value.size() > 19 ||
        !std::all_of(length_value.begin(), length_value.end(),
                     [](char c) { return IsDigit(static_cast<unsigned char>(c)); })) {
      return Fail(400, "Content-Length must be decimal digits only, got '" +
                           length_value.substr(0, 32) + "'");
    }
    h.content_length = std::stoull(length_value);
    h.body = h.content_length > 0 ? BodyKind::kLength : BodyKind::kNone;
  } else if (h.method == "POST" || h.method == "PUT" || h.method == "PATCH") {
    return Fail(411, h.method + " needs a Content-Length or Transfer-Encoding: chunked");
  }
  const auto has = [&](const char* token) {
    return std::find(connection.begin(), connection.end(), token) != connection.end();
  };
  h.keep_alive = h.version_minor == 1 ? !has("close") : has("keep-alive") && !has("close");
  return State::kDone;
}

// ---- ChunkDecoder --------------------------------------------------------------

ChunkDecoder::State ChunkDecoder::Fail(int status, std::string message) {
  error_ = {status, std::move(message)};
  return State::kError;
}

ChunkDecoder::State ChunkDecoder::Feed(std::string_view in, size_t* used,
                                       const std::function<bool(std::string_view)>& sink) {
  size_t i = 0;
  const auto done = [&](State s) {
    *used = i;
    return s;
  };
  constexpr size_t kMaxSizeLine = 4096;
  while (i < in.size()) {
    const auto c = static_cast<unsigned char>(in[i]);
    switch (step_) {
      case Step::kSize:
        if (HexValue(c) >= 0) {
          if (chunk_ > (uint64_t{1} << 56)) return done(Fail(413, "chunk size too large"));
          chunk_ = chunk_ * 16 + static_cast<uint64_t>(HexValue(c));
          ++digits_;
          ++line_len_;
          ++i;
          break;
        }
        if (digits_ == 0) return done(Fail(400, "invalid chunk size"));
        if (c == ';' || c == ' ' || c == '\t') {
          step_ = Step::kExt;
          break;
        }
        if (c == '\r') {
          step_ = Step::kSizeLf;
          ++i;
          break;
        }
        return done(Fail(400, "invalid chunk size"));
      case Step::kExt:  // chunk extensions: ignored, but only printable bytes
        if (c == '\r' && !in_quote_) {
          step_ = Step::kSizeLf;
          ++i;
          break;
        }
        if (!IsFieldByte(c)) return done(Fail(400, "invalid chunk extension"));
        if (in_quote_) {
          if (quote_escape_) {
            quote_escape_ = false;
          } else if (c == '\\') {
            quote_escape_ = true;
          } else if (c == '"') {
            in_quote_ = false;
          }
        } else if (c == '"') {
          in_quote_ = true;
        }
        if (++line_len_ > kMaxSizeLine) return done(Fail(400, "chunk extension too long"));
        ++i;
        break;
      case Step::kSizeLf:
        if (c != '\n') return done(Fail(400, "bare CR in a chunk size line"));
        ++i;
        if (chunk_ > max_body_ - total_) {
          return done(Fail(413, "request body is larger than the limit of " +
                                    std::to_string(max_body_) + " bytes"));
        }
        if (chunk_ == 0) {
          step_ = Step::kTrailer;
        } else {
          left_ = chunk_;
          step_ = Step::kData;
        }
        digits_ = line_len_ = 0;
        break;
      case Step::kData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left_, in.size() - i));
        if (!sink(in.substr(i, n))) return done(Fail(500, "the request body could not be stored"));
        i += n;
        left_ -= n;
        total_ += n;
        if (left_ == 0) step_ = Step::kDataCr;
        break;
      }
      case Step::kDataCr:
        if (c != '\r') return done(Fail(400, "chunk data longer than its size"));
        step_ = Step::kDataLf;
        ++i;
        break;
      case Step::kDataLf:
        if (c != '\n') return done(Fail(400, "bare CR after chunk data"));
        step_ = Step::kSize;
        chunk_ = 0;
        ++i;
        break;
      case Step::kTrailer:
        if (c == '\r') {
          step_ = Step::kTrailerLf;
          ++i;
          break;
        }
        if (c == '\n') return done(Fail(400, "bare LF in the trailer"));
        if (trailer_line_.empty() && (c == ' ' || c == '\t')) {
          return done(Fail(400, "obsolete line folding in the trailer"));
        }
        if (c != '\t' && (c < 0x20 || c == 0x7f))
          return done(Fail(400, "control byte in the trailer"));
        if (++trailer_bytes_ > max_trailer_) return done(Fail(431, "the trailer is too large"));
        trailer_line_.push_back(static_cast<char>(c));
        ++i;
        break;
      case Step::kTrailerLf: {
        if (c != '\n') return done(Fail(400, "bare CR in the trailer"));
        ++i;
        if (trailer_line_.empty()) {
          step_ = Step::kDone;
          return done(State::kDone);
        }
        const size_t colon = trailer_line_.find(':');
        if (colon == 0 || colon == std::string::npos ||
            !std::all_of(trailer_line_.begin(), trailer_line_.begin() + static_cast<long>(colon),
                         [](char ch) { return IsTchar(static_cast<unsigned char>(ch)); })) {
          return done(Fail(400, "invalid trailer field"));
        }
        trailer_line_.clear();  // trailer fields are not used
        step_ = Step::kTrailer;
        break;
      }
      case Step::kDone:
        return done(State::kDone);
    }
  }
  return done(step_ == Step::kDone ? State::kDone : State::kMore);
}

// ---- responses -----------------------------------------------------------------

const char* Reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Status";
  }
}

std::string ResponseHead(int status, const std::string& content_type, const HeaderList& headers,
                         int64_t content_length, bool chunked, bool keep_alive, int version_minor) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  h += "Date: ";
  h += date;
  h += "\r\n";
  if (!content_type.empty()) h += "Content-Type: " + content_type + "\r\n";
  for (const auto& [name, value] : headers) h += name + ": " + value + "\r\n";
  if (chunked) {
    h += "Transfer-Encoding: chunked\r\n";
  } else if (content_length >= 0) {
    h += "Content-Length: " + std::to_string(content_length) + "\r\n";
  }
  if (!keep_alive) {
    h += "Connection: close\r\n";
  } else if (version_minor == 0) {
    h += "Connection: keep-alive\r\n";
  }
  h += "\r\n";
  return h;
}

}  // namespace modelseal::httpd::internal
