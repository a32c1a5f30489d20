// Choosing the CPU backend variant (see cpu.h): the parent's side. The child's side
// (rating and probing, run before main) is in cpu_probe.cpp.
#include "engine/cpu.h"

#include <fcntl.h>
#include <ggml-backend.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "engine/cpu_probe.h"

extern char** environ;

#ifndef MODELSEAL_LLAMA_CPU_DIR
#define MODELSEAL_LLAMA_CPU_DIR ""
#endif

namespace modelseal::engine {

namespace {

namespace fs = std::filesystem;

// A probe takes milliseconds; this only bounds a child that hangs.
constexpr auto kChildDeadline = std::chrono::seconds(120);

struct ChildResult {
  bool started = false;
  int status = 0;  // waitpid's
  bool timed_out = false;
  std::string output;  // stdout and stderr together
};

// Runs this executable with `MODELSEAL_CPU_PROBE=<request>` and collects its output.
ChildResult RunChild(const std::string& request) {
  ChildResult r;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    r.output = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    if (std::strncmp(*e, kCpuProbeEnv, std::strlen(kCpuProbeEnv)) == 0 &&
        (*e)[std::strlen(kCpuProbeEnv)] == '=') {
      continue;
    }
    env_store.emplace_back(*e);
  }
  env_store.push_back(std::string(kCpuProbeEnv) + "=" + request);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  char arg0[] = "modelseal-cpu-probe";
  char* argv[] = {arg0, nullptr};

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    r.output = std::string("cannot start the probe: ") + std::strerror(rc);
    return r;
  }
  r.started = true;
  const auto deadline = std::chrono::steady_clock::now() + kChildDeadline;
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    const ssize_t got = read(fds[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the child is done (or closed its output)
    if (r.output.size() < (64u << 10)) r.output.append(buf, static_cast<size_t>(got));
  }
  close(fds[0]);
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

// "killed by signal 4 (SIGILL)", "exited with status 3".
std::string HowItEnded(const ChildResult& r) {
  if (!r.started) return r.output;
  if (r.timed_out) return "did not finish within " + std::to_string(kChildDeadline.count()) + " s";
  if (WIFSIGNALED(r.status)) {
    const int sig = WTERMSIG(r.status);
    const char* abbrev = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) + " (SIG" + (abbrev ? abbrev : "?") + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(r.status));
}

// The last non-empty line of the child's output (its own words on failure).
std::string LastLine(const std::string& out) {
  std::istringstream in(out);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

std::string VariantName(const fs::path& p) {
  std::string stem = p.filename().string();  // libggml-cpu-zen4.so
  const std::string prefix = "libggml-cpu-";
  stem = stem.substr(prefix.size());
  return stem.substr(0, stem.size() - 3);
}

// MODELSEAL_LLAMA_CPU_DIR from the environment, else the build's cache directory
// when it exists, else ../lib/modelseal/lib next to the executable (the package's
// layout, cmake/package.cmake).
std::string CpuDir() {
  if (const char* d = std::getenv("MODELSEAL_LLAMA_CPU_DIR"); d && *d) return d;
  std::error_code ec;
  if (*MODELSEAL_LLAMA_CPU_DIR && fs::is_directory(MODELSEAL_LLAMA_CPU_DIR, ec)) {
    return MODELSEAL_LLAMA_CPU_DIR;
  }
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path packaged = exe.parent_path() / ".." / "lib" / "modelseal" / "lib";
    if (fs::is_directory(packaged, ec)) return fs::weakly_canonical(packaged, ec).string();
  }
  return MODELSEAL_LLAMA_CPU_DIR;
}

CpuBackendStatus LoadCpuBackend() {
  LinkCpuProbe();
  const std::string dir = CpuDir();
  CpuBackendStatus st;
  if (const char* forced = std::getenv("MODELSEAL_CPU_VARIANT"); forced && *forced) {
    st.variant = forced;
    st.path = (fs::path(dir) / ("libggml-cpu-" + st.variant + ".so")).string();
    st.forced = true;
  } else {
    std::string error;
    auto variants = RateCpuVariants(dir, &error);
    const std::string baseline = (fs::path(dir) / "libggml-cpu-x64.so").string();
    std::error_code ec;
    if (variants.empty() && fs::exists(baseline, ec)) {
      // Rating failed: the baseline build runs on every x86-64.
      variants.push_back({"x64", baseline, 1});
      st.skipped.push_back("the others: " + error);
    }
    if (variants.empty()) {
      st.error = error;
      return st;
    }
    auto skipped = std::move(st.skipped);
    st = ChooseCpuVariant(variants, [](const CpuVariant& v, std::string* reason) {
      return ProbeCpuVariant(v.path, reason);
    });
    st.skipped.insert(st.skipped.end(), skipped.begin(), skipped.end());
    if (!st.error.empty()) return st;
  }
  if (ggml_backend_load(st.path.c_str()) == nullptr) {
    st.error = "llama.cpp could not load its CPU backend " + st.path;
    return st;
  }
  st.loaded = true;
  return st;
}

}  // namespace

