// Attested Decrypt round trip against the built-in key service on loopback:
// SigV4, document verification (COSE signature, chain, validity), policy
// evaluation, CMS envelope to the recipient and opening it. Prints p50/p99 over
// N requests, next to a plain Decrypt (no attestation) measured in the same run.
//
//   bench_kms [--requests N]
#include <openssl/x509.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "attest/attest.h"
#include "common/ossl.h"
#include "kms/client.h"
#include "kms/recipient.h"
#include "kms/server.h"

using namespace modelseal;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Stats {
  double p50 = 0, p99 = 0, mean = 0;
};

Stats Summarise(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Stats s;
  s.p50 = ms[ms.size() / 2];
  s.p99 = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  for (double v : ms) s.mean += v;
  s.mean /= static_cast<double>(ms.size());
  return s;
}

double Ms(Clock::time_point a) {
  return std::chrono::duration<double, std::milli>(Clock::now() - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--requests") == 0) requests = std::atoi(argv[i + 1]);
  }
  const auto dir =
      std::filesystem::temp_directory_path() / ("ms-bench-kms-" + std::to_string(getpid()));
  auto dev = attest::DevAuthority::Open((dir / "state").string());
  auto store = kms::KeyStore::Open((dir / "keys").string(), "eu-west-1", "111122223333");
  if (!dev.ok() || !store.ok()) {
    std::fprintf(stderr, "setup failed\n");
    return 1;
  }
  kms::ServiceConfig cfg;
  cfg.extra_roots.push_back((*dev)->root());
  kms::KeyService service(std::move(*store), cfg);
  kms::ServerConfig sc;
  sc.credentials = {{"AKIDBENCH", "bench-secret", "arn:aws:iam::111122223333:user/owner"}};
  auto server = kms::KeyServer::Start(service, sc);
  kms::ClientConfig cc;
  cc.endpoint = "http://127.0.0.1:" + std::to_string((*server)->port());
  cc.region = "eu-west-1";
  cc.credentials = aws::StaticCredentials(aws::Credentials::Make("AKIDBENCH", "bench-secret"));
  auto client = kms::KmsClient::Create(cc);
  auto key = (*client)->Call("CreateKey", json::object());
  const std::string id = (*key)["KeyMetadata"]["KeyId"];
  auto dk = (*client)->GenerateDataKey(id, {{"model", "bench"}});
  if (!dk.ok()) {
    std::fprintf(stderr, "%s\n", dk.error().ToString().c_str());
    return 1;
  }

  // One ephemeral recipient key and document, as a loader makes once per load.
  auto t0 = Clock::now();
  PkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  const double keygen_ms = Ms(t0);
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(rsa.get(), &der);
  Bytes spki(der, der + len);
  OPENSSL_free(der);
  attest::DocumentRequest req;
  req.public_key = spki;
  std::map<uint32_t, Bytes> pcrs;
  for (uint32_t i = 0; i < 24; ++i) pcrs[i] = Bytes(48, static_cast<uint8_t>(i));
  auto doc = (*dev)->Issue(pcrs, req);
  const json body = {{"CiphertextBlob", Base64Encode(dk->ciphertext)},
                     {"EncryptionContext", {{"model", "bench"}}},
                     {"Recipient",
                      {{"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"},
                       {"AttestationDocument", Base64Encode(*doc)}}}};
  const json plain_body = {{"CiphertextBlob", Base64Encode(dk->ciphertext)},
                           {"EncryptionContext", {{"model", "bench"}}}};

  std::vector<double> plain_ms, attested_ms;
  for (int i = 0; i < 20; ++i) (void)(*client)->Call("Decrypt", plain_body);  // warm up
  for (int i = 0; i < requests; ++i) {
    auto a = Clock::now();
    auto r = (*client)->Call("Decrypt", plain_body);
    plain_ms.push_back(Ms(a));
    if (!r.ok()) return 1;
  }
  for (int i = 0; i < requests; ++i) {
    auto a = Clock::now();
    auto r = (*client)->Call("Decrypt", body);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.error().ToString().c_str());
      return 1;
    }
    auto env = Base64Decode((*r)["CiphertextForRecipient"].get<std::string>());
    auto opened = kms::OpenEnvelope(*env, rsa.get());
    attested_ms.push_back(Ms(a));
    if (!opened.ok() || opened->size() != 32) return 1;
  }
  const Stats p = Summarise(plain_ms), a = Summarise(attested_ms);
  std::printf("key service round trips on loopback, %d requests each\n\n", requests);
  std::printf("%-34s %8s %8s %8s\n", "", "p50 ms", "p99 ms", "mean ms");
  std::printf("%-34s %8.3f %8.3f %8.3f\n", "Decrypt (baseline, no attestation)", p.p50, p.p99,
              p.mean);
  std::printf("%-34s %8.3f %8.3f %8.3f\n", "Decrypt with Recipient (attested)", a.p50, a.p99,
              a.mean);
  std::printf("\nattested / baseline p50: %.2f x\n", a.p50 / p.p50);
  std::printf("one-time RSA-2048 recipient key generation: %.1f ms\n", keygen_ms);
  std::printf("goal: attested p50 <= 5 ms: %s\n", a.p50 <= 5.0 ? "met" : "NOT met");
  (*server)->Stop();
  std::filesystem::remove_all(dir);
  return 0;
}
