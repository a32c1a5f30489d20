#include "aws/sigv4.h"
#include "common/text.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <ctime>
#include <map>

#include "common/bytes.h"

namespace modelseal::aws {
namespace {

constexpr size_t kKeySize = 32;  // HMAC-SHA256

// HMAC-SHA256 of `msg` under `key`, written to `out` (32 bytes).
void HmacInto(std::span<const uint8_t> key, std::string_view msg, uint8_t* out) {
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), out, &len);
}

bool IsJsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// value.trim().replace(/\s+/g, " ")
std::string CanonicalHeaderValue(std::string_view v) {
  size_t b = 0, e = v.size();
  while (b < e && IsJsSpace(v[b])) ++b;
  while (e > b && IsJsSpace(v[e - 1])) --e;
  std::string out;
  bool in_space = false;
  for (size_t i = b; i < e; ++i) {
    if (IsJsSpace(v[i])) {
      in_space = true;
      continue;
    }
    if (in_space) out.push_back(' ');
    in_space = false;
    out.push_back(v[i]);
  }
  return out;
}

bool IsUnsignable(const std::string& lname) {
  static const char* kNever[] = {
      "authorization", "cache-control",     "connection", "expect",     "from",
      "keep-alive",    "max-forwards",      "pragma",     "referer",    "te",
      "trailer",       "transfer-encoding", "upgrade",    "user-agent", "x-amzn-trace-id"};
  for (const char* n : kNever) {
    if (lname == n) return true;
  }
  return lname.starts_with("proxy-") || lname.starts_with("sec-");
}

std::string CanonicalPath(const std::string& path, bool double_encode) {
  if (!double_encode) return path;
  std::vector<std::string> segs;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string seg = path.substr(start, slash - start);
    if (seg.empty() || seg == ".") {
      // skipped
    } else if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else {
      segs.push_back(seg);
    }
    start = slash + 1;
  }
  std::string norm = path.starts_with("/") ? "/" : "";
  for (size_t i = 0; i < segs.size(); ++i) {
    if (i > 0) norm += "/";
    norm += segs[i];
  }
  if (!segs.empty() && path.ends_with("/")) norm += "/";
  return net::UriEncode(norm, /*keep_slash=*/true);
}

// name -> canonical value, sorted by name.
std::map<std::string, std::string> CanonicalHeaders(const net::HeaderList& headers) {
  std::map<std::string, std::string> out;
  for (const auto& [n, v] : headers) {
    std::string l = AsciiLower(n);
    if (IsUnsignable(l)) continue;
    out[l] = CanonicalHeaderValue(v);
  }
  return out;
}

std::string SignedHeaderList(const std::map<std::string, std::string>& ch) {
  std::string out;
  for (const auto& [n, v] : ch) {
    if (!out.empty()) out += ";";
    out += n;
  }
  return out;
}

std::string Scope(const std::string& date, const SigningParams& p) {
  return date + "/" + p.region + "/" + p.service + "/aws4_request";
}

std::string Signature(const Credentials& creds, const SigningParams& p,
                      const std::string& long_date, const std::string& canonical_request) {
  const std::string short_date = long_date.substr(0, 8);
  const std::string string_to_sign =
      "AWS4-HMAC-SHA256\n" + long_date + "\n" + Scope(short_date, p) + "\n" +
      Sha256Hex(
          {reinterpret_cast<const uint8_t*>(canonical_request.data()), canonical_request.size()});
  // "AWS4" + secret, then two 32-byte slots for the derived keys (kDate, kRegion,
  // kService, kSigning: each as good as the secret for a day), all in one locked
  // buffer that is wiped on return. No key touches the stack.
  const size_t secret_len = creds.secret_access_key.size();
  SecretBuffer keys(4 + secret_len + 2 * kKeySize);
  uint8_t* const k_secret = keys.data();
  uint8_t* const a = k_secret + 4 + secret_len;
  uint8_t* const b = a + kKeySize;
  std::memcpy(k_secret, "AWS4", 4);
  if (secret_len > 0) std::memcpy(k_secret + 4, creds.secret_access_key.data(), secret_len);
  HmacInto({k_secret, 4 + secret_len}, short_date, a);  // kDate
  HmacInto({a, kKeySize}, p.region, b);                 // kRegion
  HmacInto({b, kKeySize}, p.service, a);                // kService
  HmacInto({a, kKeySize}, "aws4_request", b);           // kSigning
  std::array<uint8_t, kKeySize> sig{};                  // the signature is public
  HmacInto({b, kKeySize}, string_to_sign, sig.data());
  return ToHex(sig);
}

