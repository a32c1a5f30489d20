// The configuration file: strict parsing with the line and key named.
#include <gtest/gtest.h>

#include "pipeline/config.h"

namespace modelseal::pipeline {
namespace {

TEST(Config, ReadsEverySectionOfAnAwsDeployment) {
  const auto c = ParseConfig(R"(# on a NitroTPM instance
[server]
listen = 0.0.0.0:8443
tls_cert = /etc/modelseal/tls.crt
tls_key = /etc/modelseal/tls.key

[tpm]
tcti = device:/dev/tpm0
attestation = nitrotpm

[kms]
region = us-east-2
key_id = alias/modelseal
consumer_principal = arn:aws:iam::111122223333:role/modelseal-consumer

[store]
url = s3://models-bucket/models
threads = 16

[engine]
gpu_layers = -1
)",
                             "aws.conf");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->listen, "0.0.0.0:8443");
  EXPECT_EQ(c->tls_key, "/etc/modelseal/tls.key");
  EXPECT_EQ(c->tcti, "device:/dev/tpm0");
  EXPECT_EQ(c->attestation, "nitrotpm");
  EXPECT_EQ(c->kms_region, "us-east-2");
  EXPECT_EQ(c->key_id, "alias/modelseal");
  EXPECT_EQ(c->store_url, "s3://models-bucket/models");
  EXPECT_EQ(c->store_threads, 16u);
  EXPECT_EQ(c->gpu_layers, -1);
  EXPECT_TRUE(c->kms_endpoint.empty());
}

TEST(Config, RefusesBadInputNamingTheLineAndKey) {
  const struct {
    const char* text;
    const char* message;
  } cases[] = {
      {"[kms]\nendpoint = localhost:4599\n", "x.conf:2: [kms] endpoint: not an http(s) URL"},
      {"[tpm]\n\nattestation = maybe\n", "x.conf:3: [tpm] attestation: must be one of"},
      {"[kms]\nkeyid = k\n", "x.conf:2: [kms] keyid: unknown key"},
      {"[gpu]\n", "x.conf:1: unknown section [gpu]"},
      {"listen = :1\n", "x.conf:1: listen: outside of any [section]"},
      {"[store]\nthreads = 0\n", "x.conf:2: [store] threads: not an integer in 1..64"},
      {"[store]\nthreads = 8x\n", "x.conf:2: [store] threads: not an integer"},
      {"[server]\nlisten = a\nlisten = b\n", "x.conf:3: [server] listen: set twice"},
      {"[server]\ntls_cert = relative.pem\n", "x.conf:2: [server] tls_cert: must be an absolute"},
      {"[server]\ntls_cert = /a.pem\n", "[server] tls_cert and tls_key go together"},
      {"[store]\nurl = ftp://x\n", "x.conf: [store] url: invalid store URL"},
      {"[kms\n", "x.conf:1: a section header must end with ']'"},
  };
  for (const auto& k : cases) {
    const auto c = ParseConfig(k.text, "x.conf");
    ASSERT_FALSE(c.ok()) << k.text;
    EXPECT_EQ(c.error().reason, "bad-config");
    EXPECT_NE(c.error().message.find(k.message), std::string::npos)
        << c.error().message << " (wanted: " << k.message << ")";
  }
}

TEST(Config, WhatUpWritesReadsBackTheSame) {
  Config c;
  c.state_dir = "/var/lib/modelseal";
  c.tcti = "swtpm:host=127.0.0.1,port=2321";
  c.attestation = "development";
  c.kms_endpoint = "http://127.0.0.1:4599";
  c.credentials_file = "/var/lib/modelseal/kms/clients.ini";
  c.owner_profile = "owner";
  c.consumer_profile = "consumer";
  c.store_url = "file:///var/lib/modelseal/store/models";
  c.context = 2048;
  const auto back = ParseConfig(FormatConfig(c), "written");
  ASSERT_TRUE(back.ok()) << back.error().ToString() << "\n" << FormatConfig(c);
  EXPECT_EQ(back->tcti, c.tcti);
  EXPECT_EQ(back->kms_endpoint, c.kms_endpoint);
  EXPECT_EQ(back->credentials_file, c.credentials_file);
  EXPECT_EQ(back->consumer_profile, "consumer");
  EXPECT_EQ(back->store_url, c.store_url);
  EXPECT_EQ(back->context, 2048u);
  EXPECT_EQ(back->listen, "127.0.0.1:8080");
}

}  // namespace
}  // namespace modelseal::pipeline
