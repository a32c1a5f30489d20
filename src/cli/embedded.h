// The embedded default stack that `modelseal up` runs under one state directory:
// swtpm (the TPM), the development attestation authority, the built-in key
// service as its own process (`modelseal kms serve`, trusting the development
// root), a local object store, and two KMS identities — the owner and the
// consumer — with different credentials. What it makes is described by a
// pipeline::Config (also written to <state>/modelseal.conf), so the product runs
// on it exactly as it runs against NitroTPM, AWS KMS and S3.
//
// Layout under the state directory (all 0700/0600):
//   tpm/                   swtpm's state (a new TPM boot at every start)
//   dev-authority/         the development CA (see attest.h)
//   kms/credentials.json   the key service's credentials (owner and consumer)
//   kms/clients.ini        the same credentials for the pipelines (AWS format)
//   kms/keys/, audit.log   the key service's store and audit log
//   store/models/          the local object store
//   logs/                  kms.log
//   up.json                the running stack (pid, URL, children); removed at stop
//
// Not thread-safe; one per process. A second stack on the same state directory
// is refused ("another modelseal up ..."). Children get SIGTERM if this process
// dies, and a stack left by a killed process is cleaned up by the next Start.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/error.h"
#include "pipeline/config.h"
#include "tpm/swtpm.h"

namespace modelseal::cli {

inline constexpr char kOwnerPrincipal[] = "arn:aws:iam::111122223333:role/modelseal-owner";
inline constexpr char kConsumerPrincipal[] = "arn:aws:iam::111122223333:role/modelseal-consumer";

struct EmbeddedOptions {
  std::string state_dir;
  std::string listen = "127.0.0.1:8080";  // the product server's address (for the config)
  std::string kms_listen = "127.0.0.1:0";
  std::string web_root;
  // The object store: empty, a directory under the state directory; otherwise
  // s3://bucket/prefix (or file:///dir) with, for S3, an S3-compatible endpoint
  // (empty: AWS) and region. S3 credentials come from the AWS chain (environment,
  // shared files, instance role).
  std::string store_url, store_endpoint, store_region;
};

class EmbeddedStack {
 public:
  static Result<std::unique_ptr<EmbeddedStack>> Start(const EmbeddedOptions& options);
  ~EmbeddedStack();
  EmbeddedStack(const EmbeddedStack&) = delete;
  EmbeddedStack& operator=(const EmbeddedStack&) = delete;

  const pipeline::Config& config() const { return config_; }
  const std::string& kms_endpoint() const { return config_.kms_endpoint; }
  pid_t kms_pid() const { return kms_pid_; }
  pid_t swtpm_pid() const { return swtpm_ ? swtpm_->pid() : -1; }

  // Records the running stack in <state>/up.json (what `down` and the CLI read).
  Status WriteUpFile(const std::string& url) const;
  // Stops the key service and swtpm; removes up.json. Idempotent.
  void Stop();

 private:
  EmbeddedStack() = default;
  Status StartKeyService(const EmbeddedOptions& o);
  Status EnsureDefaultKey();

  std::string state_;
  int lock_fd_ = -1;
  bool locked_ = false;
  std::unique_ptr<tpm::Swtpm> swtpm_;
  pid_t kms_pid_ = -1;
  pipeline::Config config_;
};

// The state directory's running `up`, from up.json: its pid, or -1 when none runs.
pid_t RunningUp(const std::string& state_dir);

}  // namespace modelseal::cli
