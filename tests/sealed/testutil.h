#pragma once

#include <unistd.h>

#include <random>

#include "common/bytes.h"
#include "common/memfd.h"
#include "common/ossl.h"
#include "sealed/sealed.h"

namespace modelseal::sealed::testing {

inline Bytes RandomData(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& v : b) v = static_cast<uint8_t>(rng());
  return b;
}

inline SecretBuffer TestKey(uint8_t fill = 0x42) {
  SecretBuffer k(kDataKeySize);
  for (size_t i = 0; i < k.size(); ++i) k.data()[i] = static_cast<uint8_t>(fill + i);
  return k;
}

struct SealedObject {
  Bytes plain;
  Bytes object;
  Header header;
};

inline SealedObject SealBytes(const Bytes& plain, const SecretBuffer& key, uint32_t chunk_size,
                              unsigned threads, std::optional<std::array<uint8_t, 32>> salt = {}) {
  SealKey sk{&key,
             "arn:aws:kms:eu-west-1:111122223333:key/test",
             Bytes{0xde, 0xad, 0xbe, 0xef},
             {{"model", "tiny"}, {"owner", "party-a"}}};
  SealOptions so;
  so.chunk_size = chunk_size;
  so.threads = threads;
  so.created_unix_ms = 1764000000000;
  so.salt = salt;
  MemorySource src(plain);
  VectorSink out;
  auto h = Seal(src, out, sk, {"tiny", "file", "tiny.gguf"}, so);
  if (!h.ok()) throw std::runtime_error(h.error().ToString());
  return {plain, std::move(out.bytes()), *h};
}

inline Bytes ReadAll(const Memfd& m) {
  Bytes b(m.size());
  size_t done = 0;
  while (done < b.size()) {
    const ssize_t n = pread(m.fd(), b.data() + done, b.size() - done, static_cast<off_t>(done));
    if (n <= 0) throw std::runtime_error("pread memfd");
    done += static_cast<size_t>(n);
  }
  return b;
}

}  // namespace modelseal::sealed::testing
