// Attestation verbs: `attest`, `attest verify`, `attest show`.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "attest/attest.h"
#include "attest/produce.h"
#include "cli/commands.h"
#include "common/io.h"
#include "tpm/tpm.h"

namespace modelseal::cli {

namespace {

using nlohmann::json;

struct AttestArgs {
  std::string tcti, state_dir, source = "auto";
  std::string nonce_hex, user_data_file, public_key_file, out;
  std::string file, at, max_age;
  std::vector<std::string> roots;
  bool json = false;
};

// The whole of `path`, refused at once (before reading) when it is larger than
// `limit` bytes: what it names is small by definition (a document, a key, user data).
Result<Bytes> ReadFile(const std::string& path, size_t limit, const char* what) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return ErrnoError("cli", "open " + path, errno);
  const std::streamoff size = f.tellg();
  if (size < 0 || static_cast<uint64_t>(size) > limit) {
    return MakeError(ErrorCode::kInvalidArgument, "cli", "too-large",
                     path + " is " + std::to_string(size) + " bytes; " + what + " is at most " +
                         std::to_string(limit) + " bytes");
  }
  f.seekg(0);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string Base64(std::span<const uint8_t> b) {
  std::string out(4 * ((b.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), b.data(),
                                static_cast<int>(b.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// A document file holds raw COSE_Sign1 CBOR or its base64 text.
Result<Bytes> ReadDocument(const std::string& path) {
  // Base64 of the largest document, with a line break every 64 characters.
  constexpr size_t kLimit = attest::kMaxDocumentBytes / 3 * 4 * 65 / 64 + 64;
  MS_ASSIGN_OR_RETURN(Bytes raw,
                      ReadFile(path, kLimit, "an attestation document (CBOR or its base64)"));
  if (!raw.empty() && (raw[0] == 0x84 || raw[0] == 0xd2)) return raw;
  std::string text;
  for (uint8_t c : raw) {
    if (!std::isspace(c)) text.push_back(static_cast<char>(c));
  }
  if (text.empty() || text.size() % 4 != 0) {
    return MakeError(ErrorCode::kInvalidArgument, "cli", "bad-document",
                     path + " is neither a CBOR attestation document nor base64 of one");
  }
  Bytes out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const uint8_t*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "cli", "bad-document",
                     path + " is neither a CBOR attestation document nor base64 of one");
  }
  size_t pad = 0;
  while (pad < 2 && text[text.size() - 1 - pad] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

int Produce(const AttestArgs& a) {
  attest::DocumentRequest req;
  if (!a.nonce_hex.empty()) {
    auto n = FromHex(a.nonce_hex);
    if (!n) {
      return ReportError(
          MakeError(ErrorCode::kInvalidArgument, "cli", "bad-nonce", "--nonce must be hex"));
    }
    req.nonce = *n;
  }
  if (!a.user_data_file.empty()) {
    auto b = ReadFile(a.user_data_file, 1024, "user data");
    if (!b.ok()) return ReportError(b.error());
    req.user_data = *b;
  }
  if (!a.public_key_file.empty()) {
    auto b = ReadFile(a.public_key_file, 4096, "a public key file (PEM or DER)");
    if (!b.ok()) return ReportError(b.error());
    req.public_key = *b;
    // A PEM public key goes in as its DER SubjectPublicKeyInfo, which is what
    // KMS expects in public_key; any other file goes in byte for byte.
    const std::string text(b->begin(), b->end());
    if (text.find("-----BEGIN PUBLIC KEY-----") != std::string::npos) {
      BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
      EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
      BIO_free(bio);
      unsigned char* der = nullptr;
      const int n = key ? i2d_PUBKEY(key, &der) : -1;
      EVP_PKEY_free(key);
      if (n <= 0) {
        return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "bad-public-key",
                                     a.public_key_file + " holds an unreadable PEM public key"));
      }
      req.public_key = Bytes(der, der + n);
      OPENSSL_free(der);
    }
  }
  attest::AttestSource src = attest::AttestSource::kAuto;
  if (a.source == "nitrotpm") src = attest::AttestSource::kNitroTpm;
  if (a.source == "development") src = attest::AttestSource::kDevelopment;
  auto tpm = tpm::Tpm::Open({a.tcti});
  if (!tpm.ok()) return ReportError(tpm.error());
  auto r = attest::GetAttestationDocument(**tpm, req, StateDir(a.state_dir), src);
  if (!r.ok()) return ReportError(r.error());
  if (r->development) {
    std::fprintf(stderr,
                 "DEVELOPMENT attestation document: signed by the local development authority "
                 "(%s/dev-authority), not by AWS.\n",
                 StateDir(a.state_dir).c_str());
    if (!r->note.empty()) std::fprintf(stderr, "  (%s)\n", r->note.c_str());
  } else {
    std::fprintf(stderr, "NitroTPM attestation document (signed by the AWS Nitro PKI)\n");
  }
  if (a.out.empty()) {
    std::printf("%s\n", Base64(r->document).c_str());
    return 0;
  }
  auto sink = AtomicFileSink::Create(a.out);
  if (!sink.ok()) return ReportError(sink.error());
  if (auto w = (*sink)->WriteAt(0, r->document); !w.ok()) return ReportError(w.error());
  if (auto c = (*sink)->Commit(); !c.ok()) return ReportError(c.error());
  std::fprintf(stderr, "wrote %zu bytes to %s\n", r->document.size(), a.out.c_str());
  return 0;
}

json CertJson(const Bytes& der) {
  auto ci = attest::DescribeCertificate(der);
  if (!ci.ok()) return {{"error", ci.error().message}};
  return {{"subject", ci->subject},
          {"issuer", ci->issuer},
          {"not_before", attest::FormatTimeMs(ci->not_before_ms)},
          {"not_after", attest::FormatTimeMs(ci->not_after_ms)},
          {"sha256", ci->sha256},
          {"key", ci->key},
          {"ca", ci->is_ca}};
}

json DocJson(const attest::AttestationDocument& d) {
  json pcrs = json::object();
  for (const auto& [i, v] : d.pcrs) pcrs[std::to_string(i)] = ToHex(v);
  json bundle = json::array();
  for (const auto& c : d.cabundle) bundle.push_back(CertJson(c));
  auto opt = [](const std::optional<Bytes>& b) { return b ? json(ToHex(*b)) : json(nullptr); };
  return {{"kind", d.kind == attest::DocumentKind::kNitroTpm ? "nitrotpm" : "nitro-enclave"},
          {"module_id", d.module_id},
          {"claims_development", d.claims_development()},
          {"digest", d.digest},
          {"timestamp_ms", d.timestamp_ms},
          {"timestamp", attest::FormatTimeMs(d.timestamp_ms)},
          {d.kind == attest::DocumentKind::kNitroTpm ? "nitrotpm_pcrs" : "pcrs", pcrs},
          {"certificate", CertJson(d.certificate)},
          {"cabundle", bundle},
          {"public_key", opt(d.public_key)},
          {"user_data", opt(d.user_data)},
          {"nonce", opt(d.nonce)}};
}

void PrintCert(const char* label, const Bytes& der) {
  json c = CertJson(der);
  if (c.contains("error")) {
    std::printf("%s  unreadable: %s\n", label, c["error"].get<std::string>().c_str());
    return;
  }
  std::printf("%s  subject   %s\n", label, c["subject"].get<std::string>().c_str());
  std::printf("    issuer    %s\n", c["issuer"].get<std::string>().c_str());
  std::printf("    valid     %s .. %s\n", c["not_before"].get<std::string>().c_str(),
              c["not_after"].get<std::string>().c_str());
  std::printf("    key       %s%s\n", c["key"].get<std::string>().c_str(),
              c["ca"].get<bool>() ? ", CA" : "");
  std::printf("    sha256    %s\n", c["sha256"].get<std::string>().c_str());
}

void PrintDoc(const attest::AttestationDocument& d) {
  auto opt = [](const std::optional<Bytes>& b) { return b ? ToHex(*b) : std::string("(null)"); };
  std::printf("kind         %s\n",
              d.kind == attest::DocumentKind::kNitroTpm ? "NitroTPM" : "Nitro Enclaves");
  std::printf("module_id    %s%s\n", d.module_id.c_str(),
              d.claims_development() ? "   <- DEVELOPMENT document" : "");
  std::printf("digest       %s\n", d.digest.c_str());
  std::printf("timestamp    %s (%llu)\n", attest::FormatTimeMs(d.timestamp_ms).c_str(),
              static_cast<unsigned long long>(d.timestamp_ms));
  std::printf("%s\n", d.kind == attest::DocumentKind::kNitroTpm ? "nitrotpm_pcrs" : "pcrs");
  for (const auto& [i, v] : d.pcrs) std::printf("  %2u: %s\n", i, ToHex(v).c_str());
  std::printf("public_key   %s\n", opt(d.public_key).c_str());
  std::printf("user_data    %s\n", opt(d.user_data).c_str());
  std::printf("nonce        %s\n", opt(d.nonce).c_str());
  PrintCert("certificate (leaf)\n ", d.certificate);
  for (size_t i = 0; i < d.cabundle.size(); ++i) {
    const std::string label =
        "cabundle[" + std::to_string(i) + "]" + (i == 0 ? " (root)" : "") + "\n ";
    PrintCert(label.c_str(), d.cabundle[i]);
  }
}

int Show(const AttestArgs& a) {
  auto data = ReadDocument(a.file);
  if (!data.ok()) return ReportError(data.error());
  auto p = attest::ParseAttestationDocument(*data);
  if (!p.ok()) return ReportError(p.error());
  if (a.json) {
    json j = DocJson(p->doc);
    j["verified"] = false;
    j["signature"] = ToHex(p->signature);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("attestation document (NOT verified here; use `modelseal attest verify`)\n");
    PrintDoc(p->doc);
    std::printf("signature    %s\n", ToHex(p->signature).c_str());
  }
  return 0;
}

int Verify(const AttestArgs& a) {
  auto data = ReadDocument(a.file);
  if (!data.ok()) return ReportError(data.error());
  attest::VerifyOptions o;
  std::vector<std::string> roots = a.roots.empty() ? std::vector<std::string>{"aws"} : a.roots;
  for (const auto& r : roots) {
    if (r == "aws") {
      auto aws = attest::AwsRoot();
      if (!aws.ok()) return ReportError(aws.error());
      o.roots.push_back(*aws);
    } else {
      const std::string path = r == "dev" ? StateDir(a.state_dir) + "/dev-authority/root.crt" : r;
      auto der = attest::CertificateDerFromFile(path);
      if (!der.ok()) return ReportError(der.error());
      o.roots.push_back({r == "dev" ? "development" : r, *der});
    }
  }
  if (!a.at.empty()) {
    auto t = attest::ParseTime(a.at);
    if (!t.ok()) return ReportError(t.error());
    o.at_ms = *t;
  }
  if (!a.nonce_hex.empty()) {
    auto n = FromHex(a.nonce_hex);
    if (!n) {
      return ReportError(
          MakeError(ErrorCode::kInvalidArgument, "cli", "bad-nonce", "--nonce must be hex"));
    }
    o.expected_nonce = *n;
  }
  if (!a.max_age.empty()) {
    // Seconds, kept small enough that the milliseconds cannot overflow (~58 million years).
    const auto s = ParseDecimal(a.max_age, UINT64_MAX / 1000);
    if (!s) {
      return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "bad-max-age",
                                   "--max-age is a number of seconds, got \"" + a.max_age + "\""));
    }
    o.max_age_ms = *s * 1000;
  }
  const auto r = attest::VerifyAttestationDocument(*data, o);
  if (a.json) {
    json checks = json::array();
    for (const auto& c : r.checks) {
      checks.push_back(
          {{"name", c.name}, {"outcome", attest::OutcomeName(c.outcome)}, {"detail", c.detail}});
    }
    json j = {{"verified", r.verified},
              {"development", r.development},
              {"root", r.root_name},
              {"at", attest::FormatTimeMs(r.at_ms)},
              {"checks", checks}};
    if (r.document) j["document"] = DocJson(*r.document);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (const auto& c : r.checks) {
      std::printf("  %-10s %-13s %s\n", c.name.c_str(),
                  std::string(attest::OutcomeName(c.outcome)).c_str(), c.detail.c_str());
    }
    if (r.verified) {
      std::printf("VERIFIED%s (root '%s', at %s)\n",
                  r.development ? " as a DEVELOPMENT document, not AWS-signed" : "",
                  r.root_name.c_str(), attest::FormatTimeMs(r.at_ms).c_str());
    } else {
      std::printf("NOT VERIFIED\n");
    }
  }
  if (!r.verified) {
    std::fprintf(stderr, "modelseal: %s\n", r.status().error().ToString().c_str());
    return ExitCodeFor(r.status().error());
  }
  return 0;
}

}  // namespace

void RegisterAttestCommands(CLI::App& app) {
  static AttestArgs args;
  auto* att = app.add_subcommand(
      "attest",
      "Get this machine's attestation document (NitroTPM, else the DEVELOPMENT authority)");
  att->require_subcommand(0, 1);
  att->add_option("--nonce", args.nonce_hex, "Nonce to include (hex)");
  att->add_option("--user-data", args.user_data_file, "File whose bytes go into user_data")
      ->check(CLI::ExistingFile);
  att->add_option("--public-key", args.public_key_file,
                  "File for public_key: a PEM public key goes in as DER, anything else as is")
      ->check(CLI::ExistingFile);
  att->add_option("-o,--output", args.out,
                  "Write the CBOR document here (default: base64 to stdout)");
  att->add_option("--source", args.source, "auto, nitrotpm or development")
      ->check(CLI::IsMember({"auto", "nitrotpm", "development"}));
  att->add_option(
      "--tcti", args.tcti,
      "tss2 TCTI (default $MODELSEAL_TPM_TCTI, else device:$TPM_DEVICE, else device:/dev/tpm0)");
  att->add_option("--state-dir", args.state_dir,
                  "State directory (default $MODELSEAL_STATE_DIR or ~/.local/state/modelseal)");

  auto* verify =
      att->add_subcommand("verify", "Verify a document; exit status 0 only when verified");
  verify->add_option("FILE", args.file, "Document (CBOR or base64)")->required();
  verify->add_option("--root", args.roots,
                     "Trusted root: 'aws' (default, built in and pinned), 'dev' (this machine's "
                     "development authority) or a PEM/DER file; repeatable");
  verify->add_option("--at", args.at,
                     "Verification time: RFC 3339 or ms since the epoch (default now)");
  verify->add_option("--nonce", args.nonce_hex, "Expected nonce (hex)");
  verify->add_option("--max-age", args.max_age, "Maximum age of the document in seconds");
  verify->add_option("--state-dir", args.state_dir, "State directory (for --root dev)");
  verify->add_flag("--json", args.json, "Print JSON");
  SetAction(verify, [] { return Verify(args); });

  auto* show =
      att->add_subcommand("show", "Print every field of a document (without verifying it)");
  show->add_option("FILE", args.file, "Document (CBOR or base64)")->required();
  show->add_flag("--json", args.json, "Print JSON");
  SetAction(show, [] { return Show(args); });

  SetAction(att, [att] {
    if (!att->get_subcommands().empty()) return 0;  // `attest verify|show` ran instead
    return Produce(args);
  });
}

}  // namespace modelseal::cli
