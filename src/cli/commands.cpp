#include "cli/commands.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/text.h"

namespace modelseal::cli {

std::optional<uint64_t> ParseDecimal(std::string_view text, uint64_t max) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v > max) return std::nullopt;
  return v;
}

std::string StateDir(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* s = std::getenv("MODELSEAL_STATE_DIR"); s && *s) return s;
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return std::string(x) + "/modelseal";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.local/state/modelseal";
}

int ExitCodeFor(const Error& e) {
  switch (e.code) {
    case ErrorCode::kIntegrity:
    case ErrorCode::kPermissionDenied:
      return 3;
    case ErrorCode::kNotFound:
      return 4;
    case ErrorCode::kInvalidArgument:
      return 2;
    default:
      return 1;
  }
}

int ReportError(const Error& e) {
  std::fprintf(stderr, "modelseal: %s\n", e.ToString().c_str());
  return ExitCodeFor(e);
}

void SetAction(CLI::App* sub, std::function<int()> action) {
  sub->callback([action = std::move(action)] {
    const int rc = action();
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

namespace {

struct BarState {
  bool tty = false;
  int last_decile = -1;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw{};
  std::string stage;
};

}  // namespace

ProgressFn TerminalProgress(bool quiet) {
  if (quiet) return {};
  auto st = std::make_shared<BarState>();
  st->tty = isatty(STDERR_FILENO) != 0;
  return [st](const ProgressEvent& ev) {
    const auto now = std::chrono::steady_clock::now();
    if (ev.stage != st->stage) {
      st->stage = ev.stage;
      st->start = now;
      st->last_decile = -1;
    }
    const double frac = ev.total ? static_cast<double>(ev.done) / static_cast<double>(ev.total) : 0;
    const double secs = std::chrono::duration<double>(now - st->start).count();
    const bool bytes = ev.unit == "bytes";
    std::string amount = bytes ? HumanBytes(static_cast<double>(ev.done)) : std::to_string(ev.done);
    if (ev.total)
      amount +=
          " / " + (bytes ? HumanBytes(static_cast<double>(ev.total)) : std::to_string(ev.total));
    std::string rate;
    if (bytes && secs > 0.05) rate = "  " + HumanBytes(static_cast<double>(ev.done) / secs) + "/s";
    if (st->tty) {
      if (!ev.finished && now - st->last_draw < std::chrono::milliseconds(100)) return;
      st->last_draw = now;
      const int width = 30;
      const int filled = static_cast<int>(frac * width);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(width - filled), '-');
      std::fprintf(stderr, "\r%-8s [%s] %5.1f%%  %s%s   ", ev.stage.c_str(), bar.c_str(),
                   frac * 100, amount.c_str(), rate.c_str());
      if (ev.finished) std::fprintf(stderr, "\n");
    } else {
      const int decile = ev.finished ? 10 : static_cast<int>(frac * 10);
      if (decile == st->last_decile) return;
      st->last_decile = decile;
      std::fprintf(stderr, "%s: %d%%  %s%s\n", ev.stage.c_str(), ev.finished ? 100 : decile * 10,
                   amount.c_str(), rate.c_str());
    }
    std::fflush(stderr);
  };
}

}  // namespace modelseal::cli
