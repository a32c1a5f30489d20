// libcurl implementation of HttpTransport, plus the URL helpers.
#include <curl/curl.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/text.h"
#include "net/http.h"

namespace modelseal::net {
namespace {

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using CurlPtr = std::unique_ptr<CURL, CurlFree>;
// Header lines may hold a secret (HttpRequest::secret_header_*): wiped before
// they are freed.
struct SlistFree {
  void operator()(curl_slist* l) const {
    for (curl_slist* p = l; p != nullptr; p = p->next)
      OPENSSL_cleanse(p->data, std::strlen(p->data));
    curl_slist_free_all(l);
  }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistFree>;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Translates a curl failure into the transport's error space.
Error CurlError(CURLcode rc, const std::string& method, const std::string& url,
                const char* detail) {
  std::string msg = method + " " + url + ": " + curl_easy_strerror(rc);
  if (detail != nullptr && detail[0] != '\0') msg += std::string(" (") + detail + ")";
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return MakeError(ErrorCode::kUnavailable, "http", "unreachable", msg);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return MakeError(ErrorCode::kInvalidArgument, "http", "bad-url", msg);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return MakeError(ErrorCode::kPermissionDenied, "http", "tls-verify", msg);
    default:
      return MakeError(ErrorCode::kUnavailable, "http", "connection", msg);
  }
}

struct Exchange {
  const HttpRequest* req = nullptr;
  HttpResponse* resp = nullptr;
  CURL* curl = nullptr;
  size_t sent = 0;
  long status = -1;  // status of the response whose body is arriving
  bool response_checked = false;
  std::optional<Error> callback_error;
};

size_t OnRead(char* buf, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t want = size * n;
  const size_t left = ex->req->body.size() - ex->sent;
  const size_t k = std::min(want, left);
  if (k > 0) std::memcpy(buf, ex->req->body.data() + ex->sent, k);
  ex->sent += k;
  return k;
}

// curl rewinds the body when it must resend (redirect, auth, reused dead connection).
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* ex = static_cast<Exchange*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > ex->req->body.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  ex->sent = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t OnHeader(char* buf, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::string_view line(buf, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {  // a new response (after 100-continue or a redirect)
    ex->resp->headers.clear();
    ex->status = -1;
    ex->resp->body.clear();
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  const std::string name = AsciiLower(line.substr(0, colon));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  ex->resp->headers.emplace_back(std::move(name), std::string(value));
  return size * n;
}

size_t OnWrite(char* buf, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t len = size * n;
  if (ex->status < 0) curl_easy_getinfo(ex->curl, CURLINFO_RESPONSE_CODE, &ex->status);
  if (ex->req->on_body && ex->status >= 200 && ex->status < 300) {
    if (!ex->response_checked && ex->req->on_response) {
      ex->response_checked = true;
      Status st = ex->req->on_response(ex->status, ex->resp->headers);
      if (!st.ok()) {
        ex->callback_error = st.take_error();
        return 0;
      }
    }
    Status s = ex->req->on_body({reinterpret_cast<const uint8_t*>(buf), len});
    if (!s.ok()) {
      ex->callback_error = s.take_error();
      return 0;  // aborts the transfer
    }
    return len;
  }
  ex->resp->body.insert(ex->resp->body.end(), reinterpret_cast<uint8_t*>(buf),
                        reinterpret_cast<uint8_t*>(buf) + len);
  return len;
}

class CurlTransport final : public HttpTransport {
 public:
  Result<HttpResponse> Send(const HttpRequest& req) override {
    CurlPtr curl = Acquire();
    if (!curl) return MakeError(ErrorCode::kInternal, "http", "curl-init", "curl_easy_init failed");
    HttpResponse resp;
    Exchange ex;
    ex.req = &req;
    ex.resp = &resp;
    ex.curl = curl.get();
    char errbuf[CURL_ERROR_SIZE] = {0};
    CURL* c = curl.get();
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &ex);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ex);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
    if (req.total_timeout.count() > 0) {
      curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.total_timeout.count()));
    }
    const long stall_s = std::max<long>(1, static_cast<long>(req.stall_timeout.count() / 1000));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_s);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, req.follow_redirects ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);   // fewer, larger body callbacks
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, nullptr);  // bytes exactly as stored
    // Like the AWS SDKs: AWS_CA_BUNDLE names a PEM file of the CAs to trust instead of
    // the system's (a private CA, e.g. a key service with a self-signed certificate).
    if (const char* bundle = std::getenv("AWS_CA_BUNDLE"); bundle != nullptr && *bundle != '\0') {
      curl_easy_setopt(c, CURLOPT_CAINFO, bundle);
      curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);
    }

    const bool has_body = !req.body.empty() || req.method == "PUT" || req.method == "POST";
    if (req.method == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
      curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      curl_easy_setopt(c, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(c, CURLOPT_READDATA, &ex);
      curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, OnSeek);
      curl_easy_setopt(c, CURLOPT_SEEKDATA, &ex);
      if (req.method != "PUT") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    } else if (req.method != "GET") {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }

    curl_slist* raw = nullptr;
    bool has_type = false;
    for (const auto& [name, value] : req.headers) {
      if (strcasecmp(name.c_str(), "content-type") == 0) has_type = true;
      const std::string line = value.empty() ? name + ";" : name + ": " + value;
      raw = curl_slist_append(raw, line.c_str());
    }
    if (req.secret_header_value != nullptr && !req.secret_header_name.empty()) {
      const std::string& name = req.secret_header_name;
      const SecretBuffer& value = *req.secret_header_value;
      SecretBuffer line(name.size() + 2 + value.size() + 1);  // "Name: value\0"
      std::memcpy(line.data(), name.data(), name.size());
      std::memcpy(line.data() + name.size(), ": ", 2);
      if (!value.empty()) std::memcpy(line.data() + name.size() + 2, value.data(), value.size());
      raw = curl_slist_append(raw, reinterpret_cast<const char*>(line.data()));
    }
    raw = curl_slist_append(raw, "Expect:");  // no 100-continue round trip
    if (!has_type) raw = curl_slist_append(raw, "Content-Type:");
    SlistPtr headers(raw);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());

    const CURLcode rc = curl_easy_perform(c);
    if (ex.callback_error) return std::move(*ex.callback_error);
    if (rc != CURLE_OK) return CurlError(rc, req.method, req.url, errbuf);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
    char* eff = nullptr;
    if (curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff != nullptr) {
      resp.effective_url = eff;
    }
    // Sanity: a body shorter than its Content-Length would have failed in curl.
    Release(std::move(curl));
    return resp;
  }

 private:
  CurlPtr Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!pool_.empty()) {
        CurlPtr c = std::move(pool_.back());
        pool_.pop_back();
        return c;
      }
    }
    GlobalInit();
    return CurlPtr(curl_easy_init());
  }
  void Release(CurlPtr c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (pool_.size() < 32) pool_.push_back(std::move(c));
  }

  std::mutex mu_;
  std::vector<CurlPtr> pool_;
};

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view lower_name) const {
  for (const auto& [n, v] : headers) {
    if (n == lower_name) return v;
  }
  return std::nullopt;
}

