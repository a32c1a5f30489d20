#include "tpm/swtpm.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>
#include <vector>

#include "common/io.h"
#include "tpm/tpm.h"

extern char** environ;

namespace modelseal::tpm {

namespace fs = std::filesystem;

namespace {

// Starts argv with stdin from /dev/null and stdout/stderr appended to `log_path`.
// The child gets SIGTERM if the thread that started it dies (PR_SET_PDEATHSIG), so
// a killed `modelseal up` does not leave its TPM running.
Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) return ErrnoError("tpm", "open " + log_path, errno);
  int report[2];  // exec failure (errno) from the child; closed by a successful exec
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(log);
    return ErrnoError("tpm", "pipe", errno);
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(127);  // the parent is already gone
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execvp(args[0], args.data());
    const int e = errno;
    (void)!::write(report[1], &e, sizeof(e));
    _exit(127);
  }
  ::close(log);
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    return ErrnoError("tpm", "fork", errno);
  }
  int child_errno = 0;
  const ssize_t n = ::read(report[0], &child_errno, sizeof(child_errno));
  ::close(report[0]);
  if (n == sizeof(child_errno)) {
    ::waitpid(pid, nullptr, 0);
    if (child_errno == ENOENT) {
      return MakeError(ErrorCode::kUnavailable, "tpm", "swtpm-missing",
                       argv[0] + " is not installed (Debian packages swtpm and swtpm-tools)");
    }
    return ErrnoError("tpm", "start " + argv[0], child_errno);
  }
  return pid;
}

sockaddr_in LoopbackAddr(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// Whether `op(fd, addr)` succeeds on a fresh TCP socket for 127.0.0.1:port.
bool OnFreshSocket(uint16_t port, int (*op)(int, const sockaddr*, socklen_t)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const sockaddr_in a = LoopbackAddr(port);
  const bool ok = op(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

bool PortFree(uint16_t port) {
  return OnFreshSocket(port, ::bind);
}

// An ephemeral port N whose N+1 is also free right now.
uint16_t PickPortPair() {
  for (int i = 0; i < 64; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in a = LoopbackAddr(0);
    socklen_t len = sizeof(a);
    uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    ::close(fd);
    if (port != 0 && port < 65535 && PortFree(port) && PortFree(port + 1)) return port;
  }
  return 0;
}

bool Connectable(uint16_t port) {
  return OnFreshSocket(port, ::connect);
}

}  // namespace

Status CreateSwtpmState(const std::string& state_dir) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec)
    return MakeError(ErrorCode::kIo, "tpm", "io", "create " + state_dir + ": " + ec.message());
  fs::permissions(state_dir, fs::perms::owner_all, ec);
  if (fs::exists(state_dir + "/tpm2-00.permall")) return Ok{};
  const std::string log = state_dir + "/swtpm_setup.log";
  // --config /dev/null: no EK certificates (they need swtpm-localca); the TPM
  // still has its endorsement seed, so EKs can be created from templates.
  MS_ASSIGN_OR_RETURN(pid_t pid, Spawn({"swtpm_setup", "--tpm2", "--tpmstate", state_dir,
                                        "--pcr-banks", "sha256,sha384", "--config", "/dev/null"},
                                       log));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return MakeError(ErrorCode::kInternal, "tpm", "swtpm-setup-failed",
                     "swtpm_setup failed for " + state_dir + "; see " + log);
  }
  return Ok{};
}

Result<std::unique_ptr<Swtpm>> Swtpm::Start(const Options& options) {
  MS_RETURN_IF_ERROR(CreateSwtpmState(options.state_dir));
  const std::string log = options.state_dir + "/swtpm.log";
  for (int attempt = 0; attempt < 5; ++attempt) {
    const uint16_t port = options.port ? options.port : PickPortPair();
    if (port == 0) {
      return MakeError(ErrorCode::kUnavailable, "tpm", "swtpm-start-failed",
                       "no free loopback port pair for swtpm");
    }
    MS_ASSIGN_OR_RETURN(
        pid_t pid,
        Spawn({"swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + options.state_dir, "--server",
               "type=tcp,port=" + std::to_string(port) + ",bindaddr=127.0.0.1", "--ctrl",
               "type=tcp,port=" + std::to_string(port + 1) + ",bindaddr=127.0.0.1", "--flags",
               "not-need-init,startup-clear", "--log", "file=" + log + ",level=1"},
              log));
    std::unique_ptr<Swtpm> s(new Swtpm());
    s->state_dir_ = options.state_dir;
    s->port_ = port;
    s->pid_ = pid;
    // Wait (bounded by attempts, not by a clock) until swtpm listens, or exits.
    for (int i = 0; i < 400; ++i) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        s->pid_ = -1;
        break;  // exited: most likely the port was taken meanwhile; try another
      }
      if (Connectable(port) && Connectable(port + 1)) {
        // Ask the TPM something to be sure TPM2_Startup has completed.
        auto tpm = Tpm::Open({s->tcti()});
        if (tpm.ok() && (*tpm)->ReadBootId().ok()) return s;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (s->pid_ > 0) {
      (void)s->Stop();
      if (options.port) break;
    }
    if (options.port) break;
  }
  return MakeError(ErrorCode::kUnavailable, "tpm", "swtpm-start-failed",
                   "swtpm did not start on loopback; see " + log);
}

std::string Swtpm::tcti() const {
  return "swtpm:host=127.0.0.1,port=" + std::to_string(port_);
}

Status Swtpm::Stop() {
  if (pid_ <= 0) return Ok{};
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Ok{};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return MakeError(ErrorCode::kInternal, "tpm", "swtpm-stop-failed",
                   "swtpm did not exit on SIGTERM and was killed");
}

Swtpm::~Swtpm() {
  (void)Stop();
}

}  // namespace modelseal::tpm
