#include "cli/embedded.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "attest/attest.h"
#include "common/bytes.h"
#include "common/digest.h"
#include "common/io.h"
#include "common/ossl.h"
#include "common/text.h"
#include "httpd/httpd.h"
#include "kms/client.h"
#include "pipeline/pipeline.h"
#include "tpm/tpm.h"

namespace modelseal::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A measured boot for the development TPM, so that boot PCRs mean something here as
// they do on a NitroTPM instance (where the firmware measures the boot): PCR0 gets a
// fixed "development firmware" event, PCR4 the digest of the modelseal binary that
// runs (the boot loader/UKI's PCR: a rebuilt binary is "other code", and a policy
// pinned to the old value no longer releases the key), PCR7 a fixed "Secure Boot:
// development" event. Every allocated SHA-256/SHA-384 bank gets the event's digest of
// that bank's algorithm. swtpm starts with a new boot, so the values are the same at
// every start of the same binary.
Status MeasureDevelopmentBoot(const std::string& tcti) {
  tpm::TpmOptions to;
  to.tcti = tcti;
  MS_ASSIGN_OR_RETURN(auto t, tpm::Tpm::Open(to));
  const int exe = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (exe < 0) return ErrnoError("up", "open /proc/self/exe to measure it", errno);
  struct stat st {};
  ::fstat(exe, &st);
  auto binary = DigestFd(exe, static_cast<uint64_t>(st.st_size), "up");
  ::close(exe);
  if (!binary.ok()) return binary.take_error();
  auto text = [](std::string_view s) {
    return DigestBytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  };
  const std::vector<std::pair<uint32_t, ModelDigests>> events = {
      {0, text("modelseal development firmware")},
      {4, *binary},
      {7, text("modelseal development: Secure Boot not enforced")},
  };
  MS_ASSIGN_OR_RETURN(auto banks, t->AllocatedBanks());
  for (const tpm::Bank bank : banks) {
    if (bank != tpm::Bank::kSha256 && bank != tpm::Bank::kSha384) continue;
    for (const auto& [index, d] : events) {
      const std::span<const uint8_t> digest = bank == tpm::Bank::kSha256
                                                  ? std::span<const uint8_t>(d.sha256)
                                                  : std::span<const uint8_t>(d.sha384);
      MS_RETURN_IF_ERROR(t->ExtendPcr(index, bank, digest));
    }
  }
  return Ok{};
}

constexpr char kRegion[] = "us-east-1";
constexpr char kAccount[] = "111122223333";

Error StackError(const std::string& reason, const std::string& message) {
  return MakeError(ErrorCode::kUnavailable, "up", reason, message);
}

