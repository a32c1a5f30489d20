// Unit tests of the AWS plumbing against loopback servers: transport, retries,
// error translation, XML, URLs, shared config files, IMDSv2 and the credentials chain.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>

#include "aws/aws.h"
#include "aws/errors.h"
#include "tests/support/testenv.h"

namespace modelseal::aws {
namespace {

using testenv::HttpRequestIn;
using testenv::HttpResponseOut;
using testenv::HttpServer;

// Sets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  void Set(const std::string& k, const std::string& v) {
    Save(k);
    setenv(k.c_str(), v.c_str(), 1);
  }
  void Unset(const std::string& k) {
    Save(k);
    unsetenv(k.c_str());
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved_) {
      if (v)
        setenv(k.c_str(), v->c_str(), 1);
      else
        unsetenv(k.c_str());
    }
  }

 private:
  void Save(const std::string& k) {
    for (auto& [name, v] : saved_) {
      if (name == k) return;
    }
    const char* v = std::getenv(k.c_str());
    saved_.emplace_back(k, v ? std::optional<std::string>(v) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Clears every variable the chain reads, pointing the files at nothing.
void IsolateAwsEnv(ScopedEnv& env, const std::string& dir) {
  for (const char* k :
       {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_KMS", "AWS_EC2_METADATA_DISABLED"}) {
    env.Unset(k);
  }
  env.Set("AWS_CONFIG_FILE", dir + "/config");
  env.Set("AWS_SHARED_CREDENTIALS_FILE", dir + "/credentials");
  env.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1");  // refused at once
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string SecretOf(const Credentials& c) {
  return std::string(reinterpret_cast<const char*>(c.secret_access_key.data()),
                     c.secret_access_key.size());
}

TEST(Xml, FindAndDecode) {
  const std::string doc =
      "<?xml version=\"1.0\"?><ListBucketResult><Contents><Key>a&amp;b</Key><Size>3</Size>"
      "</Contents><Contents><Key>&#x65E5;&#26412;&lt;</Key><Size>4</Size></Contents>"
      "<IsTruncated>false</IsTruncated><Empty/></ListBucketResult>";
  auto all = xml::FindAll(doc, "Contents");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(xml::Text(all[0], "Key"), "a&b");
  EXPECT_EQ(xml::Text(all[1], "Key"), "日本<");
  EXPECT_EQ(xml::Text(doc, "Empty"), "");
  EXPECT_FALSE(xml::Text(doc, "Missing").has_value());
  EXPECT_EQ(xml::Escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
  EXPECT_EQ(xml::Decode("&bogus; &#xZZ;"), "&bogus; &#xZZ;");
}

// A listing's text with a long run of '&' and no ';' near them (found while timing the
// s3_listing fuzzer): each '&' used to search to the end for a ';', quadratic in the
// text, so 4 MiB took hours. An entity ends within 12 characters; no further look.
TEST(Xml, DecodeLooksNoFurtherThanAnEntityForItsSemicolon) {
  const std::string run(4u << 20, '&');
  EXPECT_EQ(xml::Decode(run + "lt;"), run.substr(1) + "<");
  EXPECT_EQ(xml::Decode("&" + std::string(11, 'x') + ";"), "&" + std::string(11, 'x') + ";");
  EXPECT_EQ(xml::Decode("&#x10FFFF;"), "\xF4\x8F\xBF\xBF");
}

// A LastModified far in the future (found by fuzzing a ListObjectsV2 listing) used
// to overflow system_clock's nanosecond count: refused now.
TEST(Iso8601, ParsesAndRefusesTimesSystemClockCannotHold) {
  auto t = ParseIso8601("2026-11-25T21:00:00.123Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1795640400);
  EXPECT_TRUE(ParseIso8601("2262-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(ParseIso8601("4790-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(ParseIso8601("1000-01-01T00:00:00Z").has_value());
  EXPECT_FALSE(ParseIso8601("2026-11-25 21:00:00").has_value());
}

TEST(AwsError, FromXmlJsonAndHeaders) {
  net::HttpResponse r;
  r.status = 404;
  const std::string body =
      "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The key does not "
      "exist</Message></Error>";
  r.body.assign(body.begin(), body.end());
  Error e = AwsErrorFromResponse("store", "GetObject", r);
  EXPECT_EQ(e.code, ErrorCode::kNotFound);
  EXPECT_EQ(e.reason, "NoSuchKey");
  EXPECT_EQ(e.message, "GetObject: NoSuchKey: The key does not exist (HTTP 404)");

  net::HttpResponse j;
  j.status = 400;
  const std::string jb = R"({"__type":"com.amazonaws.kms#ThrottlingException","message":"slow"})";
  j.body.assign(jb.begin(), jb.end());
  e = AwsErrorFromResponse("kms", "Decrypt", j);
  EXPECT_EQ(e.reason, "ThrottlingException");
  EXPECT_EQ(e.code, ErrorCode::kUnavailable);  // throttling is retryable

  net::HttpResponse h;
  h.status = 503;
  e = AwsErrorFromResponse("store", "HeadObject", h);
  EXPECT_EQ(e.reason, "ServiceUnavailable");
  EXPECT_TRUE(net::IsRetryable(e));
  h.status = 403;
  h.headers = {{"x-amz-error-code", "AccessDenied"}};
  e = AwsErrorFromResponse("store", "HeadObject", h);
  EXPECT_EQ(e.reason, "AccessDenied");
  EXPECT_EQ(e.code, ErrorCode::kPermissionDenied);
  EXPECT_FALSE(net::IsRetryable(e));
}

TEST(Config, ProfilesRegionAndEndpoints) {
  ScopedEnv env;
  const std::string dir = testenv::MakeTempDir("awscfg");
  IsolateAwsEnv(env, dir);
  WriteFile(dir + "/config",
            "[default]\nregion = eu-west-1\n\n[profile dev]\nregion=ap-south-1 # comment\n"
            "endpoint_url = http://127.0.0.1:9000\n");
  WriteFile(dir + "/credentials",
            "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s3cret\n"
            "; comment\n[dev]\naws_access_key_id=AKDEV\naws_secret_access_key=devsecret\n"
            "aws_session_token=tok\n[half]\naws_access_key_id=AKHALF\n");
  EXPECT_EQ(RegionFromEnvOrConfig(), "eu-west-1");
  EXPECT_FALSE(EndpointOverride("S3").has_value());
  auto c = ProfileCredentials()->Get();
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ((*c)->access_key_id, "AKDEFAULT");
  EXPECT_EQ(SecretOf(**c), "s3cret");

  env.Set("AWS_PROFILE", "dev");
  EXPECT_EQ(RegionFromEnvOrConfig(), "ap-south-1");
  EXPECT_EQ(EndpointOverride("S3"), "http://127.0.0.1:9000");
  env.Set("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4568");
  EXPECT_EQ(EndpointOverride("S3"), "http://127.0.0.1:4568");
  EXPECT_EQ(EndpointOverride("KMS"), "http://127.0.0.1:9000");
  c = DefaultCredentialsChain()->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->access_key_id, "AKDEV");
  EXPECT_EQ((*c)->session_token, "tok");
  EXPECT_EQ((*c)->source, "profile:dev");

  env.Set("AWS_REGION", "us-east-2");
  EXPECT_EQ(RegionFromEnvOrConfig(), "us-east-2");
  env.Set("AWS_ACCESS_KEY_ID", "AKENV");
  env.Set("AWS_SECRET_ACCESS_KEY", "envsecret");
  c = DefaultCredentialsChain()->Get();  // environment wins over the profile
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->access_key_id, "AKENV");

  env.Unset("AWS_ACCESS_KEY_ID");
  env.Unset("AWS_SECRET_ACCESS_KEY");
  env.Set("AWS_PROFILE", "half");
  c = DefaultCredentialsChain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().reason, "bad-config");
  testenv::RemoveTree(dir);
}

// A fake IMDSv2 that insists on the session token and hands out credentials
// expiring `ttl` seconds from now.
struct FakeImds {
  std::atomic<int> token_puts{0}, cred_gets{0}, rejected{0};
  std::atomic<int> ttl{3600};
  HttpServer server{[this](const HttpRequestIn& req) {
    HttpResponseOut r;
    if (req.method == "PUT" && req.target == "/latest/api/token") {
      if (!req.headers.count("x-aws-ec2-metadata-token-ttl-seconds")) r.status = 400;
      ++token_puts;
      r.body = "TOKEN-1";
      return r;
    }
    auto it = req.headers.find("x-aws-ec2-metadata-token");
    if (it == req.headers.end() || it->second != "TOKEN-1") {
      ++rejected;
      r.status = 401;
      return r;
    }
    if (req.target == "/latest/meta-data/placement/region") {
      r.body = "eu-north-1";
    } else if (req.target == "/latest/meta-data/iam/security-credentials/") {
      r.body = "model-role\n";
    } else if (req.target == "/latest/meta-data/iam/security-credentials/model-role") {
      const int n = ++cred_gets;
      const std::time_t exp = std::time(nullptr) + ttl.load();
      char buf[32];
      std::tm tm{};
      gmtime_r(&exp, &tm);
      std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
      r.body = R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIA)" + std::to_string(n) +
               R"(","SecretAccessKey":"imdssecret","Token":"imdstoken","Expiration":")" + buf +
               "\"}";
    } else {
      r.status = 404;
    }
    return r;
  }};
};

TEST(Imds, TokenCredentialsRefreshAndRegion) {
  ScopedEnv env;
  const std::string dir = testenv::MakeTempDir("awsimds");
  IsolateAwsEnv(env, dir);
  FakeImds imds;
  env.Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.server.url());

  auto region = ResolveRegion();
  ASSERT_TRUE(region.ok()) << region.error().ToString();
  EXPECT_EQ(*region, "eu-north-1");

  auto chain = DefaultCredentialsChain();
  auto c = chain->Get();
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ((*c)->access_key_id, "ASIA1");
  EXPECT_EQ((*c)->session_token, "imdstoken");
  EXPECT_EQ((*c)->source, "imds:model-role");
  ASSERT_TRUE((*c)->expiration.has_value());
  c = chain->Get();  // still fresh: cached
  EXPECT_EQ((*c)->access_key_id, "ASIA1");
  EXPECT_EQ(imds.cred_gets.load(), 1);
  EXPECT_EQ(imds.rejected.load(), 0);

  // Credentials inside the 5-minute refresh window are fetched again.
  imds.ttl = 120;
  auto provider = ImdsCredentials(std::make_shared<ImdsClient>(nullptr));
  c = provider->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->access_key_id, "ASIA2");
  c = provider->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->access_key_id, "ASIA3");
  EXPECT_EQ(SecretOf(**c), "imdssecret");

  env.Set("AWS_EC2_METADATA_DISABLED", "true");
  auto none = DefaultCredentialsChain()->Get();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().reason, "no-credentials");
  testenv::RemoveTree(dir);
}

TEST(Imds, UnreachableFailsFastWithClearError) {
  ScopedEnv env;
  const std::string dir = testenv::MakeTempDir("awsimds2");
  IsolateAwsEnv(env, dir);
  auto c = DefaultCredentialsChain()->Get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().reason, "no-credentials");
  EXPECT_NE(c.error().message.find("imds"), std::string::npos);
  auto r = ResolveRegion();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, "no-region");
  testenv::RemoveTree(dir);
}

}  // namespace
}  // namespace modelseal::aws
