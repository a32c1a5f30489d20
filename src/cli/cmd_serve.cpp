// `modelseal serve`: the HTTP API (Ollama- and OpenAI-compatible chat) over the
// models given with --model. Models from plain files are shown as unmeasured.
#include <cstdio>

#include "cli/commands.h"
#include "common/harden.h"
#include "common/log.h"
#include "engine/cpu.h"
#include "engine/engine.h"
#include "engine/gpu.h"
#include "httpd/httpd.h"
#include "server/server.h"

namespace modelseal::cli {

namespace {

struct ServeOptions {
  std::string listen = "127.0.0.1:11434";
  std::vector<std::string> models;
  uint32_t ctx = 0;
  int threads = 0;
  int gpu_layers = -1;
  int parallel = 4;
  size_t max_body = 8u << 20;
  std::string tls_cert, tls_key;
  bool insecure_http = false;
  std::string config;
};

int Serve(const ServeOptions& o) {
  // SIGINT/SIGTERM are taken by sigwait below; blocked before any thread starts.
  httpd::StopSignals stop_signals;
  // Weights (and, for sealed models, keys) live in this process: no core dumps.
  if (auto h = HardenProcess(); !h.ok()) return ReportError(h.error());

  auto addr = httpd::ParseListen(o.listen);
  if (!addr.ok()) return ReportError(addr.error());
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "invalid-argument",
                                 "--tls-cert and --tls-key go together"));
  }
  engine::Engine eng;
  const engine::CpuBackendStatus& cpu = engine::CpuBackend();
  log::Line("modelseal: llama.cpp CPU backend: %s", cpu.Describe().c_str());
  const engine::GpuStatus& gpu = engine::Gpu();
  if (gpu.available) {
    for (const auto& d : gpu.devices) log::Line("modelseal: GPU %s", d.c_str());
  } else {
    log::Line("modelseal: inference on the CPU (%s)", gpu.reason.c_str());
  }
  for (const auto& spec : o.models) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return ReportError(MakeError(ErrorCode::kInvalidArgument, "cli", "invalid-argument",
                                   "--model takes NAME=FILE.gguf, not '" + spec + "'"));
    }
    engine::LoadOptions lo;
    lo.name = spec.substr(0, eq);
    lo.context_length = o.ctx;
    lo.threads = o.threads;
    lo.gpu_layers = o.gpu_layers;
    lo.parallel = o.parallel;
    auto info = eng.LoadFile(spec.substr(eq + 1), lo);
    if (!info.ok()) return ReportError(info.error());
    log::Line(
        "modelseal: loaded %s from %s (%s, %.1f MB, context %u x %d parallel, %d GPU "
        "layers, %d threads) in %.2f s - UNMEASURED (plain file, not measured into "
        "PCR15)",
        info->name.c_str(), info->source.c_str(), info->description.c_str(),
        static_cast<double>(info->size_bytes) / 1e6, info->context_length, info->parallel,
        info->gpu_layers, info->threads, info->load_seconds);
  }
  server::ServerOptions so;
  so.host = addr->first;
  so.port = addr->second;
  so.max_body_bytes = o.max_body;
  if (!o.tls_cert.empty()) so.tls = httpd::TlsFiles{o.tls_cert, o.tls_key};
  so.allow_insecure_http = o.insecure_http;
  server::Server srv(eng, so);
  if (auto st = srv.Start(); !st.ok()) return ReportError(st.error());
  const std::string host = so.host.find(':') != std::string::npos ? "[" + so.host + "]" : so.host;
  std::printf("listening on %s://%s:%d\n", so.tls ? "https" : "http", host.c_str(), srv.port());
  if (!so.tls && !httpd::IsLoopback(so.host)) {
    log::Line(
        "modelseal: WARNING: plain HTTP on a non-loopback address (--insecure-http): "
        "prompts and answers cross the network unencrypted");
  }
  std::fflush(stdout);
  const int sig = stop_signals.Wait();
  log::Line("modelseal: stopping (signal %d)", sig);
  srv.Stop();
  return 0;
}

}  // namespace

void RegisterServeCommands(CLI::App& app) {
  static ServeOptions o;
  auto* serve = app.add_subcommand("serve", "Serve the Ollama- and OpenAI-compatible chat API");
  serve->add_option("--listen", o.listen, "HOST:PORT (port 0: any free port)")
      ->capture_default_str();
  serve->add_option("--model", o.models,
                    "NAME=FILE.gguf: load a plain GGUF file (development; shown as unmeasured)");
  serve->add_option("--ctx", o.ctx, "Context length per request (0: the model's, at most 4096)");
  serve->add_option("--threads", o.threads, "CPU threads for inference (0: all cores)");
  serve
      ->add_option("--parallel", o.parallel,
                   "Requests each model decodes together (continuous batching); each has "
                   "--ctx tokens of its own")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  serve
      ->add_option("--gpu-layers", o.gpu_layers,
                   "Layers to offload when there is a GPU (-1: all, 0: none)")
      ->capture_default_str();
  serve->add_option("--max-body", o.max_body, "Largest accepted request body in bytes")
      ->capture_default_str();
  serve->add_option("--tls-cert", o.tls_cert, "Serve HTTPS with this PEM certificate (chain)");
  serve->add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert");
  serve->add_flag("--insecure-http", o.insecure_http,
                  "Allow plain HTTP on a non-loopback --listen address (refused otherwise)");
  serve->add_option("--config", o.config,
                    "Serve the whole product (API, web UI, chat) on the endpoints of this "
                    "configuration file (docs/config.md); --model and the other options do "
                    "not apply then");
  SetAction(serve, [] { return o.config.empty() ? Serve(o) : ServeProduct(o.config); });
}

}  // namespace modelseal::cli