std::string CanonicalRequest(const SignableRequest& req, bool double_encode,
                             const std::map<std::string, std::string>& ch,
                             const std::string& payload_hash) {
  std::string out = req.method + "\n" + CanonicalPath(req.path, double_encode) + "\n" +
                    CanonicalQuery(req.query) + "\n";
  for (const auto& [n, v] : ch) out += n + ":" + v + "\n";
  out += "\n" + SignedHeaderList(ch) + "\n" + payload_hash;
  return out;
}

void SetHeader(net::HeaderList& headers, const std::string& name, const std::string& value) {
  for (auto& [n, v] : headers) {
    if (AsciiLower(n) == name) {
      v = value;
      return;
    }
  }
  headers.emplace_back(name, value);
}

const std::string* FindHeader(const net::HeaderList& headers, const std::string& lname) {
  for (const auto& [n, v] : headers) {
    if (AsciiLower(n) == lname) return &v;
  }
  return nullptr;
}

}  // namespace

std::string Sha256Hex(std::span<const uint8_t> data) {
  std::array<uint8_t, 32> d{};
  SHA256(data.data(), data.size(), d.data());
  return ToHex(d);
}

std::string AmzDate(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[20];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  std::map<std::string, std::vector<std::string>> by_key;
  for (const auto& [k, v] : query) {
    if (AsciiLower(k) == "x-amz-signature") continue;
    const std::string ek = net::UriEncode(k);
    by_key[ek].push_back(ek + "=" + net::UriEncode(v));
  }
  std::string out;
  for (auto& [k, pairs] : by_key) {
    std::sort(pairs.begin(), pairs.end());
    for (const auto& p : pairs) {
      if (!out.empty()) out += "&";
      out += p;
    }
  }
  return out;
}

void SignHeaders(SignableRequest& req, const Credentials& creds, const SigningParams& params,
                 const std::string& payload_hash) {
  const std::string long_date = AmzDate(params.time);
  SetHeader(req.headers, "x-amz-date", long_date);
  if (!creds.session_token.empty()) {
    SetHeader(req.headers, "x-amz-security-token", creds.session_token);
  }
  std::string hash = payload_hash;
  if (const std::string* h = FindHeader(req.headers, "x-amz-content-sha256")) {
    hash = *h;
  } else if (params.add_content_sha256) {
    req.headers.emplace_back("x-amz-content-sha256", hash);
  }
  const auto ch = CanonicalHeaders(req.headers);
  const std::string sig = Signature(creds, params, long_date,
                                    CanonicalRequest(req, params.double_encode_path, ch, hash));
  SetHeader(req.headers, "authorization",
            "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" +
                Scope(long_date.substr(0, 8), params) + ", SignedHeaders=" + SignedHeaderList(ch) +
                ", Signature=" + sig);
}

void Presign(SignableRequest& req, const Credentials& creds, const SigningParams& params,
             const std::string& payload_hash, int expires_in) {
  const std::string long_date = AmzDate(params.time);
  std::string hash = payload_hash;
  if (const std::string* h = FindHeader(req.headers, "x-amz-content-sha256")) hash = *h;
  net::HeaderList kept;
  for (auto& [n, v] : req.headers) {
    if (AsciiLower(n).starts_with("x-amz-")) {
      req.query.emplace_back(n, v);
    } else {
      kept.emplace_back(n, v);
    }
  }
  req.headers = std::move(kept);
  if (!creds.session_token.empty())
    req.query.emplace_back("X-Amz-Security-Token", creds.session_token);
  req.query.emplace_back("X-Amz-Algorithm", "AWS4-HMAC-SHA256");
  req.query.emplace_back("X-Amz-Credential",
                         creds.access_key_id + "/" + Scope(long_date.substr(0, 8), params));
  req.query.emplace_back("X-Amz-Date", long_date);
  req.query.emplace_back("X-Amz-Expires", std::to_string(expires_in));
  const auto ch = CanonicalHeaders(req.headers);
  req.query.emplace_back("X-Amz-SignedHeaders", SignedHeaderList(ch));
  req.query.emplace_back("X-Amz-Signature",
                         Signature(creds, params, long_date,
                                   CanonicalRequest(req, params.double_encode_path, ch, hash)));
}

}  // namespace modelseal::aws
