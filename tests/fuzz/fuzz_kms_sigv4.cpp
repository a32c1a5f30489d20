// libFuzzer target: the key service's front: the HTTP/1.1 request head parser and
// chunked body decoder (src/httpd/parse.h) and the inbound SigV4 check
// (src/kms/sigv4_verify.h) on what they produce. The input is a request as it
// arrives on the wire; the seeds are requests signed by modelseal's own signer
// (tests/fuzz/make_seeds.cpp: AKID/secret, eu-west-1, 2026-01-01T00:00:00Z).
//
// Asserts:
//  - the parsers are incremental: feeding the bytes in two pieces gives the same
//    state, length and head (or body) as feeding them at once; a parsed head
//    holds a token method and token header names, and no CR, LF or NUL in values;
//  - fail closed: a request that verifies also passes the pre-check, names the
//    configured principal and the operation of its one X-Amz-Target header; the
//    same request with its body, X-Amz-Target, method or path changed, checked
//    with another secret, or more than 15 minutes off, does not verify; every failure
//    carries one of the documented reasons.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "httpd/parse.h"
#include "kms/sigv4_verify.h"

namespace {

using namespace modelseal;
using modelseal::httpd::internal::ChunkDecoder;
using modelseal::httpd::internal::Head;
using modelseal::httpd::internal::HeadParser;

constexpr size_t kMaxHead = 16 * 1024, kMaxHeaders = 100, kMaxBody = 64 * 1024;
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600 + 60));

kms::VerifierConfig Config(const std::string& secret = "secret") {
  kms::VerifierConfig c;
  c.credentials = {{"AKID", secret, "arn:aws:iam::111122223333:user/fuzz"}};
  c.region = "eu-west-1";
  return c;
}

bool SameHead(const Head& a, const Head& b) {
  if (a.headers.size() != b.headers.size()) return false;
  for (size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) {
      return false;
    }
  }
  return a.method == b.method && a.target == b.target && a.path == b.path &&
         a.raw_query == b.raw_query && a.version_minor == b.version_minor && a.body == b.body &&
         a.content_length == b.content_length && a.keep_alive == b.keep_alive &&
         a.expect_continue == b.expect_continue;
}

bool Reasonable(const Error& e) {
  return e.reason == "MissingAuthenticationTokenException" ||
         e.reason == "IncompleteSignatureException" || e.reason == "UnrecognizedClientException" ||
         e.reason == "InvalidSignatureException" ||
         // X-Amz-Target naming no TrentService operation (sigv4_verify.cpp).
         e.reason == "UnknownOperationException";
}

bool Verifies(const kms::InboundRequest& r, const kms::VerifierConfig& c,
              std::chrono::system_clock::time_point now) {
  auto v = kms::VerifyKmsRequest(r, c, now);
  if (!v.ok() && !Reasonable(v.error())) __builtin_trap();
  return v.ok();
}

// The body after the head, as the front would read it (nullopt: unreadable).
std::optional<std::string> Body(const Head& h, std::string_view rest, size_t split) {
  if (h.body == httpd::internal::BodyKind::kNone) return std::string();
  if (h.body == httpd::internal::BodyKind::kLength) {
    if (h.content_length > kMaxBody || h.content_length > rest.size()) return std::nullopt;
    return std::string(rest.substr(0, h.content_length));
  }
  auto decode = [&](size_t cut, std::string* out) {
    ChunkDecoder d(kMaxBody, kMaxHead);
    auto sink = [&](std::string_view piece) {
      out->append(piece);
      return true;
    };
    size_t used = 0, total_used = 0;
    ChunkDecoder::State st = ChunkDecoder::State::kMore;
    for (std::string_view piece : {rest.substr(0, cut), rest.substr(cut)}) {
      st = d.Feed(piece, &used, sink);
      if (used > piece.size()) __builtin_trap();
      total_used += used;
      if (st != ChunkDecoder::State::kMore) break;
    }
    if (st == ChunkDecoder::State::kDone && (d.total() != out->size() || d.total() > kMaxBody)) {
      __builtin_trap();
    }
    return std::make_pair(st, total_used);
  };
  std::string one, two;
  const auto a = decode(rest.size(), &one);
  const auto b = decode(std::min(split, rest.size()), &two);
  if (a.first != b.first) __builtin_trap();
  if (a.first == ChunkDecoder::State::kDone && (one != two || a.second != b.second)) {
    __builtin_trap();
  }
  if (a.first != ChunkDecoder::State::kDone) return std::nullopt;
  return one;
}

