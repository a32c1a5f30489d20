// Where the product's parts are: one configuration file points the same binary
// at the embedded stack or at NitroTPM, AWS KMS, S3 and IMDS (docs/config.md).
//
// Format: INI. `[section]` headers, `key = value` lines, `#` or `;` comments,
// blank lines. Every key is known; an unknown section or key, a repeated key or
// a malformed value is refused with the file, the line and the key named
// ("modelseal.conf:12: [kms] endpoint: not an http(s) URL"). Nothing is read
// from the environment here: values not set keep the defaults below, and the
// AWS clients then resolve what is unset (region, credentials) as the AWS SDKs do.
//
// Thread-safety: a Config is a plain value. OpenEnvironment makes clients that
// are themselves thread-safe. Errors: module "config", reason "bad-config".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "hub/hub.h"
#include "kms/client.h"
#include "pipeline/pipeline.h"
#include "store/store.h"

namespace modelseal::pipeline {

struct Config {
  std::string path;  // where it was read from ("" when built in code)

  // [server]
  std::string listen = "127.0.0.1:8080";
  std::string tls_cert, tls_key;
  bool insecure_http = false;  // allow a non-loopback address without TLS
  std::string web_root;        // the web UI's built assets ("" : none)

  // [state]
  std::string state_dir;  // "" : cli::StateDir()

  // [tpm]
  std::string tcti;                  // "" : tpm::DefaultTcti()
  std::string attestation = "auto";  // auto | nitrotpm | development

  // [kms]
  std::string kms_endpoint;  // "" : AWS KMS of the region
  std::string kms_region;    // "" : the AWS SDK chain
  std::string key_id;        // the default key for publish and load
  // Credentials: a file in the AWS shared-credentials format and its profiles, or
  // (no file) AWS profiles by name, or (neither) the default chain, e.g. the
  // instance role on EC2.
  std::string credentials_file;
  std::string owner_profile;
  std::string consumer_profile;
  std::string owner_principal;     // shown in policies the UI builds
  std::string consumer_principal;  // explains denials; the default attested principal

  // [store]
  std::string store_url;  // s3://bucket/prefix or file:///dir
  std::string store_endpoint, store_region;
  unsigned store_threads = 8;

  // [hub]
  std::string hub_endpoint;  // "" : $HF_ENDPOINT or https://huggingface.co
  std::string hub_cache;

  // [engine]
  int threads = 0;
  uint32_t context = 0;
  int gpu_layers = -1;
};

Result<Config> ParseConfig(std::string_view text, const std::string& path = "config");
Result<Config> LoadConfig(const std::string& path);
// The file text of `c` (what `modelseal up` writes for its embedded stack).
std::string FormatConfig(const Config& c);

// The clients one product process uses, made from a Config.
struct Environment {
  Config config;
  std::unique_ptr<kms::KmsClient> owner_kms;  // null when no owner credentials are set
  std::unique_ptr<kms::KmsClient> consumer_kms;
  std::unique_ptr<store::ObjectStore> store;  // null when no store is set
  std::unique_ptr<hub::HubClient> hub;
  std::unique_ptr<Machine> machine;
};
struct OpenOptions {
  // A long-running loader (the server): the consumer's key client makes each next
  // ephemeral recipient key ahead (kms::ClientConfig::prepare_recipient_key).
  bool serving = false;
};
Result<std::unique_ptr<Environment>> OpenEnvironment(const Config& config,
                                                     const OpenOptions& options = {});

}  // namespace modelseal::pipeline
