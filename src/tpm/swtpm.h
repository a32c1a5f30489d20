// A software TPM (swtpm) process for tests and the embedded stack.
//
// Start() creates the TPM state at first use (TPM 2.0 with SHA-256 and SHA-384
// PCR banks, via swtpm_setup), starts `swtpm socket` on a free loopback port
// pair (command port N, control port N+1, as the tss2 "swtpm" TCTI expects),
// lets swtpm send TPM2_Startup(CLEAR), and waits until the TPM answers.
// Stop() (or the destructor) terminates it so it saves its state.
//
// Every Start after a Stop is a new boot: PCRs are reset and the TPM's
// resetCount increases. Not thread-safe; one object per process.
// Failure modes (module "tpm"): "swtpm-missing" (kUnavailable) when swtpm or
// swtpm_setup is not installed, "swtpm-setup-failed", "swtpm-start-failed".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"

namespace modelseal::tpm {

class Swtpm {
 public:
  struct Options {
    std::string state_dir;  // holds tpm2-00.permall and swtpm.log
    uint16_t port = 0;      // 0 = pick a free pair
  };
  static Result<std::unique_ptr<Swtpm>> Start(const Options& options);
  ~Swtpm();
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;

  // "swtpm:host=127.0.0.1,port=N"
  std::string tcti() const;
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Terminates swtpm (SIGTERM, then SIGKILL if it does not exit) and waits for it.
  Status Stop();

 private:
  Swtpm() = default;
  std::string state_dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Creates TPM 2.0 state with SHA-256 and SHA-384 banks in `state_dir` unless it
// already holds one.
Status CreateSwtpmState(const std::string& state_dir);

}  // namespace modelseal::tpm