std::shared_ptr<HttpTransport> NewCurlTransport() {
  GlobalInit();
  return std::make_shared<CurlTransport>();
}

std::shared_ptr<HttpTransport> DefaultTransport() {
  static std::shared_ptr<HttpTransport> t = NewCurlTransport();
  return t;
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UriDecode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string Url::Authority() const {
  const bool default_port =
      port == 0 || (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? h : h + ":" + std::to_string(port);
}

Result<Url> ParseUrl(std::string_view s) {
  auto bad = [&](const char* why) {
    return MakeError(ErrorCode::kInvalidArgument, "http", "bad-url",
                     "malformed URL '" + std::string(s) + "': " + why);
  };
  Url u;
  const size_t sep = s.find("://");
  if (sep == std::string_view::npos) return bad("no scheme");
  u.scheme = AsciiLower(s.substr(0, sep));
  if (u.scheme != "http" && u.scheme != "https") return bad("scheme must be http or https");
  std::string_view rest = s.substr(sep + 3);
  const size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return bad("user info is not allowed");
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("junk after IPv6 address");
      port = authority.substr(close + 2);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return bad("no host");
  u.host = std::string(host);
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return bad("port is not a number");
      p = p * 10 + (c - '0');
      if (p > 65535) return bad("port out of range");
    }
    u.port = p;
  }
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos)
    rest = rest.substr(0, hash);
  const size_t q = rest.find('?');
  u.path = std::string(rest.substr(0, q));
  if (q != std::string_view::npos) u.query = std::string(rest.substr(q + 1));
  if (u.path.empty()) u.path = "/";
  return u;
}

}  // namespace modelseal::net
