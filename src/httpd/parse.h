// The request parser of httpd: strict RFC 9112 heads and chunked bodies, fed
// incrementally (each byte is examined once however slowly it arrives). Internal to
// httpd; tests include it directly.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "httpd/httpd.h"

namespace modelseal::httpd::internal {

// A refusal: the status to answer and why (the connection is closed after it).
struct ParseError {
  int status = 400;
  std::string message;
};

enum class BodyKind { kNone, kLength, kChunked };

struct Head {
  std::string method, target, path, raw_query;
  int version_minor = 1;
  HeaderList headers;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;
  bool expect_continue = false;
};

// Parses one request head from the front of a buffer that only grows at its end.
class HeadParser {
 public:
  HeadParser(size_t max_head_bytes, size_t max_headers)
      : max_bytes_(max_head_bytes), max_headers_(max_headers) {}

  enum class State { kIncomplete, kDone, kError };
  // Examines the bytes of `in` not yet seen. kDone: *head is filled and consumed()
  // bytes of `in` are the head. kError: error() says why.
  State Feed(std::string_view in);
  size_t consumed() const { return pos_; }
  // True once any byte of this request arrived (blank lines before it excluded).
  bool started() const { return started_; }
  const ParseError& error() const { return error_; }
  Head& head() { return head_; }
  void Reset();

 private:
  State Fail(int status, std::string message);
  State Line(std::string_view line);  // one complete line without CRLF
  State Finish();

  size_t max_bytes_, max_headers_;
  size_t pos_ = 0;  // bytes examined and accepted (whole lines)
  bool started_ = false;
  bool have_request_line_ = false;
  int leading_blank_lines_ = 0;
  Head head_;
  ParseError error_;
};

// Decodes a chunked body. Feed returns how many bytes of `in` it used; data goes to
// `sink` (which may fail: its error is returned as a 500-free refusal by the caller).
class ChunkDecoder {
 public:
  explicit ChunkDecoder(uint64_t max_body, size_t max_trailer_bytes)
      : max_body_(max_body), max_trailer_(max_trailer_bytes) {}
  enum class State { kMore, kDone, kError };
  State Feed(std::string_view in, size_t* used, const std::function<bool(std::string_view)>& sink);
  const ParseError& error() const { return error_; }
  uint64_t total() const { return total_; }

 private:
  State Fail(int status, std::string message);
  enum class Step { kSize, kExt, kSizeLf, kData, kDataCr, kDataLf, kTrailer, kTrailerLf, kDone };
  Step step_ = Step::kSize;
  uint64_t max_body_;
  size_t max_trailer_;
  uint64_t chunk_ = 0, left_ = 0, total_ = 0;
  size_t digits_ = 0, line_len_ = 0, trailer_bytes_ = 0;
  bool in_quote_ = false, quote_escape_ = false;
  std::string trailer_line_;
  ParseError error_;
};

// RFC 9110 token character.
bool IsTchar(unsigned char c);
// Percent-decodes `s`; `plus_is_space` for query strings. Malformed escapes (already
// refused by the parser) are kept verbatim.
std::string Decode(std::string_view s, bool plus_is_space);
// "a=1&b=%20" -> decoded pairs.
std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view q);
// Reason phrase for a status ("Bad Request").
const char* Reason(int status);
// The head of a response: status line, Date, the given headers, framing, Connection.
// content_length < 0: none; chunked: Transfer-Encoding: chunked.
std::string ResponseHead(int status, const std::string& content_type, const HeaderList& headers,
                         int64_t content_length, bool chunked, bool keep_alive, int version_minor);

}  // namespace modelseal::httpd::internal
