// Publish and load end to end on real parts (swtpm, the key service over HTTP,
// the local store, llama.cpp). Expected digests come from coreutils' sha384sum,
// PCR values from tpm2_pcrread, the sample layout from Python's cryptography.
#include <gtest/gtest.h>

#include <openssl/sha.h>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/bytes.h"
#include "engine/engine.h"
#include "pipeline/internal.h"
#include "tests/pipeline/stack.h"
#include "tpm/pcr15.h"

namespace modelseal::pipeline {
namespace {

using testing::kConsumerArn;
using testing::RunCommand;

namespace fs = std::filesystem;

engine::TestModelOptions TinyModel(uint64_t seed) {
  engine::TestModelOptions o;
  o.layers = 1;
  o.dim = 64;
  o.seed = seed;
  return o;
}

// sha384sum of `path`, lower-case hex.
std::string Sha384Sum(const std::string& path) {
  const std::string out = RunCommand("sha384sum '" + path + "'");
  return out.substr(0, 96);
}

// Every regular file under `dir` that contains `marker`.
std::vector<std::string> FilesContaining(const std::string& dir, const std::string& marker) {
  std::vector<std::string> hits;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::end(it); it.increment(ec)) {
    if (ec || !it->is_regular_file()) continue;
    std::ifstream f(it->path(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(f)), {});
    if (data.find(marker) != std::string::npos) hits.push_back(it->path().string());
  }
  return hits;
}

class PipelineTest : public testing::StackSuite {
 protected:
  // Publishes a generated model named `name` under `key`; returns its manifest.
  Manifest PublishTiny(const std::string& name, const std::string& key, uint64_t seed,
                       const std::string& marker = "") {
    PublishRequest r;
    r.name = name;
    r.key_id = key;
    r.source.kind = PublishSource::Kind::kTestModel;
    r.source.test_model = TinyModel(seed);
    r.source.marker = marker;
    r.chunk_size = 1u << 16;  // many chunks, so ranges of the download split them
    auto m = Publish(r, PublishWith());
    EXPECT_TRUE(m.ok()) << m.error().ToString();
    return m.ok() ? *m : Manifest{};
  }

  // The reference copy of what PublishTiny generated, for sha384sum.
  std::string ReferenceModel(uint64_t seed, const std::string& marker) {
    const std::string path = dir_ + "/ref-" + std::to_string(seed) + ".gguf";
    auto o = TinyModel(seed);
    if (!marker.empty()) o.name = marker;
    EXPECT_TRUE(engine::WriteTestModel(path, o).ok());
    return path;
  }

  void AllowThisMachine(const std::string& key) {
    AllowAttested(key, {{4, PcrHex(4)}, {7, PcrHex(7)}});
  }
};

TEST_F(PipelineTest, PublishSealsUploadsAndWritesTheManifestLast) {
  const std::string key = NewModelKey();
  const std::string marker = "MODELSEAL-MARKER-publish-7f3a";
  const Manifest m = PublishTiny("tiny-pub", key, 11, marker);
  const std::string ref = ReferenceModel(11, marker);
  EXPECT_EQ(m.sha384_hex, Sha384Sum(ref));
  EXPECT_EQ(m.plaintext_size, fs::file_size(ref));
  EXPECT_EQ(m.kms_key_id, key);
  EXPECT_EQ(m.encryption_context.at("modelseal:model"), "tiny-pub");
  EXPECT_EQ(m.sealed_size, fs::file_size(store_dir_ + "/" + m.object));

  auto listing = ListPublished(*store_);
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->models.size(), 1u);
  EXPECT_EQ(listing->models[0].name, "tiny-pub");
  EXPECT_TRUE(listing->orphans.empty());
  // Weights left the owner's side only sealed: the marker is in no stored file, and
  // the generated plaintext was removed from the work directory.
  EXPECT_TRUE(FilesContaining(store_dir_, marker).empty());
  EXPECT_TRUE(FilesContaining(dir_ + "/work", marker).empty());

  // A second publish under the same name is refused unless it replaces.
  PublishRequest again;
  again.name = "tiny-pub";
  again.key_id = key;
  again.source.test_model = TinyModel(12);
  auto refused = Publish(again, PublishWith());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().reason, "already-published");
  again.replace = true;
  auto replaced = Publish(again, PublishWith());
  ASSERT_TRUE(replaced.ok()) << replaced.error().ToString();
  EXPECT_NE(replaced->object, m.object);
  EXPECT_FALSE(fs::exists(store_dir_ + "/" + m.object));  // the replaced object is gone
  ASSERT_TRUE(DeletePublished(*store_, "tiny-pub").ok());
  EXPECT_TRUE(fs::is_empty(store_dir_));
}

