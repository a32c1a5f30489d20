// Load: header -> attested key release -> download decrypted as it arrives ->
// PCR15 -> engine. Every failure leaves nothing registered and no plaintext.
#include <algorithm>

#include "attest/attest.h"
#include "common/bytes.h"
#include "common/digest.h"
#include "common/meminfo.h"
#include "common/ossl.h"
#include "common/text.h"
#include "kms/errors.h"
#include "pipeline/explain.h"
#include "pipeline/internal.h"
#include "pipeline/pipeline.h"
#include "pipeline/transfer.h"

namespace modelseal::pipeline {

namespace {

// The steps, in the order they run; each reports itself as a progress stage.
constexpr const char* kSteps[] = {"header",   "key-pair", "attestation", "key-release",
                                  "download", "measure",  "engine"};

class Run {
 public:
  Run(const LoadRequest& r, const LoadDeps& d, LoadReport& report)
      : r_(r), d_(d), report_(report) {}

  Result<LoadResult> Sealed();
  Result<LoadResult> Legacy();

 private:
  void Begin(const char* step, const std::string& detail = "") {
    Report(d_.progress, {step, 0, 1, "steps", detail, false});
  }
  void Done(const char* step, const std::string& detail = "") {
    Report(d_.progress, {step, 1, 1, "steps", detail, true});
  }
  Error Failed(const char* step, Error e) {
    report_.failed_step = step;
    Report(d_.progress, {step, 0, 1, "steps", "failed: " + e.message, true});
    return AtStep(step, std::move(e));
  }
  Status CheckCancel(const char* step) {
    if (IsCancelled(d_.cancel)) return Failed(step, Cancelled());
    return Ok{};
  }

  // Key pair, attestation and key release; the key wiped by the caller's scope.
  Result<SecretBuffer> ReleaseKey(std::span<const uint8_t> blob,
                                  const sealed::EncryptionContext& context,
                                  const std::string& key_id);
  // Measures, then hands the memfd to the engine.
  Result<LoadResult> MeasureAndServe(Memfd memfd, const std::string& name,
                                     std::span<const uint8_t> sha384, const std::string& sha256_hex,
                                     const std::string& source);