Status WriteFile0600(const std::string& path, const std::string& text) {
  MS_ASSIGN_OR_RETURN(auto sink, AtomicFileSink::Create(path, 0600));
  MS_RETURN_IF_ERROR(
      sink->WriteAt(0, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  return sink->Commit();
}

Result<std::string> RandomHex(size_t bytes) {
  Bytes b(bytes);
  MS_RETURN_IF_ERROR(RandomBytes(b.data(), b.size()));
  return ToHex(b);
}

// The owner's and the consumer's credentials, made once: the key service's file
// and the same keys for the pipelines in the AWS shared-credentials format.
Status EnsureCredentials(const std::string& kms_dir) {
  const std::string service = kms_dir + "/credentials.json";
  const std::string clients = kms_dir + "/clients.ini";
  if (fs::exists(service) && fs::exists(clients)) return Ok{};
  json creds = json::array();
  std::string ini = "# modelseal up: the embedded key service's credentials (keep private)\n";
  for (const auto& [profile, arn] :
       {std::pair{"owner", kOwnerPrincipal}, std::pair{"consumer", kConsumerPrincipal}}) {
    MS_ASSIGN_OR_RETURN(std::string id, RandomHex(8));
    MS_ASSIGN_OR_RETURN(std::string secret, RandomHex(20));
    for (char& c : id) c = AsciiUpper(c);
    const std::string akid = "AKMS" + id;
    // The consumer may not create keys or aliases (docs/kms.md "Authorization").
    creds.push_back({{"access_key_id", akid},
                     {"secret_access_key", secret},
                     {"principal_arn", arn},
                     {"role", std::string(profile) == "owner" ? "admin" : "consumer"}});
    ini += "\n[" + std::string(profile) + "]\naws_access_key_id = " + akid +
           "\naws_secret_access_key = " + secret + "\n";
  }
  MS_RETURN_IF_ERROR(WriteFile0600(service, json{{"credentials", creds}}.dump(2) + "\n"));
  return WriteFile0600(clients, ini);
}

// A loopback port that was free a moment ago.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool Accepts(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

// Starts argv with stdout and stderr appended to `log`; the child gets SIGTERM
// when this thread dies.
Result<pid_t> SpawnChild(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("up", "open " + log, errno);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(127);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    // Signals blocked by the parent (for sigwait) would stay blocked in the child.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(fd);
  if (pid < 0) return ErrnoError("up", "fork", errno);
  return pid;
}

void Terminate(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

// The helpers of an earlier `up` of this state directory that was killed (-9): they
// got SIGTERM from the kernel when it died (PR_SET_PDEATHSIG) but may still be
// exiting, holding swtpm's state lock. Waits for them (bounded), then kills them.
// Only processes that are still swtpm or modelseal are touched (pids are reused).
void ReapStaleHelpers(const std::string& state_dir) {
  std::ifstream f(state_dir + "/up.json");
  if (!f) return;
  const json j = json::parse(f, nullptr, false);
  if (!j.is_object()) return;
  for (const char* key : {"swtpm_pid", "kms_pid"}) {
    if (!j.contains(key) || !j[key].is_number_integer()) continue;
    const pid_t pid = j[key].get<pid_t>();
    if (pid <= 0) continue;
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name != "swtpm" && name != "modelseal") continue;
    for (int i = 0; i < 500 && ::kill(pid, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
    for (int i = 0; i < 500 && ::kill(pid, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace

pid_t RunningUp(const std::string& state_dir) {
  std::ifstream f(state_dir + "/up.json");
  if (!f) return -1;
  const json j = json::parse(f, nullptr, false);
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer()) return -1;
  const pid_t pid = j["pid"].get<pid_t>();
  return pid > 0 && ::kill(pid, 0) == 0 ? pid : -1;
}

Result<std::unique_ptr<EmbeddedStack>> EmbeddedStack::Start(const EmbeddedOptions& o) {
  std::unique_ptr<EmbeddedStack> s(new EmbeddedStack());
  s->state_ = o.state_dir;
  std::error_code ec;
  for (const char* sub : {"", "/kms", "/logs", "/store/models", "/work"}) {
    fs::create_directories(s->state_ + sub, ec);
    fs::permissions(s->state_ + sub, fs::perms::owner_all, ec);
  }
  const std::string lock = s->state_ + "/up.lock";
  s->lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (s->lock_fd_ < 0) return ErrnoError("up", "open " + lock, errno);
  if (::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const pid_t other = RunningUp(s->state_);
    return MakeError(ErrorCode::kAlreadyExists, "up", "already-running",
                     "another modelseal up is running with " + s->state_ +
                         (other > 0 ? " (pid " + std::to_string(other) + ")" : std::string()) +
                         "; stop it with `modelseal down`");
  }
  s->locked_ = true;
  ReapStaleHelpers(s->state_);

  auto swtpm = tpm::Swtpm::Start({s->state_ + "/tpm", 0});
  if (!swtpm.ok()) return swtpm.take_error();
  s->swtpm_ = std::move(*swtpm);
  MS_RETURN_IF_ERROR(MeasureDevelopmentBoot(s->swtpm_->tcti()));
  MS_RETURN_IF_ERROR(attest::DevAuthority::Open(s->state_));
  MS_RETURN_IF_ERROR(EnsureCredentials(s->state_ + "/kms"));
  MS_RETURN_IF_ERROR(s->StartKeyService(o));

  pipeline::Config& c = s->config_;
  c.listen = o.listen;
  c.web_root = o.web_root;
  c.state_dir = s->state_;
  c.tcti = s->swtpm_->tcti();
  c.attestation = "development";
  c.kms_region = kRegion;
  c.credentials_file = s->state_ + "/kms/clients.ini";
  c.owner_profile = "owner";
  c.consumer_profile = "consumer";
  c.owner_principal = kOwnerPrincipal;
  c.consumer_principal = kConsumerPrincipal;
  if (o.store_url.empty()) {
    c.store_url = "file://" + s->state_ + "/store/models";
    c.store_threads = 2;
  } else {
    c.store_url = o.store_url;
    c.store_endpoint = o.store_endpoint;
    c.store_region = o.store_region;
  }
  MS_RETURN_IF_ERROR(s->EnsureDefaultKey());
  MS_RETURN_IF_ERROR(WriteFile0600(s->state_ + "/modelseal.conf", pipeline::FormatConfig(c)));
  return s;
}

Status EmbeddedStack::StartKeyService(const EmbeddedOptions& o) {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return ErrnoError("up", "find this program", errno);
  self[n] = '\0';
  MS_ASSIGN_OR_RETURN(auto addr, httpd::ParseListen(o.kms_listen));
  const std::string host = addr.first;
  const int wanted = addr.second;
  const std::string log = state_ + "/logs/kms.log";
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = wanted ? wanted : FreePort();
    MS_ASSIGN_OR_RETURN(kms_pid_, SpawnChild({self, "kms", "serve", "--state", state_, "--listen",
                                              host + ":" + std::to_string(port), "--trust-dev-root",
                                              "--credentials", state_ + "/kms/credentials.json",
                                              "--service-region", kRegion, "--account", kAccount},
                                             log));
    // Wait until it accepts connections, or exits (a port taken meanwhile).
    for (int i = 0; i < 3000; ++i) {
      int status = 0;
      if (::waitpid(kms_pid_, &status, WNOHANG) == kms_pid_) {
        kms_pid_ = -1;
        break;
      }
      if (Accepts(host, port)) {
        config_.kms_endpoint = "http://" + host + ":" + std::to_string(port);
        return Ok{};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (kms_pid_ > 0) Terminate(kms_pid_);
    kms_pid_ = -1;
    if (wanted) break;
  }
  return StackError("kms-start-failed", "the key service did not start; see " + log);
}

Status EmbeddedStack::EnsureDefaultKey() {
  auto env = pipeline::OpenEnvironment(config_);
  if (!env.ok()) return env.take_error();
  const std::string path = state_ + "/kms/default-key";
  std::ifstream f(path);
  std::string arn;
  std::getline(f, arn);
  if (!arn.empty() && (*env)->owner_kms->Call("DescribeKey", {{"KeyId", arn}}).ok()) {
    config_.key_id = arn;
    return Ok{};
  }
  auto key = (*env)->owner_kms->Call(
      "CreateKey", {{"Description", "modelseal default model key"},
                    {"Policy", pipeline::ModelKeyPolicy(kOwnerPrincipal, kConsumerPrincipal)}});
  if (!key.ok()) return key.take_error();
  arn = (*key)["KeyMetadata"]["Arn"].get<std::string>();
  // An alias for people; the ARN for the configuration (pinning compares ARNs).
  (void)(*env)->owner_kms->Call("CreateAlias",
                                {{"AliasName", "alias/modelseal"}, {"TargetKeyId", arn}});
  MS_RETURN_IF_ERROR(WriteFile0600(path, arn + "\n"));
  config_.key_id = arn;
  return Ok{};
}

Status EmbeddedStack::WriteUpFile(const std::string& url) const {
  json j = {{"pid", ::getpid()},
            {"url", url},
            {"kms_endpoint", config_.kms_endpoint},
            {"kms_pid", kms_pid_},
            {"tcti", config_.tcti},
            {"swtpm_pid", swtpm_ ? swtpm_->pid() : -1},
            {"config", state_ + "/modelseal.conf"}};
  return WriteFile0600(state_ + "/up.json", j.dump(2) + "\n");
}

void EmbeddedStack::Stop() {
  Terminate(kms_pid_);
  kms_pid_ = -1;
  if (swtpm_) {
    (void)swtpm_->Stop();
    swtpm_.reset();
  }
  if (locked_) ::unlink((state_ + "/up.json").c_str());  // only ever our own
  locked_ = false;
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
}

EmbeddedStack::~EmbeddedStack() {
  Stop();
}

}  // namespace modelseal::cli
