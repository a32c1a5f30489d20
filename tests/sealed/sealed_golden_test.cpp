// Known answers for container format v1: tests/sealed/golden/golden.msealed, checked
// independently against docs/container.md by check_golden.py (Python
// `cryptography`). This reader must open it and this writer must reproduce it byte
// for byte from the same inputs, so a change to key derivation, nonces, field
// encoding or the MAC cannot pass unnoticed (every published object would become
// unreadable).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "common/bytes.h"
#include "common/io.h"
#include "common/secret.h"
#include "sealed/sealed.h"

namespace modelseal::sealed {
namespace {

const std::string kDir = std::string(MODELSEAL_SOURCE_DIR) + "/tests/sealed/golden/";

Bytes ReadAll(const std::string& name) {
  std::ifstream f(kDir + name, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

SecretBuffer GoldenKey() {
  const Bytes k = ReadAll("golden.key");
  return SecretBuffer(k.data(), k.size());
}

TEST(SealedGolden, TheReaderOpensTheCommittedObject) {
  const SecretBuffer key = GoldenKey();
  ASSERT_EQ(key.size(), 32u);
  auto src = FileSource::Open(kDir + "golden.msealed");
  ASSERT_TRUE(src.ok()) << src.error().ToString();
  auto reader = SealedReader::Open(**src, key);
  ASSERT_TRUE(reader.ok()) << reader.error().ToString();
  const Header& h = (*reader)->header();
  // Expected values written by hand from the committed object (see check_golden.py).
  EXPECT_EQ(h.format_version, 1u);
  EXPECT_EQ(h.chunk_size, 4096u);
  EXPECT_EQ(h.plaintext_size, 10000u);
  EXPECT_EQ(h.header_size, 317u);
  EXPECT_EQ(h.created_unix_ms, 1796095392209u);
  EXPECT_EQ(h.kms_key_id, "dev:raw-key-file");
  EXPECT_EQ(h.model.name, "golden-model");
  EXPECT_EQ(h.model.source, "file");
  EXPECT_EQ(h.model.file_name, "golden.plain");
  EXPECT_EQ(ToHex(h.sha384),
            "5419aadb705ea246276fff8d49efccaa70bb03975dc1e398c514e561b32b0a0c"
            "f79f7a7ab6a206cdf08a7af6e86e7721");
  Bytes plain(h.plaintext_size);
  ASSERT_TRUE((*reader)->DecryptAll(plain, 2, {}).ok());
  EXPECT_EQ(plain, ReadAll("golden.plain"));
}

TEST(SealedGolden, TheWriterReproducesTheCommittedObject) {
  const SecretBuffer key = GoldenKey();
  const Bytes golden = ReadAll("golden.msealed");
  auto src = FileSource::Open(kDir + "golden.msealed");
  ASSERT_TRUE(src.ok());
  auto reader = SealedReader::Open(**src, key);
  ASSERT_TRUE(reader.ok());
  const Header& h = (*reader)->header();
  const Bytes plain = ReadAll("golden.plain");
  MemorySource in(plain);
  VectorSink out;
  SealKey sk{&key, h.kms_key_id, h.encrypted_data_key, h.encryption_context};
  SealOptions so;
  so.chunk_size = 4096;
  so.threads = 2;
  so.created_unix_ms = h.created_unix_ms;
  so.salt = h.salt;
  auto written = Seal(in, out, sk, h.model, so);
  ASSERT_TRUE(written.ok()) << written.error().ToString();
  EXPECT_EQ(out.bytes(), golden);
}

}  // namespace
}  // namespace modelseal::sealed
