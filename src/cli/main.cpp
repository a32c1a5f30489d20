// modelseal: attestation-gated sharing of LLM weights.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "modelseal - share LLM weights between parties who do not trust each other,\n"
      "released only to machines whose TPM attestation matches the owner's policy."};
  app.set_version_flag("--version", std::string("modelseal ") + MODELSEAL_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  modelseal::cli::RegisterSealedCommands(app);
  modelseal::cli::RegisterPcrCommands(app);
  modelseal::cli::RegisterAttestCommands(app);
  modelseal::cli::RegisterServeCommands(app);
  modelseal::cli::RegisterStoreCommands(app);
  modelseal::cli::RegisterKmsCommands(app);
  modelseal::cli::RegisterProductCommands(app);
  modelseal::cli::RegisterUpCommands(app);
  modelseal::cli::RegisterMachineCommands(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
