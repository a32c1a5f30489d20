// Shared plumbing for `modelseal <verb>` subcommands. Each module's verbs live in
// their own cmd_<area>.cpp and are added to the app by a Register* function.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "common/error.h"
#include "common/progress.h"

namespace modelseal::cli {

// Exit statuses: 0 success, 1 operation failed, 2 usage error (CLI11's),
// 3 integrity/attestation/policy check failed, 4 not found.
int ExitCodeFor(const Error& e);

// Prints "modelseal: <module>: <message>" to stderr and returns ExitCodeFor(e).
int ReportError(const Error& e);

// Makes `action` the subcommand's body; its return value becomes the exit status.
void SetAction(CLI::App* sub, std::function<int()> action);

// A progress renderer for the terminal: a redrawn bar on a TTY, a line per 10%
// otherwise. Writes to stderr so stdout stays machine-readable.
ProgressFn TerminalProgress(bool quiet = false);

void RegisterSealedCommands(CLI::App& app);

}  // namespace modelseal::cli