void CheckHead(const Head& h) {
  if (h.method.empty()) __builtin_trap();
  for (unsigned char c : h.method)
    if (!httpd::internal::IsTchar(c)) __builtin_trap();
  for (const auto& hd : h.headers) {
    if (hd.name.empty()) __builtin_trap();
    for (unsigned char c : hd.name)
      if (!httpd::internal::IsTchar(c)) __builtin_trap();
    for (char c : hd.value)
      if (c == '\r' || c == '\n' || c == '\0') __builtin_trap();
  }
}

}  // namespace

namespace modelseal::kms {
// The legacy VerifySigV4 (not fuzzed here) publishes the caller to KeyService
// (service.cpp, which this target does not link).
void PublishIdentity(const std::string&, const std::optional<std::string>&,
                     const std::optional<std::string>&) {}
}  // namespace modelseal::kms

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t split = size == 0 ? 0 : data[size / 2] % (size + 1);

  HeadParser once(kMaxHead, kMaxHeaders), twice(kMaxHead, kMaxHeaders);
  const auto s1 = once.Feed(in);
  auto s2 = twice.Feed(in.substr(0, split));
  if (s2 == HeadParser::State::kIncomplete) s2 = twice.Feed(in);
  if (s1 != s2) __builtin_trap();
  if (s1 != HeadParser::State::kDone) return 0;
  if (once.consumed() != twice.consumed() || once.consumed() > size) __builtin_trap();
  if (!SameHead(once.head(), twice.head())) __builtin_trap();
  const Head& h = once.head();
  CheckHead(h);
  (void)httpd::internal::ParseQuery(h.raw_query);

  const auto body = Body(h, in.substr(once.consumed()), split);
  if (!body) return 0;
  kms::InboundRequest r{h.method, h.path, h.raw_query, {}, *body};
  for (const auto& hd : h.headers) r.headers.emplace_back(hd.name, hd.value);

  const kms::VerifierConfig config = Config();
  auto pre = kms::PrecheckRequestHead(r, config, kNow);
  if (!pre.ok() && !Reasonable(pre.error())) __builtin_trap();
  auto v = kms::VerifyKmsRequest(r, config, kNow);
  if (!v.ok()) {
    if (!Reasonable(v.error())) __builtin_trap();
    return 0;
  }
  // Verified: everything the signature covers must matter.
  if (!pre.ok()) __builtin_trap();
  if (v->access_key_id != "AKID" || v->principal_arn != "arn:aws:iam::111122223333:user/fuzz") {
    __builtin_trap();
  }
  std::string target;
  int targets = 0;
  for (const auto& [k, val] : r.headers) {
    std::string lower = k;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "x-amz-target") ++targets, target = val;
  }
  if (targets != 1 || target != "TrentService." + v->operation) __builtin_trap();

  if (Verifies(r, Config("secreT"), kNow)) __builtin_trap();
  if (Verifies(r, config, kNow + std::chrono::minutes(16))) __builtin_trap();
  if (Verifies(r, config, kNow - std::chrono::minutes(17))) __builtin_trap();
  kms::InboundRequest t = r;
  t.body += " ";
  if (Verifies(t, config, kNow)) __builtin_trap();
  t = r;
  t.method = r.method == "POST" ? "PUT" : "POST";
  if (Verifies(t, config, kNow)) __builtin_trap();
  t = r;
  t.path = r.path + "x";
  if (Verifies(t, config, kNow)) __builtin_trap();
  t = r;
  for (auto& [k, val] : t.headers) {
    std::string lower = k;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "x-amz-target") val = "TrentService.ScheduleKeyDeletion";
  }
  if (v->operation != "ScheduleKeyDeletion" && Verifies(t, config, kNow)) __builtin_trap();
  return 0;
}
