#include "common/meminfo.h"

#include <fstream>
#include <sstream>

namespace modelseal {

std::map<std::string, uint64_t> ParseMemInfo(std::string_view text) {
  std::map<std::string, uint64_t> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) continue;
    std::istringstream rest(line.substr(colon + 1));
    uint64_t value = 0;
    std::string unit;
    if (!(rest >> value)) continue;
    rest >> unit;
    // "kB" is KiB in this file; a few counters (HugePages_Total, ...) have no unit.
    if (unit == "kB") {
      if (value > UINT64_MAX / 1024) continue;
      value *= 1024;
    } else if (!unit.empty()) {
      continue;
    }
    out[line.substr(0, colon)] = value;
  }
  return out;
}

std::map<std::string, uint64_t> ReadMemInfo() {
  std::ifstream f("/proc/meminfo");
  if (!f) return {};
  std::stringstream text;
  text << f.rdbuf();
  return ParseMemInfo(text.str());
}

std::string ParseShmemHugePagePolicy(std::string_view text) {
  const size_t open = text.find('[');
  const size_t close = open == std::string_view::npos ? open : text.find(']', open);
  if (close == std::string_view::npos) return "";
  return std::string(text.substr(open + 1, close - open - 1));
}

std::string ShmemHugePagePolicy() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string line;
  return std::getline(f, line) ? ParseShmemHugePagePolicy(line) : "";
}

}  // namespace modelseal
