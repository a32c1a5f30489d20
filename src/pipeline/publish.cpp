// Publish: source -> data key -> seal while uploading -> manifest last.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "common/bytes.h"
#include "common/ossl.h"
#include "pipeline/internal.h"
#include "pipeline/pipeline.h"

namespace modelseal::pipeline {

namespace {

// A plaintext model file on the owner's side, removed afterwards when it was
// generated for this publish.
struct PlainModel {
  std::string path;
  std::string source;
  std::string file_name;
  bool temporary = false;
  ~PlainModel() {
    if (temporary && !path.empty()) ::unlink(path.c_str());
  }
};

Status CheckGguf(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("pipeline", "open " + path, errno);
  char magic[4] = {};
  const ssize_t n = ::pread(fd, magic, 4, 0);
  ::close(fd);
  if (n != 4 || std::memcmp(magic, "GGUF", 4) != 0) {
    return Fail(ErrorCode::kInvalidArgument, "not-gguf",
                path + " is not a GGUF file (it does not start with \"GGUF\")");
  }
  return Ok{};
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<std::unique_ptr<PlainModel>> PrepareSource(const PublishRequest& r,
                                                  const PublishDeps& deps) {
  auto m = std::make_unique<PlainModel>();
  const PublishSource& s = r.source;
  switch (s.kind) {
    case PublishSource::Kind::kHuggingFace: {
      if (deps.hub == nullptr) {
        return Fail(ErrorCode::kInvalidArgument, "no-hub", "no Hugging Face client configured");
      }
      Report(deps.progress, {"download", 0, 0, "bytes", s.repo + "/" + s.file, false});
      MS_ASSIGN_OR_RETURN(hub::Downloaded d,
                          deps.hub->Download(s.repo, s.revision, s.file, deps.progress));
      m->path = d.path;
      m->source = "hf://" + s.repo + "@" + s.revision + "/" + s.file;
      m->file_name = BaseName(s.file);
      break;
    }
    case PublishSource::Kind::kFile: {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(s.path, ec)) {
        return Fail(ErrorCode::kNotFound, "not-found", s.path + " is not a regular file");
      }
      m->path = s.path;
      m->file_name = s.upload_name.empty() ? BaseName(s.path) : BaseName(s.upload_name);
      m->source = (s.upload_name.empty() ? "file:" : "upload:") + m->file_name;
      break;
    }
    case PublishSource::Kind::kTestModel: {
      if (deps.work_dir.empty()) {
        return Fail(ErrorCode::kInvalidArgument, "no-work-dir",
                    "a generated test model needs a work directory");
      }
      std::error_code ec;
      std::filesystem::create_directories(deps.work_dir, ec);
      uint8_t rnd[8];
      MS_RETURN_IF_ERROR(RandomBytes(rnd, sizeof(rnd)));
      m->path = deps.work_dir + "/" + r.name + "-" + ToHex(rnd) + ".gguf";
      m->temporary = true;
      engine::TestModelOptions o = s.test_model;
      if (!s.marker.empty()) o.name = s.marker;
      Report(deps.progress, {"download", 0, 0, "bytes", "generating a test model", false});
      MS_RETURN_IF_ERROR(engine::WriteTestModel(m->path, o));
      m->source = "test-model:" + o.type + "/" + std::to_string(o.layers) + "x" +
                  std::to_string(o.dim) + "/seed" + std::to_string(o.seed);
      m->file_name = r.name + ".gguf";
      break;
    }
  }
  MS_RETURN_IF_ERROR(CheckGguf(m->path));
  return m;
}

// "<name>.<random>.msealed": each publish writes its own object, so replacing a
// model never leaves a manifest pointing at bytes it does not describe.
Result<std::string> NewObjectKey(const std::string& name) {
  uint8_t rnd[6];
  MS_RETURN_IF_ERROR(RandomBytes(rnd, sizeof(rnd)));
  return name + "." + ToHex(rnd) + kSealedSuffix;
}

}  // namespace

Result<Manifest> Publish(const PublishRequest& r, const PublishDeps& deps) {
  MS_RETURN_IF_ERROR(ValidateModelName(r.name));
  if (deps.kms == nullptr || deps.store == nullptr) {
    return Fail(ErrorCode::kInvalidArgument, "not-configured", "publish needs a KMS and a store");
  }
  if (r.key_id.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "no-key", "publish needs a KMS key id");
  }
  std::optional<Manifest> previous;
  if (auto existing = GetPublished(*deps.store, r.name); existing.ok()) {
    if (!r.replace) {
      return Fail(ErrorCode::kAlreadyExists, "already-published",
                  "a model named '" + r.name + "' is already published in " + deps.store->url() +
                      " (remove it first, or replace it)");
    }
    previous = std::move(*existing);
  } else if (existing.error().reason != "not-published") {
    return AtStep("listing", existing.take_error());
  }

