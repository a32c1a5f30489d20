#include "server/procs.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <vector>

namespace modelseal::server {
namespace {

struct Proc {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::string name;
  char state = '?';
  long threads = 0;
  uint64_t rss = 0;
  double cpu_seconds = 0;
  double started = 0;
  std::string command;
};

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// /proc/PID/stat (proc(5)): "pid (comm) state ppid ..." where comm may hold spaces
// and parentheses, so the fields after it are found from the last ')'.
bool ReadProc(pid_t pid, Proc* p) {
  const std::string stat = ReadAll("/proc/" + std::to_string(pid) + "/stat");
  const size_t open = stat.find('(');
  const size_t close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  std::istringstream rest(stat.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string tok; rest >> tok;) f.push_back(tok);
  if (f.size() < 22) return false;
  static const long kTicks = sysconf(_SC_CLK_TCK);
  static const long kPage = sysconf(_SC_PAGESIZE);
  p->pid = pid;
  p->name = stat.substr(open + 1, close - open - 1);
  p->state = f[0].empty() ? '?' : f[0][0];
  p->ppid = static_cast<pid_t>(std::stol(f[1]));
  p->cpu_seconds =
      static_cast<double>(std::stoull(f[11]) + std::stoull(f[12])) / static_cast<double>(kTicks);
  p->threads = std::stol(f[17]);
  p->started = static_cast<double>(std::stoull(f[19])) / static_cast<double>(kTicks);
  p->rss = std::stoull(f[21]) * static_cast<uint64_t>(kPage);
  std::string cmd = ReadAll("/proc/" + std::to_string(pid) + "/cmdline");
  while (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
  std::replace(cmd.begin(), cmd.end(), '\0', ' ');
  if (cmd.empty()) cmd = "[" + p->name + "]";  // kernel threads have none
  cmd = RedactSecrets(cmd);
  if (cmd.size() > 300) cmd = cmd.substr(0, 300) + "...";
  p->command = cmd;
  return true;
}

nlohmann::json ToJson(const Proc& p, bool ours) {
  return {{"pid", p.pid},
          {"ppid", p.ppid},
          {"name", p.name},
          {"state", std::string(1, p.state)},
          {"threads", p.threads},
          {"rss", p.rss},
          {"cpu_seconds", p.cpu_seconds},
          {"started", p.started},
          {"command", p.command},
          {"modelseal", ours}};
}

}  // namespace

std::string RedactSecrets(const std::string& line) {
  static const std::regex kSecret(
      R"((ms_(owner|consumer|viewer)_[A-Za-z0-9_-]{20,})|((secret|token|password)\s*[=:]\s*\S+)|)"
      R"((--[A-Za-z0-9_-]*(secret|token|password)[A-Za-z0-9_-]*[= ]\S+))",
      std::regex::icase);
  return std::regex_replace(line, kSecret, "[redacted]");
}

nlohmann::json ProcessList(pid_t root, size_t others) {
  std::map<pid_t, Proc> all;
  if (DIR* d = ::opendir("/proc")) {
    while (const dirent* e = ::readdir(d)) {
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (pid <= 0 || *end != '\0') continue;
      Proc p;
      try {
        if (ReadProc(static_cast<pid_t>(pid), &p)) all[p.pid] = std::move(p);
      } catch (const std::exception&) {
        // Gone between readdir and read, or a field that is not a number.
      }
    }
    ::closedir(d);
  }
  auto ours = [&](pid_t pid) {
    for (int hops = 0; pid > 0 && hops < 64; ++hops) {
      if (pid == root) return true;
      const auto it = all.find(pid);
      if (it == all.end()) return false;
      pid = it->second.ppid;
    }
    return false;
  };
  std::vector<const Proc*> mine, rest;
  for (const auto& [pid, p] : all) (ours(pid) ? mine : rest).push_back(&p);
  auto by_rss = [](const Proc* a, const Proc* b) { return a->rss > b->rss; };
  std::sort(mine.begin(), mine.end(), by_rss);
  std::sort(rest.begin(), rest.end(), by_rss);
  if (rest.size() > others) rest.resize(others);
  nlohmann::json out = nlohmann::json::array();
  for (const Proc* p : mine) out.push_back(ToJson(*p, true));
  for (const Proc* p : rest) out.push_back(ToJson(*p, false));
  return out;
}

}  // namespace modelseal::server
