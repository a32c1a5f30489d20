// Shared plumbing for `modelseal <verb>` subcommands. Each module's verbs live in
// their own cmd_<area>.cpp and are added to the app by a Register* function.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/progress.h"

namespace modelseal::cli {

// Exit statuses: 0 success, 1 operation failed, 2 usage error or invalid input,
// 3 refused by an integrity, attestation or policy check (a denied key release,
// a digest mismatch), 4 not found.
int ExitCodeFor(const Error& e);

// Prints "modelseal: <module>: <message>" to stderr and returns ExitCodeFor(e).
int ReportError(const Error& e);

// Makes `action` the subcommand's body; its return value becomes the exit status.
void SetAction(CLI::App* sub, std::function<int()> action);

// A progress renderer for the terminal: a redrawn bar on a TTY, a line per 10%
// otherwise. Writes to stderr so stdout stays machine-readable.
ProgressFn TerminalProgress(bool quiet = false);

// A decimal number as a command line gives it: digits only (no sign, space, or "0x"),
// at most `max`. nullopt otherwise.
std::optional<uint64_t> ParseDecimal(std::string_view text, uint64_t max);

// The state directory: `given` when set, else $MODELSEAL_STATE_DIR, else
// $XDG_STATE_HOME/modelseal, else ~/.local/state/modelseal.
std::string StateDir(const std::string& given = "");

void RegisterSealedCommands(CLI::App& app);
void RegisterPcrCommands(CLI::App& app);
void RegisterAttestCommands(CLI::App& app);
// `dev make-test-model` (cmd_model.cpp), added under the `dev` subcommand.
void RegisterDevModelCommands(CLI::App* dev);
void RegisterServeCommands(CLI::App& app);
void RegisterStoreCommands(CLI::App& app);
void RegisterKmsCommands(CLI::App& app);
void RegisterDevDocumentCommand(CLI::App* dev);
// publish, published, load, ps, unload, chat, policy, jobs, token (cmd_product.cpp).
void RegisterProductCommands(CLI::App& app);
// up, down (cmd_up.cpp).
void RegisterUpCommands(CLI::App& app);
void RegisterMachineCommands(CLI::App& app);
// `modelseal serve --config FILE`: the product on the configuration's endpoints.
int ServeProduct(const std::string& config_path);

}  // namespace modelseal::cli
