// HTTP transport: the one door through which modelseal talks to AWS, S3-compatible
// servers, IMDS and Hugging Face. The interface exists so tests and callers can
// wrap it (fault injection, recording); the implementation is libcurl.
//
// Ownership: a request's body span and callbacks are borrowed for the duration of
// Send. Thread-safety: one transport may be used from many threads at once; it
// keeps a pool of connections (curl handles) and reuses them (keep-alive).
// TLS peers are verified against the system's CAs, or only against the PEM file named
// by AWS_CA_BUNDLE when it is set (as the AWS SDKs do).
// Failures (module "http"):
//   unreachable  (kUnavailable) - connect/resolve failed: nothing was sent;
//   connection   (kUnavailable) - the connection broke or timed out mid-exchange;
//   bad-url      (kInvalidArgument);
//   tls-verify   (kPermissionDenied) - the peer's certificate is not trusted, or the
//                                      CA bundle cannot be read;
//   a sink/callback error is returned unchanged (the transfer is aborted).
// A response with any HTTP status is a success of Send; callers map statuses.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/error.h"
#include "common/secret.h"

namespace modelseal::net {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // absolute, already percent-encoded
  HeaderList headers;
  // One header whose value is a secret (e.g. "Authorization" with "Bearer <token>"),
  // kept out of std::string: the transport builds the header line in a
  // SecretBuffer and wipes the copy it hands to curl after the exchange. (curl's
  // own request buffer is beyond our reach.) Borrowed for the duration of Send.
  std::string secret_header_name;
  const SecretBuffer* secret_header_value = nullptr;
  std::span<const uint8_t> body;  // borrowed; sent with Content-Length
  // Called with each piece of a 2xx response body as it arrives. When unset, the
  // body is collected into HttpResponse::body. Non-2xx bodies are always collected
  // (they carry the error document) and never passed here.
  std::function<Status(std::span<const uint8_t>)> on_body;
  // With on_body: called once with the status and headers of a 2xx response
  // before its first body byte; an error aborts the transfer (e.g. a server that
  // ignored Range).
  std::function<Status(long status, const HeaderList& headers)> on_response;
  bool follow_redirects = false;
  std::chrono::milliseconds connect_timeout{10000};
  // Abort when fewer than 1 byte moved for this long (a stalled peer).
  std::chrono::milliseconds stall_timeout{30000};
  // Whole-exchange limit; 0 means none (large downloads rely on stall_timeout).
  std::chrono::milliseconds total_timeout{0};
};

struct HttpResponse {
  long status = 0;
  HeaderList headers;  // names lower-cased, in arrival order (last response only)
  Bytes body;
  std::string effective_url;

  // First header with this (lower-case) name.
  std::optional<std::string> Header(std::string_view lower_name) const;
  std::string BodyText() const { return std::string(body.begin(), body.end()); }
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

// The libcurl transport. Safe to share; create one per process or per client.
std::shared_ptr<HttpTransport> NewCurlTransport();

// The process-wide default transport (created on first use).
std::shared_ptr<HttpTransport> DefaultTransport();

// ---- URL helpers -----------------------------------------------------------

// Percent-encodes every byte except A-Z a-z 0-9 - _ . ~ (and '/' when keep_slash).
std::string UriEncode(std::string_view s, bool keep_slash = false);
// Decodes %XX sequences ('+' is left alone). Malformed escapes are kept verbatim.
std::string UriDecode(std::string_view s);

struct Url {
  std::string scheme;  // "http" / "https"
  std::string host;    // without port
  int port = 0;        // 0 when not given
  std::string path;    // percent-encoded, starts with '/'
  std::string query;   // without '?', may be empty

  // host or host:port when a non-default port was given (the HTTP Host header).
  std::string Authority() const;
  std::string Origin() const { return scheme + "://" + Authority(); }
};
Result<Url> ParseUrl(std::string_view url);

}  // namespace modelseal::net
