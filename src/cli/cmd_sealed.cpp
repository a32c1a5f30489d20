// Container verbs: `inspect`, `selfcheck`, and the development tools `dev seal`
// and `dev verify` that take a raw data key from a file instead of KMS.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>

#include "attest/attest.h"
#include "cli/commands.h"
#include "common/ossl.h"
#include "sealed/sealed.h"

namespace modelseal::cli {

namespace {

using nlohmann::json;
using sealed::Header;

json HeaderJson(const Header& h) {
  json ctx = json::object();
  for (const auto& [k, v] : h.encryption_context) ctx[k] = v;
  return {
      {"format_version", h.format_version},
      {"authenticated", false},
      {"chunk_size", h.chunk_size},
      {"chunk_count", h.chunk_count()},
      {"plaintext_size", h.plaintext_size},
      {"sealed_size", h.sealed_size()},
      {"header_size", h.header_size},
      {"kms_key_id", h.kms_key_id},
      {"encrypted_data_key_size", h.encrypted_data_key.size()},
      {"encryption_context", ctx},
      {"sha256", ToHex(h.sha256)},
      {"sha384", ToHex(h.sha384)},
      {"model",
       {{"name", h.model.name}, {"source", h.model.source}, {"file_name", h.model.file_name}}},
      {"created", attest::FormatTimeMs(h.created_unix_ms)},
      {"created_unix_ms", h.created_unix_ms},
  };
}

void PrintHeaderText(const Header& h, uint64_t object_size) {
  std::printf("modelseal container, format version %u\n", h.format_version);
  std::printf(
      "  (header not authenticated: authenticity is checked when the data key is released)\n");
  std::printf("model name       %s\n", h.model.name.c_str());
  std::printf("model source     %s\n", h.model.source.c_str());
  std::printf("file name        %s\n", h.model.file_name.c_str());
  std::printf("created          %s\n", attest::FormatTimeMs(h.created_unix_ms).c_str());
  std::printf("plaintext size   %llu bytes\n", static_cast<unsigned long long>(h.plaintext_size));
  std::printf("chunks           %llu x %u bytes\n",
              static_cast<unsigned long long>(h.chunk_count()), h.chunk_size);
  std::printf("sealed size      %llu bytes (object is %llu)\n",
              static_cast<unsigned long long>(h.sealed_size()),
              static_cast<unsigned long long>(object_size));
  std::printf("KMS key id       %s\n", h.kms_key_id.c_str());
  std::printf("encrypted key    %zu bytes\n", h.encrypted_data_key.size());
  std::printf("context         ");
  if (h.encryption_context.empty()) std::printf(" (none)");
  for (const auto& [k, v] : h.encryption_context) std::printf(" %s=%s", k.c_str(), v.c_str());
  std::printf("\nsha256           %s\n", ToHex(h.sha256).c_str());
  std::printf("sha384           %s\n", ToHex(h.sha384).c_str());
}

Result<SecretBuffer> ReadKeyFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return ErrnoError("cli", "open key file " + path, errno);
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  SecretBuffer key(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  OPENSSL_cleanse(raw.data(), raw.size());
  if (key.size() != sealed::kDataKeySize) {
    return MakeError(ErrorCode::kInvalidArgument, "cli", "bad-key",
                     "key file " + path + " must hold exactly 32 raw bytes");
  }
  return key;
}

int Inspect(const std::string& path, bool as_json) {
  auto src = FileSource::Open(path);
  if (!src.ok()) return ReportError(src.error());
  auto h = sealed::ReadHeaderUnauthenticated(**src);
  if (!h.ok()) return ReportError(h.error());
  if (as_json) {
    json j = HeaderJson(*h);
    j["object_size"] = (*src)->size();
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    PrintHeaderText(*h, (*src)->size());
  }
  return 0;
}

// Seals and unseals random data in memory and checks every property that the
// container promises, so a fresh install can prove its crypto stack works.
int SelfCheck() {
  SecretBuffer key(32);
  if (!RandomBytes(key.data(), key.size()).ok()) return 1;
  Bytes plain(3 * 4096 + 123);
  if (!RandomBytes(plain.data(), plain.size()).ok()) return 1;
  sealed::SealKey sk{&key, "selfcheck", Bytes{1, 2, 3}, {{"purpose", "selfcheck"}}};
  sealed::SealOptions so;
  so.chunk_size = 4096;
  so.threads = 2;
  MemorySource src(plain);
  VectorSink out;
  int failures = 0;
  auto check = [&](const char* what, bool ok) {
    std::printf("  %-44s %s\n", what, ok ? "ok" : "FAILED");
    if (!ok) ++failures;
  };
  std::printf("container self-check\n");
  auto h = sealed::Seal(src, out, sk, {"selfcheck", "memory", ""}, so);
  check("seal 4 chunks with 2 threads", h.ok());
  if (!h.ok()) return ReportError(h.error());
  MemorySource sealed_src(out.bytes());
  auto m = sealed::UnsealToMemfd(sealed_src, key, {2, true, {}});
  bool same = false;
  if (m.ok()) {
    std::ifstream f(m->path(), std::ios::binary);
    std::string back((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    same = back.size() == plain.size() &&
           std::equal(back.begin(), back.end(), plain.begin(),
                      [](char a, uint8_t b) { return static_cast<uint8_t>(a) == b; });
  }
  check("unseal into a sealed memfd, bytes identical", m.ok() && same && m->sealed());
  Bytes tampered = out.bytes();
  tampered[h->chunk_offset(2) + 5] ^= 1;
  MemorySource t_src(tampered);
  auto t = sealed::UnsealToMemfd(t_src, key);
  check("flipped ciphertext bit is rejected", !t.ok() && t.error().reason == "chunk-auth-failed");
  Bytes short_obj(out.bytes().begin(), out.bytes().end() - 4096 - 16);
  MemorySource s_src(short_obj);
  auto s = sealed::UnsealToMemfd(s_src, key);
  check("dropped last chunk is rejected", !s.ok() && s.error().reason == "truncated");
  SecretBuffer wrong(32);
  auto w = sealed::UnsealToMemfd(sealed_src, wrong);
  check("wrong data key is rejected", !w.ok() && w.error().reason == "header-auth-failed");
  std::printf(failures == 0 ? "self-check passed\n" : "self-check FAILED\n");
  return failures == 0 ? 0 : 1;
}

int DevSeal(const std::string& in, const std::string& out_path, const std::string& key_file,
            const std::string& name, uint32_t chunk_size, unsigned threads, bool quiet) {
  auto key = ReadKeyFile(key_file);
  if (!key.ok()) return ReportError(key.error());
  auto src = FileSource::Open(in);
  if (!src.ok()) return ReportError(src.error());
  auto sink = AtomicFileSink::Create(out_path);
  if (!sink.ok()) return ReportError(sink.error());
  sealed::SealKey sk{&*key, "dev:raw-key-file", Bytes{0}, {}};
  sealed::SealOptions so;
  so.chunk_size = chunk_size;
  so.threads = threads;
  so.progress = TerminalProgress(quiet);
  const std::string file_name = in.substr(in.find_last_of('/') + 1);
  auto h =
      sealed::Seal(**src, **sink, sk, {name.empty() ? file_name : name, "file", file_name}, so);
  if (!h.ok()) return ReportError(h.error());
  if (auto c = (*sink)->Commit(); !c.ok()) return ReportError(c.error());
  std::printf("sealed %s -> %s\nsha384 %s\n", in.c_str(), out_path.c_str(),
              ToHex(h->sha384).c_str());
  return 0;
}

int DevVerify(const std::string& in, const std::string& key_file, unsigned threads, bool quiet) {
  auto key = ReadKeyFile(key_file);
  if (!key.ok()) return ReportError(key.error());
  auto src = FileSource::Open(in);
  if (!src.ok()) return ReportError(src.error());
  auto m = sealed::UnsealToMemfd(**src, *key, {threads, true, TerminalProgress(quiet)});
  if (!m.ok()) return ReportError(m.error());
  std::printf("verified: header, every chunk and both digests (%llu bytes, in memory only)\n",
              static_cast<unsigned long long>(m->size()));
  return 0;
}

}  // namespace

void RegisterSealedCommands(CLI::App& app) {
  auto* inspect = app.add_subcommand("inspect", "Print a sealed model's header (no key needed)");
  static std::string inspect_path;
  static bool inspect_json = false;
  inspect->add_option("FILE", inspect_path, "Sealed model file")->required();
  inspect->add_flag("--json", inspect_json, "Print JSON");
  SetAction(inspect, [] { return Inspect(inspect_path, inspect_json); });

  auto* selfcheck = app.add_subcommand("selfcheck", "Check the container crypto on this machine");
  SetAction(selfcheck, [] { return SelfCheck(); });

  auto* dev = app.add_subcommand("dev", "Development tools (raw keys, test models)");
  dev->require_subcommand(1);
  RegisterDevModelCommands(dev);
  RegisterDevDocumentCommand(dev);
  static std::string in, out, key_file, name;
  static uint32_t chunk_size = sealed::kDefaultChunkSize;
  static unsigned threads = 0;
  static bool quiet = false;
  auto* seal = dev->add_subcommand("seal", "Seal a file with a raw 32-byte data key (no KMS)");
  seal->add_option("IN", in, "Plaintext model file")->required()->check(CLI::ExistingFile);
  seal->add_option("OUT", out, "Sealed output file")->required();
  seal->add_option("--data-key-file", key_file, "File with the 32-byte data key")->required();
  seal->add_option("--name", name, "Model name recorded in the header");
  seal->add_option("--chunk-size", chunk_size, "Chunk size in bytes (power of two)");
  seal->add_option("--threads", threads, "Worker threads (0: all cores)");
  seal->add_flag("-q,--quiet", quiet, "No progress output");
  SetAction(seal, [] { return DevSeal(in, out, key_file, name, chunk_size, threads, quiet); });

  auto* verify = dev->add_subcommand("verify", "Unseal into memory with a raw data key and verify");
  verify->add_option("FILE", in, "Sealed model file")->required();
  verify->add_option("--data-key-file", key_file, "File with the 32-byte data key")->required();
  verify->add_option("--threads", threads, "Worker threads (0: all cores)");
  verify->add_flag("-q,--quiet", quiet, "No progress output");
  SetAction(verify, [] { return DevVerify(in, key_file, threads, quiet); });
}

}  // namespace modelseal::cli