TEST_F(PipelineTest, LoadReleasesTheKeyToThisMachineMeasuresAndServes) {
  const std::string key = NewModelKey();
  const Manifest m = PublishTiny("tiny-load", key, 21);
  AllowThisMachine(key);
  const Bytes pcr15_before = testing::Tpm2PcrRead(swtpm_->tcti(), "sha384")[15];

  LoadRequest r;
  r.published = "tiny-load";
  r.expect_sha384_hex = m.sha384_hex;
  r.rehash = true;
  std::vector<std::string> stages;
  LoadDeps deps = LoadWith();
  deps.progress = [&](const ProgressEvent& e) {
    if (stages.empty() || stages.back() != e.stage) stages.push_back(e.stage);
  };
  LoadReport report;
  auto loaded = Load(r, deps, &report);
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  EXPECT_EQ(stages, LoadSteps());
  EXPECT_TRUE(report.development_attestation);
  EXPECT_TRUE(loaded->model.measured);
  EXPECT_EQ(loaded->model.sha384_hex, Sha384Sum(ReferenceModel(21, "")));

  // PCR15 as an independent reader sees it: the old value extended by the model.
  Bytes expect = pcr15_before;
  const Bytes digest = *FromHex(m.sha384_hex);
  expect.insert(expect.end(), digest.begin(), digest.end());
  uint8_t folded[48];
  SHA384(expect.data(), expect.size(), folded);
  const Bytes pcr15 = testing::Tpm2PcrRead(swtpm_->tcti(), "sha384")[15];
  EXPECT_EQ(ToHex(pcr15), ToHex(std::span<const uint8_t>(folded, 48)));
  EXPECT_EQ(loaded->model.pcr15_after_hex, ToHex(pcr15));
  auto log = machine_->Pcr15Log();
  ASSERT_TRUE(log.ok());
  EXPECT_TRUE(log->matches);
  EXPECT_EQ(log->live, pcr15);

  std::string text;
  engine::SamplingOptions so;
  so.temperature = 0;
  so.max_tokens = 4;
  auto chat = engine_->Chat("tiny-load", {{"user", "Hello"}}, so, [&](std::string_view p) {
    text += p;
    return true;
  });
  ASSERT_TRUE(chat.ok()) << chat.error().ToString();
  EXPECT_EQ(chat->completion_tokens, 4);

  // Unload: the model is gone, PCR15 keeps it, and the log says it was unloaded.
  ASSERT_TRUE(Unload(*engine_, machine_, "tiny-load").ok());
  EXPECT_FALSE(engine_->Get("tiny-load").ok());
  EXPECT_EQ(testing::Tpm2PcrRead(swtpm_->tcti(), "sha384")[15], pcr15);
  log = machine_->Pcr15Log();
  ASSERT_TRUE(log.ok());
  ASSERT_FALSE(log->log.entries.empty());
  EXPECT_EQ(log->log.entries.back().model_name, "tiny-load");
  EXPECT_NE(log->log.entries.back().unloaded_ms, 0u);
  EXPECT_TRUE(log->matches);
}

TEST_F(PipelineTest, AWrongPcrIsRefusedAndExplainedPcrByPcr) {
  const std::string key = NewModelKey();
  PublishTiny("tiny-deny", key, 31);
  const std::string wrong(96, 'a');
  AllowAttested(key, {{4, PcrHex(4)}, {7, wrong}});
  const size_t denials = AuditLines("\"deny\"");
  LoadRequest r;
  r.published = "tiny-deny";
  LoadReport report;
  auto loaded = Load(r, LoadWith(), &report);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().reason, "AccessDeniedException");
  EXPECT_EQ(report.failed_step, "key-release");
  ASSERT_TRUE(report.denial.has_value());
  bool explained = false;
  for (const auto& line : report.denial->lines) {
    explained |= line.find("NitroTPMPCR7=" + wrong) != std::string::npos &&
                 line.find("this machine has " + PcrHex(7)) != std::string::npos;
  }
  EXPECT_TRUE(explained) << loaded.error().message;
  EXPECT_NE(loaded.error().message.find("key-release: "), std::string::npos);
  EXPECT_FALSE(engine_->Get("tiny-deny").ok());
  EXPECT_EQ(AuditLines("\"deny\""), denials + 1);
}

TEST_F(PipelineTest, AnUnexpectedModelOrKeyIsRefusedBeforeAnyKeyRequest) {
  const std::string key = NewModelKey();
  const std::string other_key = NewModelKey();
  PublishTiny("tiny-pin", key, 41);
  AllowThisMachine(key);
  const size_t decrypts = AuditLines("Decrypt");
  LoadRequest r;
  r.published = "tiny-pin";
  r.expect_sha384_hex = std::string(96, '0');
  LoadReport report;
  auto loaded = Load(r, LoadWith(), &report);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().reason, "sha384-mismatch");
  EXPECT_EQ(report.failed_step, "header");
  r.expect_sha384_hex.clear();
  r.key_id = other_key;
  loaded = Load(r, LoadWith(), &report);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().reason, "key-mismatch");
  EXPECT_EQ(AuditLines("Decrypt"), decrypts);  // the key service was never asked
  EXPECT_FALSE(engine_->Get("tiny-pin").ok());
}

