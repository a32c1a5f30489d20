// SigV4 conformance: every request in tests/js/aws/sigv4_vectors.mjs is signed by
// the official @smithy/signature-v4 (run live with node) and by aws/sigv4.h; the
// headers (header form) or query parameters (presigned form) must match exactly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>

#include "aws/sigv4.h"
#include "tests/support/testenv.h"

namespace modelseal::aws {
namespace {

using nlohmann::json;

std::map<std::string, std::string> ToMap(const json& pairs, bool lower) {
  std::map<std::string, std::string> m;
  for (const auto& p : pairs) {
    std::string k = p[0].get<std::string>();
    if (lower) {
      for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    m[k] = p[1].get<std::string>();
  }
  return m;
}

TEST(SigV4Conformance, MatchesSmithySignatureV4) {
  auto out = testenv::RunNode("tests/js/aws/sigv4_vectors.mjs", {});
  ASSERT_TRUE(out.ok()) << out.error().ToString();
  json cases = json::parse(*out);
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    SignableRequest req;
    req.method = c["method"];
    req.path = c["path"];
    for (const auto& q : c["query"]) req.query.emplace_back(q[0], q[1]);
    for (const auto& h : c["headers"]) req.headers.emplace_back(h[0], h[1]);
    auto creds = Credentials::Make(c["access_key_id"], c["secret"].get<std::string>(), c["token"]);
    SigningParams p;
    p.region = c["region"];
    p.service = c["service"];
    p.time = std::chrono::system_clock::from_time_t(c["time_s"].get<int64_t>());
    p.double_encode_path = c["double_encode"];
    p.add_content_sha256 = c["add_checksum"];
    const std::string body = c["body"];
    const std::string hash =
        c["stream"].get<bool>()
            ? std::string(kUnsignedPayload)
            : Sha256Hex({reinterpret_cast<const uint8_t*>(body.data()), body.size()});
    if (c["mode"] == "presign") {
      Presign(req, *creds, p, hash, c["expires"].get<int>());
      std::map<std::string, std::string> got;
      for (const auto& [k, v] : req.query) got[k] = v;
      EXPECT_EQ(got, ToMap(c["expected_query"], false));
      std::map<std::string, std::string> got_h;
      for (const auto& [k, v] : req.headers) got_h[k] = v;
      EXPECT_EQ(got_h, ToMap(c["expected_headers"], false));
    } else {
      SignHeaders(req, *creds, p, hash);
      std::map<std::string, std::string> got;
      for (const auto& [k, v] : req.headers) {
        std::string l = k;
        for (auto& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        got[l] = v;
      }
      EXPECT_EQ(got, ToMap(c["expected_headers"], true));
    }
  }
}

// The presigned-URL example from the Amazon S3 SigV4 documentation
// ("Authenticating Requests: Using Query Parameters").
TEST(SigV4, S3DocumentationPresignExample) {
  SignableRequest req;
  req.method = "GET";
  req.path = "/test.txt";
  req.headers = {{"Host", "examplebucket.s3.amazonaws.com"}};
  auto creds =
      Credentials::Make("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  SigningParams p{"us-east-1", "s3", std::chrono::system_clock::from_time_t(1369353600), false,
                  true};
  Presign(req, *creds, p, kUnsignedPayload, 86400);
  std::string sig;
  for (const auto& [k, v] : req.query) {
    if (k == "X-Amz-Signature") sig = v;
  }
  EXPECT_EQ(sig, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(SigV4, SignatureChangesWithEveryInput) {
  auto sign = [](const std::string& path, const std::string& secret) {
    SignableRequest req;
    req.method = "GET";
    req.path = path;
    req.headers = {{"host", "h"}};
    auto creds = Credentials::Make("AK", secret);
    SigningParams p{"us-east-1", "s3", std::chrono::system_clock::from_time_t(1700000000), false,
                    true};
    SignHeaders(req, *creds, p, kEmptyPayloadSha256);
    for (const auto& [k, v] : req.headers) {
      if (k == "authorization") return v;
    }
    return std::string();
  };
  EXPECT_NE(sign("/a", "s"), sign("/b", "s"));
  EXPECT_NE(sign("/a", "s"), sign("/a", "t"));
  EXPECT_EQ(sign("/a", "s"), sign("/a", "s"));
}

}  // namespace
}  // namespace modelseal::aws
