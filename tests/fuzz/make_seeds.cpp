// Writes seed inputs made with modelseal's own APIs: small sealed containers
// under the golden data key (tests/sealed/golden/golden.key) and SigV4-signed KMS
// requests (credentials AKID/secret, region eu-west-1, 2026-01-01T00:00:00Z), as
// the fuzz targets fuzz_sealed_header and fuzz_kms_sigv4 expect.
//
//   scripts/fuzz seeds   (builds this and writes into tests/fuzz/corpus/)
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "aws/sigv4.h"
#include "common/io.h"
#include "common/secret.h"
#include "sealed/sealed.h"

namespace {

using namespace modelseal;

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

int SealSeeds(const std::string& dir) {
  std::ifstream kf("tests/sealed/golden/golden.key", std::ios::binary);
  std::string key_bytes((std::istreambuf_iterator<char>(kf)), std::istreambuf_iterator<char>());
  if (key_bytes.size() != sealed::kDataKeySize) return 1;
  SecretBuffer key = SecretBuffer::Unlocked(sealed::kDataKeySize);
  std::memcpy(key.data(), key_bytes.data(), key_bytes.size());
  const struct {
    const char* name;
    size_t size;
    sealed::EncryptionContext ctx;
  } cases[] = {{"empty", 0, {}},
               {"one_chunk", 100, {{"model", "tiny"}}},
               {"two_chunks", 4096 + 10, {{"a", "1"}, {"model", "tiny"}}},
               {"exact_chunk", 4096, {}}};
  for (const auto& c : cases) {
    Bytes plain(c.size);
    for (size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<uint8_t>(i * 7 + 1);
    sealed::SealKey sk{&key, "arn:aws:kms:eu-west-1:111122223333:key/fuzz", Bytes{1, 2, 3, 4},
                       c.ctx};
    sealed::SealOptions so;
    so.chunk_size = sealed::kMinChunkSize;
    so.threads = 1;
    so.created_unix_ms = 1764000000000;
    so.salt = std::array<uint8_t, 32>{};
    MemorySource src(plain);
    VectorSink out;
    auto h = sealed::Seal(src, out, sk, {"tiny", "file", "tiny.gguf"}, so);
    if (!h.ok()) return 1;
    const Bytes& b = out.bytes();
    Write(dir + "/" + c.name, std::string(b.begin(), b.end()));
    Write(dir + "/" + c.name + "_header", std::string(b.begin(), b.begin() + h->header_size));
  }
  return 0;
}

// The request as it arrives on the wire.
std::string Signed(const std::string& target, const std::string& body, bool content_sha,
                   const std::string& query) {
  aws::SignableRequest sr;
  sr.method = "POST";
  sr.path = "/";
  if (!query.empty()) sr.query = {{query, "1"}};
  sr.headers = {{"host", "127.0.0.1:4599"},
                {"x-amz-target", target},
                {"content-type", "application/x-amz-json-1.1"}};
  aws::SigningParams p;
  p.region = "eu-west-1";
  p.service = "kms";
  p.time = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));
  p.add_content_sha256 = content_sha;
  aws::SignHeaders(
      sr, *aws::Credentials::Make("AKID", "secret"), p,
      aws::Sha256Hex(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())));
  std::string wire = "POST /" + (query.empty() ? "" : "?" + query + "=1") + " HTTP/1.1\r\n";
  for (const auto& [k, v] : sr.headers) wire += k + ": " + v + "\r\n";
  wire += "content-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return wire;
}

int RequestSeeds(const std::string& dir) {
  Write(dir + "/list_keys", Signed("TrentService.ListKeys", "{}", true, ""));
  Write(dir + "/list_keys_no_sha", Signed("TrentService.ListKeys", "{}", false, ""));
  Write(dir + "/decrypt",
        Signed("TrentService.Decrypt",
               R"({"CiphertextBlob":"AQIDBA==","EncryptionContext":{"model":"tiny"}})", true, ""));
  Write(dir + "/generate_data_key",
        Signed("TrentService.GenerateDataKey", R"({"KeyId":"alias/m","KeySpec":"AES_256"})", false,
               ""));
  Write(dir + "/with_query", Signed("TrentService.DescribeKey", R"({"KeyId":"k"})", true, "x"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds sealed|requests DIR\n");
    return 2;
  }
  const std::string what = argv[1];
  if (what == "sealed") return SealSeeds(argv[2]);
  if (what == "requests") return RequestSeeds(argv[2]);
  return 2;
}
