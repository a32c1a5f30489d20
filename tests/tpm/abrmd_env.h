// A resource-managed connection for tests: tpm2-abrmd (Debian's access broker and
// resource manager) in front of a swtpm, on a private D-Bus session bus. Linux's
// own resource manager (/dev/tpmrm0) needs a kernel TPM device, which swtpm can
// only provide through the tpm_vtpm_proxy module and /dev/vtpmx, not here.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/tpm/swtpm_env.h"

namespace modelseal::testing {

class Abrmd {
 public:
  // Starts dbus-daemon and tpm2-abrmd for the TPM behind `swtpm_tcti`; sets
  // DBUS_SESSION_BUS_ADDRESS for this process and its children. Check ok().
  explicit Abrmd(const std::string& swtpm_tcti, const std::string& dir) {
    int status = -1;
    const std::string out = RunCommand(
        "dbus-daemon --session --fork --nopidfile --print-address=1 --print-pid=1 2>&1", &status);
    const size_t nl = out.find('\n');
    if (status != 0 || nl == std::string::npos) {
      error_ = "dbus-daemon: " + out;
      return;
    }
    address_ = out.substr(0, nl);
    dbus_pid_ = std::atoi(out.c_str() + nl + 1);
    setenv("DBUS_SESSION_BUS_ADDRESS", address_.c_str(), 1);
    bus_name_ = "com.intel.tss2.Tabrmd.modelseal" + std::to_string(getpid());
    const std::string inner = swtpm_tcti.substr(swtpm_tcti.find(':') + 1);
    const std::string pid =
        RunCommand("tpm2-abrmd --session --allow-root --dbus-name=" + bus_name_ +
                       " --tcti=swtpm:" + inner + " >" + dir + "/abrmd.log 2>&1 & echo $!",
                   &status);
    abrmd_pid_ = std::atoi(pid.c_str());
    if (status != 0 || abrmd_pid_ <= 0) {
      error_ = "could not start tpm2-abrmd: " + pid;
      return;
    }
    // It is ready once its name is on the bus: bounded polling.
    for (int i = 0; i < 200; ++i) {
      RunCommand("TPM2TOOLS_TCTI='" + tcti() + "' tpm2_getcap handles-persistent >/dev/null 2>&1",
                 &status);
      if (status == 0) return;
      if (kill(abrmd_pid_, 0) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    error_ = "tpm2-abrmd did not come up: " + RunCommand("cat " + dir + "/abrmd.log");
  }
  ~Abrmd() {
    for (int pid : {abrmd_pid_, dbus_pid_}) {
      if (pid <= 0) continue;
      kill(pid, SIGTERM);
      for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  Abrmd(const Abrmd&) = delete;
  Abrmd& operator=(const Abrmd&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::string tcti() const { return "tabrmd:bus_type=session,bus_name=" + bus_name_; }

 private:
  std::string error_, address_, bus_name_;
  int dbus_pid_ = 0, abrmd_pid_ = 0;
};

}  // namespace modelseal::testing
