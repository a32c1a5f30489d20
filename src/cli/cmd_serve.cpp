// `modelseal serve`: the HTTP API (Ollama- and OpenAI-compatible chat) over the
// models given with --model. Models from plain files are shown as unmeasured.
#include <pthread.h>
#include <signal.h>

#include <cstdio>

#include "cli/commands.h"
#include "engine/engine.h"
#include "server/server.h"

namespace modelseal::cli {

namespace {

int Serve(const std::string& listen, const std::vector<std::string>& models, uint32_t ctx,
          int threads, size_t max_body) {
  // SIGINT/SIGTERM are taken by sigwait below; block them before any thread starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto addr = server::ParseListen(listen);
  if (!addr.ok()) return ReportError(addr.error());
  engine::Engine eng;
  for (const auto& spec : models) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "invalid-argument",
                                   "--model takes NAME=FILE.gguf, not '" + spec + "'"));
    }
    engine::LoadOptions lo;
    lo.name = spec.substr(0, eq);
    lo.context_length = ctx;
    lo.threads = threads;
    auto info = eng.LoadFile(spec.substr(eq + 1), lo);
    if (!info.ok()) return ReportError(info.error());
    std::fprintf(stderr,
                 "modelseal: loaded %s from %s (%s, %.1f MB, context %u) in %.2f s - UNMEASURED "
                 "(plain file, not measured into PCR15)\n",
                 info->name.c_str(), info->source.c_str(), info->description.c_str(),
                 static_cast<double>(info->size_bytes) / 1e6, info->context_length,
                 info->load_seconds);
  }
  server::ServerOptions so;
  so.host = addr->first;
  so.port = addr->second;
  so.max_body_bytes = max_body;
  server::Server srv(eng, so);
  if (auto st = srv.Start(); !st.ok()) return ReportError(st.error());
  std::printf("listening on http://%s:%d\n", so.host.c_str(), srv.port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "modelseal: stopping (signal %d)\n", sig);
  srv.Stop();
  return 0;
}

}  // namespace

void RegisterServeCommands(CLI::App& app) {
  static std::string listen = "127.0.0.1:11434";
  static std::vector<std::string> models;
  static uint32_t ctx = 0;
  static int threads = 0;
  static size_t max_body = 8u << 20;
  auto* serve = app.add_subcommand("serve", "Serve the Ollama- and OpenAI-compatible chat API");
  serve->add_option("--listen", listen, "HOST:PORT (port 0: any free port)")->capture_default_str();
  serve->add_option("--model", models,
                    "NAME=FILE.gguf: load a plain GGUF file (development; shown as unmeasured)");
  serve->add_option("--ctx", ctx, "Context length per request (0: the model's, at most 4096)");
  serve->add_option("--threads", threads, "Threads per request (0: all cores)");
  serve->add_option("--max-body", max_body, "Largest accepted request body in bytes")
      ->capture_default_str();
  SetAction(serve, [] { return Serve(listen, models, ctx, threads, max_body); });
}

}  // namespace modelseal::cli
