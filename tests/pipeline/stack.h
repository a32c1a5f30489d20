// An embedded stack in one test process, from real parts: swtpm, the key service
// over HTTP with SigV4 (two principals: owner and consumer), the development
// attestation authority, a local store and the engine.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "attest/attest.h"
#include "engine/engine.h"
#include "kms/client.h"
#include "kms/server.h"
#include "kms/service.h"
#include "pipeline/pipeline.h"
#include "store/store.h"
#include "tests/tpm/swtpm_env.h"

namespace modelseal::testing {

inline constexpr char kOwnerArn[] = "arn:aws:iam::111122223333:role/model-owner";
inline constexpr char kConsumerArn[] = "arn:aws:iam::111122223333:role/model-consumer";

class StackSuite : public SwtpmSuite {
 protected:
  static void SetUpTestSuite() {
    SwtpmSuite::SetUpTestSuite();
    state_ = dir_ + "/state";
    std::filesystem::create_directories(state_);
    auto dev = attest::DevAuthority::Open(state_);
    ASSERT_TRUE(dev.ok()) << dev.error().ToString();
    auto keys = kms::KeyStore::Open(state_ + "/kms/keys", "us-east-1", "111122223333");
    ASSERT_TRUE(keys.ok()) << keys.error().ToString();
    kms::ServiceConfig sc;
    sc.extra_roots.push_back((*dev)->root());
    sc.audit_log_path = state_ + "/kms/audit.log";
    service_ = new kms::KeyService(std::move(*keys), sc);
    kms::ServerConfig server;
    server.credentials = {{"AKIDOWNER", "owner-secret-key", kOwnerArn},
                          {"AKIDCONSUMER", "consumer-secret-key", kConsumerArn}};
    auto started = kms::KeyServer::Start(*service_, server);
    ASSERT_TRUE(started.ok()) << started.error().ToString();
    server_ = started->release();
    owner_ = Client("AKIDOWNER", "owner-secret-key").release();
    consumer_ = Client("AKIDCONSUMER", "consumer-secret-key").release();
    store_dir_ = dir_ + "/store/models";
    store::StoreOptions so;
    so.threads = 2;
    auto st = store::OpenStore("file://" + store_dir_, so);
    ASSERT_TRUE(st.ok()) << st.error().ToString();
    store_ = st->release();
    ASSERT_TRUE(store_->CreateBucket().ok());
    engine_ = new engine::Engine();
    machine_ = new pipeline::Machine({swtpm_->tcti(), state_, attest::AttestSource::kDevelopment});
  }

  static void TearDownTestSuite() {
    delete machine_;
    delete engine_;
    delete store_;
    delete consumer_;
    delete owner_;
    delete server_;
    delete service_;
    machine_ = nullptr;
    SwtpmSuite::TearDownTestSuite();
  }

  static std::unique_ptr<kms::KmsClient> Client(const std::string& akid,
                                                const std::string& secret) {
    kms::ClientConfig cfg;
    cfg.endpoint = "http://127.0.0.1:" + std::to_string(server_->port());
    cfg.region = "us-east-1";
    cfg.credentials = aws::StaticCredentials(aws::Credentials::Make(akid, secret));
    cfg.retry.max_attempts = 1;
    auto c = kms::KmsClient::Create(cfg);
    EXPECT_TRUE(c.ok());
    return c.ok() ? std::move(*c) : nullptr;
  }

  // A new key with modelseal's model-key policy; returns its ARN.
  static std::string NewModelKey() {
    auto key =
        owner_->Call("CreateKey", {{"Description", "model key"},
                                   {"Policy", pipeline::ModelKeyPolicy(kOwnerArn, kConsumerArn)}});
    EXPECT_TRUE(key.ok()) << key.error().ToString();
    return key.ok() ? (*key)["KeyMetadata"]["Arn"].get<std::string>() : "";
  }

  // Adds the attested statement for `pcrs` (index -> hex) to the key's policy.
  static void AllowAttested(const std::string& key, const std::map<uint32_t, std::string>& pcrs) {
    auto current = owner_->Call("GetKeyPolicy", {{"KeyId", key}, {"PolicyName", "default"}});
    ASSERT_TRUE(current.ok()) << current.error().ToString();
    auto updated = pipeline::AllowAttested((*current)["Policy"], kConsumerArn, pcrs);
    ASSERT_TRUE(updated.ok()) << updated.error().ToString();
    auto put = owner_->Call("PutKeyPolicy", {{"KeyId", key}, {"Policy", *updated}});
    ASSERT_TRUE(put.ok()) << put.error().ToString();
  }

  // This machine's SHA-384 PCR `i`, read by tpm2_pcrread (not by modelseal).
  static std::string PcrHex(uint32_t i) {
    auto pcrs = Tpm2PcrRead(swtpm_->tcti(), "sha384");
    return pcrs.count(i) ? ToHex(pcrs[i]) : "";
  }

  static size_t AuditLines(const std::string& needle) {
    std::ifstream f(state_ + "/kms/audit.log");
    std::string line;
    size_t n = 0;
    while (std::getline(f, line)) n += line.find(needle) != std::string::npos;
    return n;
  }

  pipeline::PublishDeps PublishWith() const {
    pipeline::PublishDeps d;
    d.kms = owner_;
    d.store = store_;
    d.work_dir = dir_ + "/work";
    return d;
  }
  pipeline::LoadDeps LoadWith() const {
    pipeline::LoadDeps d;
    d.kms = consumer_;
    d.store = store_;
    d.machine = machine_;
    d.engine = engine_;
    d.principal_arn = kConsumerArn;
    d.engine_options.threads = 1;
    d.engine_options.context_length = 256;
    return d;
  }

  static inline std::string state_, store_dir_;
  static inline kms::KeyService* service_ = nullptr;
  static inline kms::KeyServer* server_ = nullptr;
  static inline kms::KmsClient* owner_ = nullptr;
  static inline kms::KmsClient* consumer_ = nullptr;
  static inline store::ObjectStore* store_ = nullptr;
  static inline engine::Engine* engine_ = nullptr;
  static inline pipeline::Machine* machine_ = nullptr;
};

}  // namespace modelseal::testing