std::string CpuBackendStatus::Describe() const {
  if (!loaded) return "none (" + error + ")";
  std::string s = variant + " (" + fs::path(path).filename().string();
  if (forced) s += ", chosen by MODELSEAL_CPU_VARIANT";
  for (const auto& k : skipped) s += "; skipped " + k;
  return s + ")";
}

std::vector<CpuVariant> RateCpuVariants(const std::string& dir, std::string* error) {
  std::vector<CpuVariant> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    *error = "no llama.cpp CPU backends in " + dir +
             " (run ./scripts/up, or set MODELSEAL_LLAMA_CPU_DIR)";
    return out;
  }
  const ChildResult r = RunChild(std::string(kCpuProbeRate) + dir);
  if (!r.started || r.timed_out || !WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
    *error = "rating the CPU backends failed: the child " + HowItEnded(r);
    if (const std::string last = LastLine(r.output); !last.empty()) *error += ": " + last;
    return out;
  }
  // Lines "variant <score> <path>".
  std::istringstream in(r.output);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag, path;
    int score = 0;
    if (!(ls >> tag >> score) || tag != "variant") continue;
    std::getline(ls >> std::ws, path);
    out.push_back({VariantName(path), path, score});
  }
  std::stable_sort(out.begin(), out.end(), [](const CpuVariant& a, const CpuVariant& b) {
    return a.score != b.score ? a.score > b.score : a.name < b.name;
  });
  if (out.empty()) *error = "no libggml-cpu-*.so in " + dir;
  return out;
}

bool ProbeCpuVariant(const std::string& path, std::string* reason) {
  const ChildResult r = RunChild(std::string(kCpuProbeRun) + path);
  if (r.started && !r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 &&
      LastLine(r.output) == "ok") {
    return true;
  }
  *reason = "the probe failed (" + HowItEnded(r) + ")";
  if (const std::string last = LastLine(r.output); !last.empty() && last != "ok") {
    *reason += ": " + last;
  }
  return false;
}

CpuBackendStatus ChooseCpuVariant(
    const std::vector<CpuVariant>& variants,
    const std::function<bool(const CpuVariant&, std::string* reason)>& probe) {
  CpuBackendStatus st;
  for (const auto& v : variants) {
    if (v.score <= 0) continue;
    if (v.name != "x64") {
      std::string reason;
      if (!probe(v, &reason)) {
        st.skipped.push_back(v.name + ": " + reason);
        continue;
      }
    }
    st.variant = v.name;
    st.path = v.path;
    return st;
  }
  st.error = "no CPU backend variant works on this CPU";
  for (const auto& k : st.skipped) st.error += "; " + k;
  return st;
}

const CpuBackendStatus& CpuBackend() {
  static std::once_flag once;
  static CpuBackendStatus status;
  std::call_once(once, [] { status = LoadCpuBackend(); });
  return status;
}

}  // namespace modelseal::engine