  auto plain = PrepareSource(r, deps);
  if (!plain.ok()) return AtStep("source", plain.take_error());
  if (IsCancelled(deps.cancel)) return Cancelled();
  auto file = FileSource::Open((*plain)->path);
  if (!file.ok()) return AtStep("source", file.take_error());

  Report(deps.progress, {"data-key", 0, 1, "steps", r.key_id, false});
  const sealed::EncryptionContext context = {{kContextModelKey, r.name}};
  auto data_key = deps.kms->GenerateDataKey(r.key_id, context);
  if (!data_key.ok()) return AtStep("data key", data_key.take_error());
  Report(deps.progress, {"data-key", 1, 1, "steps", data_key->key_arn, true});

  sealed::SealKey key{&data_key->plaintext, data_key->key_arn, data_key->ciphertext, context};
  const sealed::ModelInfo info{r.name, (*plain)->source, (*plain)->file_name};
  sealed::SealOptions so;
  so.chunk_size = r.chunk_size;
  so.threads = deps.threads;
  so.progress = deps.progress;
  auto sealed_size = sealed::SealedSize((*file)->size(), key, info, so);
  if (!sealed_size.ok()) return AtStep("seal", sealed_size.take_error());
  auto object = NewObjectKey(r.name);
  if (!object.ok()) return object.take_error();

  sealed::Header header;
  {
    // The writer aborts (no object, no parts) unless it is committed.
    auto writer = deps.store->NewWriter(*object, *sealed_size, deps.progress);
    if (!writer.ok()) return AtStep("upload", writer.take_error());
    CancellableSource source(**file, deps.cancel);
    auto h = sealed::Seal(source, **writer, key, info, so);
    if (!h.ok()) {
      if (IsCancelled(deps.cancel)) return Cancelled();
      return AtStep(h.error().module == "store" ? "upload" : "seal", h.take_error());
    }
    header = std::move(*h);
    if (Status c = (*writer)->Commit(); !c.ok()) return AtStep("upload", c.take_error());
  }
  data_key->plaintext.Clear();

  Manifest m;
  m.name = r.name;
  m.object = *object;
  m.source = (*plain)->source;
  m.file_name = (*plain)->file_name;
  m.plaintext_size = header.plaintext_size;
  m.sealed_size = header.sealed_size();
  m.sha256_hex = ToHex(header.sha256);
  m.sha384_hex = ToHex(header.sha384);
  m.kms_key_id = data_key->key_arn;
  m.encryption_context = context;
  m.container_version = header.format_version;
  m.chunk_size = header.chunk_size;
  m.created_unix_ms = header.created_unix_ms;
  m.pcr15_fresh_boot_hex =
      ToHex(tpm::ReplayPcr15({Bytes(header.sha384.begin(), header.sha384.end())}));

  // The manifest goes last: until it exists, no listing shows the model.
  Report(deps.progress, {"manifest", 0, 1, "steps", ManifestKey(r.name), false});
  const std::string text = ManifestToJson(m).dump(2) + "\n";
  MemorySource manifest_src(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  Status put = IsCancelled(deps.cancel) ? Status(Cancelled())
                                        : deps.store->Put(ManifestKey(r.name), manifest_src);
  if (!put.ok()) {
    (void)deps.store->Delete(*object);  // best effort: nothing refers to it
    return AtStep("manifest", put.take_error());
  }
  if (previous && previous->object != m.object) (void)deps.store->Delete(previous->object);
  Report(deps.progress, {"manifest", 1, 1, "steps", ManifestKey(r.name), true});
  return m;
}

}  // namespace modelseal::pipeline