  const LoadRequest& r_;
  const LoadDeps& d_;
  LoadReport& report_;
};

bool SameKey(const std::string& a, const std::string& b) {
  // An id matches the ARN that ends in "key/<id>".
  auto id = [](const std::string& s) {
    const size_t slash = s.rfind('/');
    return s.rfind("arn:", 0) == 0 && slash != std::string::npos ? s.substr(slash + 1) : s;
  };
  return a == b || id(a) == id(b);
}

Result<SecretBuffer> Run::ReleaseKey(std::span<const uint8_t> blob,
                                     const sealed::EncryptionContext& context,
                                     const std::string& key_id) {
  Begin("key-pair");
  Bytes nonce(32);
  MS_RETURN_IF_ERROR(RandomBytes(nonce.data(), nonce.size()));
  Bytes document;
  Status attest_status;
  const kms::AttestFn attest = [&](std::span<const uint8_t> spki) -> Result<Bytes> {
    Done("key-pair", "RSA-2048, in memory only");
    Begin("attestation");
    attest::DocumentRequest req;
    req.public_key = Bytes(spki.begin(), spki.end());
    req.nonce = nonce;
    auto doc = d_.machine->Attest(req);
    if (!doc.ok()) {
      attest_status = doc.error();
      return doc.take_error();
    }
    report_.development_attestation = doc->development;
    if (auto p = attest::ParseAttestationDocument(doc->document); p.ok()) {
      report_.attestation_module_id = p->doc.module_id;
    }
    document = doc->document;
    Done("attestation", doc->development ? "DEVELOPMENT authority" : "NitroTPM");
    Begin("key-release", key_id);
    return std::move(doc->document);
  };
  auto key = d_.kms->DecryptForRecipient(blob, context, key_id, attest);
  if (!attest_status.ok()) return Failed("attestation", attest_status.take_error());
  if (!key.ok()) {
    if (document.empty()) return Failed("key-pair", key.take_error());
    Error e = key.take_error();
    if (kms::aws_error::TypeOf(e) == kms::aws_error::kAccessDenied) {
      report_.denial = ExplainDenial(*d_.kms, key_id, d_.principal_arn, context, document);
      if (report_.denial) {
        for (const auto& line : report_.denial->lines) e.message += "\n  " + line;
      } else {
        e.message +=
            "\n  (the key policy is not readable with these credentials, so the "
            "refusal cannot be explained condition by condition)";
      }
    }
    return Failed("key-release", std::move(e));
  }
  Done("key-release", key_id);
  return std::move(*key);
}

Result<LoadResult> Run::MeasureAndServe(Memfd memfd, const std::string& name,
                                        std::span<const uint8_t> sha384,
                                        const std::string& sha256_hex, const std::string& source) {
  MS_RETURN_IF_ERROR(CheckCancel("measure"));
  Begin("measure", "PCR15 += SHA-384 " + ToHex(sha384).substr(0, 16) + "...");
  auto entry = d_.machine->Measure(sha384, name);
  if (!entry.ok()) return Failed("measure", entry.take_error());
  Done("measure", "PCR15 = " + ToHex(entry->pcr15_after));

  Begin("engine", name);
  engine::LoadOptions lo = d_.engine_options;
  lo.name = name;
  lo.measurement = MeasurementIssuer::Issue(sha384, entry->pcr15_after);
  lo.sha256_hex = sha256_hex;
  lo.sha384_hex = ToHex(sha384);
  lo.source = source;
  auto info = d_.engine->LoadMemfd(std::move(memfd), lo);
  if (!info.ok()) return Failed("engine", info.take_error());
  Done("engine", name);
  LoadResult out;
  out.model = std::move(*info);
  out.measurement = std::move(*entry);
  out.key_arn = report_.key_arn;
  out.development_attestation = report_.development_attestation;
  return out;
}

Result<LoadResult> Run::Sealed() {
  // -- header: what to ask for, and whether it is the model the consumer agreed to
  Begin("header");
  std::string object = r_.object;
  std::string expected_key = r_.key_id;
  if (!expected_key.empty()) {
    if (Status k = kms::CheckExpectedKeyRef(expected_key); !k.ok()) {
      return Failed("header", k.take_error());
    }
  }
  std::optional<Manifest> manifest;
  if (!r_.published.empty()) {
    auto m = GetPublished(*d_.store, r_.published);
    if (!m.ok()) return Failed("header", m.take_error());
    object = m->object;
    if (expected_key.empty()) expected_key = m->kms_key_id;
    manifest = std::move(*m);
  }
  auto src = StoreSource::Open(*d_.store, object);
  if (!src.ok()) return Failed("header", src.take_error());
  auto header = sealed::ReadHeaderUnauthenticated(**src);
  if (!header.ok()) return Failed("header", header.take_error());
  const std::string sha384_hex = ToHex(header->sha384);
  const std::string want = AsciiLower(r_.expect_sha384_hex);
  if (!want.empty() && want != sha384_hex) {
    return Failed("header", Fail(ErrorCode::kIntegrity, "sha384-mismatch",
                                 "the object holds a model with SHA-384 " + sha384_hex +
                                     ", not the expected " + want + "; no key was requested"));
  }
  if (manifest && (manifest->sha384_hex != sha384_hex ||
                   header->encryption_context != manifest->encryption_context)) {
    return Failed("header", Fail(ErrorCode::kIntegrity, "bad-manifest",
                                 "the manifest of '" + manifest->name +
                                     "' does not describe its sealed object"));
  }
  if (!expected_key.empty() && !SameKey(expected_key, header->kms_key_id)) {
    return Failed("header", Fail(ErrorCode::kPermissionDenied, "key-mismatch",
                                 "the object's data key is under " + header->kms_key_id +
                                     ", not the expected key " + expected_key));
  }
  std::string name = r_.name;
  if (name.empty()) name = manifest ? manifest->name : header->model.name;
  if (Status v = ValidateModelName(name); !v.ok()) return Failed("header", v.take_error());
  if (d_.engine->Get(name).ok()) {
    return Failed("header", Fail(ErrorCode::kAlreadyExists, "already-loaded",
                                 "a model named '" + name + "' is already loaded"));
  }
  if (Status room = CheckRoomForModel(header->plaintext_size, ReadMemInfo()); !room.ok()) {
    return Failed("header", room.take_error());
  }
  report_.key_arn = header->kms_key_id;
  Done("header", sha384_hex);
  MS_RETURN_IF_ERROR(CheckCancel("key-pair"));

  // -- attested key release
  MS_ASSIGN_OR_RETURN(SecretBuffer data_key,
                      ReleaseKey(header->encrypted_data_key, header->encryption_context,
                                 expected_key.empty() ? header->kms_key_id : expected_key));

  // -- download, each chunk decrypted as it arrives
  MS_RETURN_IF_ERROR(CheckCancel("download"));
  Begin("download", object);
  auto reader = sealed::SealedReader::Open(**src, data_key);
  data_key.Clear();
  if (!reader.ok()) return Failed("download", reader.take_error());
  const sealed::Header& h = (*reader)->header();
  auto memfd = Memfd::Create("modelseal:" + name, h.plaintext_size);
  if (!memfd.ok()) return Failed("download", memfd.take_error());
  {
    DecryptingSink sink(**reader, (*src)->head(), *memfd, d_.cancel);
    auto got = d_.store->Download(object, sink, d_.progress);
    Status s = got.ok() ? sink.Finish() : Status(got.error());
    if (s.ok() && got->etag != (*src)->info().etag) {
      s = Fail(ErrorCode::kIntegrity, "changed-during-read",
               "the sealed object changed between the key release and the download");
    }
    if (s.ok() && r_.rehash) {
      auto d = DigestFd(memfd->fd(), memfd->size(), "pipeline");
      if (!d.ok()) {
        s = d.error();
      } else if (d->sha256 != h.sha256 || d->sha384 != h.sha384) {
        s = Fail(ErrorCode::kIntegrity, "digest-mismatch",
                 "the unsealed model's digests differ from its authenticated header");
      }
    }
    if (s.ok()) s = memfd->Seal();
    if (!s.ok()) {
      memfd->Wipe();
      if (IsCancelled(d_.cancel)) return Failed("download", Cancelled());
      return Failed("download", s.take_error());
    }
  }
  Done("download", std::to_string(h.plaintext_size) + " bytes decrypted");
  return MeasureAndServe(std::move(*memfd), name, h.sha384, ToHex(h.sha256),
                         "sealed:" + d_.store->ObjectUrl(object));
}

Result<LoadResult> Run::Legacy() {
  Begin("header", r_.legacy_object);
  if (r_.key_id.empty()) {
    return Failed("header", Fail(ErrorCode::kInvalidArgument, "no-key",
                                 "loading the original sample's layout needs the KMS key id "
                                 "(it has no header naming one)"));
  }
  if (Status k = kms::CheckExpectedKeyRef(r_.key_id); !k.ok()) {
    return Failed("header", k.take_error());
  }
  std::string name = r_.name;
  if (name.empty()) {
    name = r_.legacy_object.substr(r_.legacy_object.rfind('/') + 1);
    if (name.ends_with(".gguf.enc")) name.resize(name.size() - 9);
  }
  if (Status v = ValidateModelName(name); !v.ok()) return Failed("header", v.take_error());
  if (d_.engine->Get(name).ok()) {
    return Failed("header", Fail(ErrorCode::kAlreadyExists, "already-loaded",
                                 "a model named '" + name + "' is already loaded"));
  }
  VectorSink blob;
  if (auto got = d_.store->Download(r_.legacy_datakey, blob); !got.ok()) {
    return Failed("header", got.take_error());
  }
  auto src = StoreSource::Open(*d_.store, r_.legacy_object);
  if (!src.ok()) return Failed("header", src.take_error());
  // The plaintext is the message less its nonce and tag: the object's size bounds it.
  if (Status room = CheckRoomForModel((*src)->size(), ReadMemInfo()); !room.ok()) {
    return Failed("header", room.take_error());
  }
  Done("header", "original sample layout (one AES-256-GCM message)");
  MS_RETURN_IF_ERROR(CheckCancel("key-pair"));

  // The sample's data keys were generated without an encryption context.
  MS_ASSIGN_OR_RETURN(SecretBuffer data_key, ReleaseKey(blob.bytes(), {}, r_.key_id));

  Begin("download", r_.legacy_object);
  auto memfd = sealed::UnsealLegacyToMemfd(**src, data_key, d_.progress);
  data_key.Clear();
  if (!memfd.ok()) return Failed("download", memfd.take_error());
  auto d = DigestFd(memfd->fd(), memfd->size(), "pipeline");
  if (!d.ok()) return Failed("download", d.take_error());
  const std::string want = AsciiLower(r_.expect_sha384_hex);
  if (!want.empty() && want != ToHex(d->sha384)) {
    // This layout has no header to check before the key release: the check runs
    // on the decrypted bytes, before anything is measured or served.
    return Failed("download", Fail(ErrorCode::kIntegrity, "sha384-mismatch",
                                   "the decrypted model has SHA-384 " + ToHex(d->sha384) +
                                       ", not the expected " + want));
  }
  Done("download", std::to_string(memfd->size()) + " bytes decrypted");
  return MeasureAndServe(std::move(*memfd), name, d->sha384, ToHex(d->sha256),
                         "legacy:" + d_.store->ObjectUrl(r_.legacy_object));
}

}  // namespace

Result<LoadResult> Load(const LoadRequest& request, const LoadDeps& deps, LoadReport* report) {
  LoadReport local;
  LoadReport& rep = report ? *report : local;
  rep = LoadReport{};
  if (deps.kms == nullptr || deps.store == nullptr || deps.machine == nullptr ||
      deps.engine == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "not-configured",
                "load needs a KMS, a store, the machine's TPM and an engine");
  }
  const int sources = !request.published.empty() + !request.object.empty() +
                      (!request.legacy_object.empty() || !request.legacy_datakey.empty());
  if (sources != 1 || (request.legacy_object.empty() != request.legacy_datakey.empty())) {
    return Fail(ErrorCode::kInvalidArgument, "bad-request",
                "name exactly one of: a published model, a sealed object, or the original "
                "sample's .gguf.enc and .gguf.datakey.enc pair");
  }
  if (!request.expect_sha384_hex.empty()) {
    auto d = FromHex(request.expect_sha384_hex);
    if (!d || d->size() != 48) {
      return Fail(ErrorCode::kInvalidArgument, "bad-request",
                  "the expected SHA-384 must be 96 hex digits");
    }
  }
  Run run(request, deps, rep);
  return request.legacy_object.empty() ? run.Sealed() : run.Legacy();
}

Status Unload(engine::Engine& engine, Machine* machine, const std::string& name) {
  MS_RETURN_IF_ERROR(engine.Unload(name));
  if (machine != nullptr) {
    auto marked = machine->MarkUnloaded(name);
    // A model loaded before this boot (or from a plain file) has no entry to mark.
    if (!marked.ok() && marked.error().reason != "not-found") return marked.take_error();
  }
  return Ok{};
}

Status CheckRoomForModel(uint64_t bytes, const std::map<std::string, uint64_t>& meminfo) {
  const auto available = meminfo.find("MemAvailable");
  if (available == meminfo.end() || bytes <= available->second) return Ok{};
  auto gib = [](uint64_t b) { return HumanBytes(static_cast<double>(b)); };
  return Fail(ErrorCode::kUnavailable, "not-enough-memory",
              "the model needs " + gib(bytes) + " of memory and " + gib(available->second) +
                  " is available (MemAvailable); unload a model or free memory first; no key "
                  "was requested");
}

std::vector<std::string> LoadSteps() {
  return {std::begin(kSteps), std::end(kSteps)};
}

}  // namespace modelseal::pipeline