TEST_F(PipelineTest, ATamperedObjectFailsAtDownloadAndLeavesNothing) {
  const std::string key = NewModelKey();
  const Manifest m = PublishTiny("tiny-tamper", key, 51);
  AllowThisMachine(key);
  {
    std::fstream f(store_dir_ + "/" + m.object, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(m.sealed_size / 2));
    const char c = static_cast<char>(f.get());
    f.seekp(static_cast<std::streamoff>(m.sealed_size / 2));
    f.put(static_cast<char>(c ^ 0x40));
  }
  const Bytes pcr15 = testing::Tpm2PcrRead(swtpm_->tcti(), "sha384")[15];
  LoadRequest r;
  r.published = "tiny-tamper";
  LoadReport report;
  auto loaded = Load(r, LoadWith(), &report);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().reason, "chunk-auth-failed");
  EXPECT_EQ(report.failed_step, "download");
  EXPECT_FALSE(engine_->Get("tiny-tamper").ok());
  EXPECT_EQ(testing::Tpm2PcrRead(swtpm_->tcti(), "sha384")[15], pcr15);  // nothing measured
}

TEST_F(PipelineTest, TheOriginalSamplesLayoutLoads) {
  const std::string key = NewModelKey();
  AllowThisMachine(key);
  // As the sample publishes: a data key without encryption context, the model
  // encrypted as one AES-256-GCM message, the CiphertextBlob beside it.
  auto dk = owner_->GenerateDataKey(key, {});
  ASSERT_TRUE(dk.ok()) << dk.error().ToString();
  const std::string ref = ReferenceModel(61, "");
  int status = -1;
  const std::string out =
      RunCommand("/usr/bin/python3 '" + std::string(MODELSEAL_SOURCE_DIR) +
                     "/tests/pipeline/sample_encrypt.py' " +
                     ToHex(std::span<const uint8_t>(dk->plaintext.data(), dk->plaintext.size())) +
                     " '" + ref + "' '" + store_dir_ + "/sample.gguf.enc' 2>&1",
                 &status);
  ASSERT_EQ(status, 0) << out;
  std::ofstream(store_dir_ + "/sample.gguf.datakey.enc", std::ios::binary)
      .write(reinterpret_cast<const char*>(dk->ciphertext.data()),
             static_cast<std::streamsize>(dk->ciphertext.size()));

  auto listing = ListPublished(*store_);
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->legacy.size(), 1u);
  LoadRequest r;
  r.legacy_object = listing->legacy[0].object;
  r.legacy_datakey = listing->legacy[0].datakey;
  r.key_id = key;
  auto loaded = Load(r, LoadWith());
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();
  EXPECT_EQ(loaded->model.name, "sample");
  EXPECT_EQ(loaded->model.sha384_hex, Sha384Sum(ref));
  EXPECT_TRUE(loaded->model.measured);
  ASSERT_TRUE(Unload(*engine_, machine_, "sample").ok());
  fs::remove(store_dir_ + "/sample.gguf.enc");
  fs::remove(store_dir_ + "/sample.gguf.datakey.enc");
}

TEST_F(PipelineTest, ACancelledPublishLeavesNothing) {
  const std::string key = NewModelKey();
  std::atomic<bool> cancel{false};
  PublishRequest r;
  r.name = "tiny-cancel";
  r.key_id = key;
  r.source.test_model = TinyModel(71);
  r.chunk_size = 1u << 12;
  PublishDeps deps = PublishWith();
  deps.threads = 1;
  deps.cancel = &cancel;
  deps.progress = [&](const ProgressEvent& e) {
    if (e.stage == "seal" && e.done > 0) cancel = true;
  };
  auto m = Publish(r, deps);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().reason, "cancelled");
  auto listing = ListPublished(*store_);
  ASSERT_TRUE(listing.ok());
  for (const auto& model : listing->models) EXPECT_NE(model.name, "tiny-cancel");
  for (const auto& e : fs::recursive_directory_iterator(store_dir_)) {
    EXPECT_EQ(e.path().filename().string().find("tiny-cancel"), std::string::npos) << e.path();
  }
}

TEST_F(PipelineTest, OrphanedSealedObjectsAreListedAndRemovedWithTheirName) {
  const std::string key = NewModelKey();
  const Manifest m = PublishTiny("tiny-orphan", key, 81);
  // A publish killed after its object and before its manifest leaves this.
  fs::copy_file(store_dir_ + "/" + m.object, store_dir_ + "/tiny-orphan.0123456789ab.msealed");
  auto listing = ListPublished(*store_);
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->orphans.size(), 1u);
  EXPECT_EQ(listing->orphans[0].key, "tiny-orphan.0123456789ab.msealed");
  ASSERT_TRUE(DeletePublished(*store_, "tiny-orphan").ok());
  listing = ListPublished(*store_);
  ASSERT_TRUE(listing.ok());
  EXPECT_TRUE(listing->orphans.empty());
  EXPECT_EQ(DeletePublished(*store_, "tiny-orphan").error().reason, "not-published");
}

// Only a Measurement (which only the pipeline makes) marks a model measured, and only
// for the SHA-384 it was measured with; a plain file cannot carry one.
TEST(EngineMeasurement, MarksAModelMeasuredOnlyForItsOwnSha384) {
  const fs::path dir = fs::temp_directory_path() / ("ms-measure-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "m.gguf").string();
  engine::TestModelOptions o;
  o.layers = 1;
  o.dim = 32;
  o.heads = 2;
  o.context_length = 256;
  ASSERT_TRUE(engine::WriteTestModel(path, o).ok());
  std::ifstream f(path, std::ios::binary);
  const Bytes bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  uint8_t sha384[SHA384_DIGEST_LENGTH];
  SHA384(bytes.data(), bytes.size(), sha384);
  auto memfd = [&] {
    auto m = Memfd::Create("measure-test", bytes.size());
    EXPECT_TRUE(m.ok());
    EXPECT_TRUE(m->WriteAt(0, bytes).ok());
    EXPECT_TRUE(m->Seal().ok());
    return std::move(*m);
  };
  const Bytes pcr(48, 0x22);
  engine::Engine eng;
  engine::LoadOptions lo;
  lo.name = "other";
  lo.measurement = MeasurementIssuer::Issue(Bytes(48, 0x11), pcr);
  auto wrong = eng.LoadMemfd(memfd(), lo);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().reason, "measurement-mismatch");
  EXPECT_TRUE(eng.List().empty());

  lo.name = "right";
  lo.measurement = MeasurementIssuer::Issue(sha384, pcr);
  auto right = eng.LoadMemfd(memfd(), lo);
  ASSERT_TRUE(right.ok()) << right.error().ToString();
  EXPECT_TRUE(right->measured);
  EXPECT_EQ(right->pcr15_after_hex, std::string(96, '2'));
  EXPECT_EQ(right->sha384_hex, ToHex(std::span<const uint8_t>(sha384, sizeof(sha384))));

  lo.name = "file";
  auto file = eng.LoadFile(path, lo);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().reason, "invalid-argument");
  fs::remove_all(dir);
}

TEST(PipelineNames, ModelNamesAndManifests) {
  for (const char* good : {"tiny", "llama3:8b", "Qwen2.5-0.5B_q4", "a"}) {
    EXPECT_TRUE(ValidateModelName(good).ok()) << good;
  }
  for (const char* bad : {"", "-x", ".x", "a/b", "a b", "ünï", "x\n"}) {
    EXPECT_EQ(ValidateModelName(bad).error().reason, "invalid-name") << bad;
  }
  EXPECT_EQ(ValidateModelName(std::string(129, 'a')).error().reason, "invalid-name");
  // Hand-written manifest text, as an owner's tool might write it.
  const std::string text = R"({"format": "modelseal-manifest/1", "name": "tiny", "object":
    "tiny.0123456789ab.msealed", "source": "file:tiny.gguf", "file_name": "tiny.gguf",
    "plaintext_size": 10, "sealed_size": 100, "sha256": ")" +
                           std::string(64, 'a') + R"(", "sha384": ")" + std::string(96, 'b') +
                           R"(", "kms_key_id": "arn:aws:kms:us-east-1:111122223333:key/k",
    "encryption_context": {"modelseal:model": "tiny"}, "container_version": 1,
    "chunk_size": 1048576, "created": "2026-11-30T00:00:00Z", "created_unix_ms": 1,
    "pcr15_fresh_boot": ""})";
  auto m = ManifestFromJson(text);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->plaintext_size, 10u);
  EXPECT_EQ(m->encryption_context.at("modelseal:model"), "tiny");
  for (const char* field : {"\"sha384\"", "\"object\"", "\"chunk_size\""}) {
    std::string broken = text;
    broken.replace(broken.find(field), std::strlen(field), "\"other\"");
    EXPECT_EQ(ManifestFromJson(broken).error().reason, "bad-manifest") << field;
  }
}

}  // namespace
}  // namespace modelseal::pipeline
