// `modelseal up` / `down`: the whole embedded stack under one state directory,
// and `modelseal serve --config FILE`: the product on real endpoints.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "cli/embedded.h"
#include "common/harden.h"
#include "common/log.h"
#include "engine/cpu.h"
#include "engine/engine.h"
#include "engine/gpu.h"
#include "httpd/httpd.h"
#include "pipeline/config.h"
#include "server/product.h"
#include "server/server.h"
#include "server/tokens.h"

namespace modelseal::cli {

namespace {

struct UpArgs {
  std::string state;
  std::string listen = "127.0.0.1:8080";
  std::string kms_listen = "127.0.0.1:0";
  std::string web_root;
  std::string tls_cert, tls_key;
  bool insecure_http = false;
  bool no_resume = false;
  int threads = 0;
  uint32_t ctx = 0;
  std::string store, store_endpoint, store_region;
};

UpArgs& Args() {
  static UpArgs a;
  return a;
}

// The built web UI: --web-root, else web/dist next to the source tree the binary
// was built from, else the packaged location.
std::string WebRoot(const std::string& given) {
  if (!given.empty()) return given;
  for (const std::string& dir :
       {std::string(MODELSEAL_SOURCE_DIR) + "/web/dist", std::string("/usr/share/modelseal/web")}) {
    if (::access((dir + "/index.html").c_str(), R_OK) == 0) return dir;
  }
  return "";
}

void PrintBanner(const std::string& url, const std::string& state,
                 const std::map<server::Role, std::string>& created, bool web,
                 const pipeline::Config& config, bool embedded) {
  std::printf("modelseal is up: %s\n", url.c_str());
  if (embedded) {
    std::printf("  state      %s (configuration: %s/modelseal.conf)\n", state.c_str(),
                state.c_str());
    std::printf(
        "  TPM        swtpm (a new boot at every start); attestation: DEVELOPMENT authority\n");
  } else {
    std::printf("  state      %s (configuration: %s)\n", state.c_str(), config.path.c_str());
    std::printf("  TPM        %s; attestation: %s\n",
                config.tcti.empty() ? "the default device" : config.tcti.c_str(),
                config.attestation.c_str());
  }
  if (web) std::printf("  web UI     %s/  (paste a token below when it asks)\n", url.c_str());
  if (!created.empty()) {
    std::printf("\nAPI tokens (shown once; `modelseal token show` prints the local copies):\n");
    for (const auto& [role, token] : created) {
      std::printf("  %-9s %s\n", server::RoleName(role).c_str(), token.c_str());
    }
  } else {
    std::printf("  tokens     `modelseal token show` (local copies in %s/tokens.local.json)\n",
                state.c_str());
  }
  std::printf(
      "\nTry it:\n"
      "  modelseal publish tiny --test-model        # owner: seal and publish a test model\n"
      "  modelseal policy allow-attested --pcr 4 --pcr 7   # owner: release only to this machine\n"
      "  modelseal load tiny                        # consumer: attest, release, unseal, measure\n"
      "  modelseal chat tiny \"Hello\"                # consumer: chat (Ollama API at %s/api)\n"
      "  modelseal down                             # stop everything\n",
      url.c_str());
  std::fflush(stdout);
}

// Runs the product server over `env` until a stop signal; used by up and serve.
int RunProduct(pipeline::Environment& env, const std::string& state, const std::string& web_root,
               httpd::StopSignals& signals, EmbeddedStack* stack) {
  engine::Engine eng;
  const engine::GpuStatus& gpu = engine::Gpu();
  if (!gpu.available) {
    log::Line("modelseal: inference on the CPU (%s)", gpu.reason.c_str());
  }
  log::Line("modelseal: llama.cpp CPU backend: %s", engine::CpuBackend().Describe().c_str());
  std::map<server::Role, std::string> created;
  auto tokens = server::TokenStore::Open(state, &created);
  if (!tokens.ok()) return ReportError(tokens.error());
  server::ProductOptions po;
  po.state_dir = state;
  po.work_dir = state + "/work";
  po.version = MODELSEAL_VERSION;
  po.resume_loads = !Args().no_resume;
  server::Product product(env, eng, po);

  auto addr = server::ParseListen(env.config.listen);
  if (!addr.ok()) return ReportError(addr.error());
  server::ServerOptions so;
  so.host = addr->first;
  so.port = addr->second;
  so.allow_insecure_http = env.config.insecure_http;
  if (!env.config.tls_cert.empty()) {
    so.tls = httpd::TlsFiles{env.config.tls_cert, env.config.tls_key};
  }
  so.product = &product;
  so.tokens = tokens->get();
  so.web_root = web_root;
  so.spool_dir = po.work_dir;
  server::Server srv(eng, so);
  if (auto st = srv.Start(); !st.ok()) return ReportError(st.error());
  const std::string url = std::string(so.tls ? "https" : "http") + "://" +
                          (so.host.find(':') != std::string::npos ? "[" + so.host + "]" : so.host) +
                          ":" + std::to_string(srv.port());
  if (stack) {
    if (auto s = stack->WriteUpFile(url); !s.ok()) return ReportError(s.error());
  }
  PrintBanner(url, state, created, !web_root.empty(), env.config, stack != nullptr);
  for (const auto& job : product.ResumeLoads()) {
    log::Line("modelseal: loading %s again after the restart (job %s)",
              job->Summary()["request"].value("name", "").c_str(), job->id().c_str());
  }
  const int sig = signals.Wait();
  log::Line("modelseal: stopping (signal %d)", sig);
  srv.Stop();
  return 0;
}

int Up() {
  UpArgs& a = Args();
  httpd::StopSignals signals;  // before any thread starts
  // Plaintext weights and released data keys live in this process: no core dumps.
  if (auto h = HardenProcess(); !h.ok()) return ReportError(h.error());
  server::ConfigureMalloc();  // before any thread starts
  if (a.store.empty() && (!a.store_endpoint.empty() || !a.store_region.empty())) {
    return ReportError(MakeError(ErrorCode::kInvalidArgument, "up", "invalid-argument",
                                 "--store-endpoint and --store-region need --store"));
  }
  EmbeddedOptions eo;
  eo.state_dir = StateDir(a.state);
  eo.listen = a.listen;
  eo.kms_listen = a.kms_listen;
  eo.web_root = WebRoot(a.web_root);
  eo.store_url = a.store;
  eo.store_endpoint = a.store_endpoint;
  eo.store_region = a.store_region;
  auto stack = EmbeddedStack::Start(eo);
  if (!stack.ok()) return ReportError(stack.error());
  pipeline::Config config = (*stack)->config();
  config.tls_cert = a.tls_cert;
  config.tls_key = a.tls_key;
  config.insecure_http = a.insecure_http;
  config.threads = a.threads;
  config.context = a.ctx;
  auto env = pipeline::OpenEnvironment(config, {.serving = true});
  if (!env.ok()) return ReportError(env.error());
  const int rc = RunProduct(**env, eo.state_dir, eo.web_root, signals, stack->get());
  (*stack)->Stop();
  return rc;
}

int Down() {
  const std::string state = StateDir(Args().state);
  const pid_t pid = RunningUp(state);
  if (pid <= 0) {
    std::fprintf(stderr, "modelseal: no modelseal up is running with %s\n", state.c_str());
    return 0;
  }
  ::kill(pid, SIGTERM);
  // Bounded: the stack drains its requests, stops the key service and the TPM.
  for (int i = 0; i < 600; ++i) {
    if (::kill(pid, 0) != 0) {
      std::printf("stopped modelseal up (pid %d)\n", pid);
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ReportError(
      MakeError(ErrorCode::kUnavailable, "down", "still-running",
                "modelseal up (pid " + std::to_string(pid) + ") did not stop within 30 s"));
}

}  // namespace

int ServeProduct(const std::string& config_path) {
  httpd::StopSignals signals;  // before any thread starts
  if (auto h = HardenProcess(); !h.ok()) return ReportError(h.error());
  server::ConfigureMalloc();
  auto config = pipeline::LoadConfig(config_path);
  if (!config.ok()) return ReportError(config.error());
  const std::string state = StateDir(config->state_dir);
  auto env = pipeline::OpenEnvironment(*config, {.serving = true});
  if (!env.ok()) return ReportError(env.error());
  return RunProduct(**env, state, WebRoot(config->web_root), signals, nullptr);
}

void RegisterUpCommands(CLI::App& app) {
  UpArgs& a = Args();
  auto* up = app.add_subcommand(
      "up",
      "Run the whole embedded stack (swtpm, key service, store, attestation authority, "
      "engine, API and web UI) until Ctrl-C or `modelseal down`");
  up->add_option("--state", a.state, "State directory (default: $MODELSEAL_STATE_DIR, ...)");
  up->add_option("--listen", a.listen, "HOST:PORT of the API and UI")->capture_default_str();
  up->add_option("--kms-listen", a.kms_listen, "HOST:PORT of the key service (0: any port)")
      ->capture_default_str();
  up->add_option("--web-root", a.web_root, "Directory of the built web UI");
  up->add_option("--tls-cert", a.tls_cert, "Serve HTTPS with this certificate (PEM)");
  up->add_option("--tls-key", a.tls_key, "... and this private key (PEM)");
  up->add_flag("--insecure-http", a.insecure_http,
               "Allow plain HTTP on a non-loopback address (tokens travel in clear)");
  up->add_flag("--no-resume", a.no_resume, "Do not load again what was loaded before a restart");
  up->add_option("--threads", a.threads, "CPU threads for inference (0: all cores)");
  up->add_option("--ctx", a.ctx, "Context length per request (0: the model's, at most 4096)");
  up->add_option("--store", a.store,
                 "Object store instead of <state>/store/models: s3://bucket/prefix (credentials "
                 "from the AWS chain) or file:///directory");
  up->add_option("--store-endpoint", a.store_endpoint,
                 "S3-compatible endpoint for --store (default: AWS S3)");
  up->add_option("--store-region", a.store_region, "Region of --store's bucket");
  SetAction(up, Up);

  auto* down = app.add_subcommand("down", "Stop the `modelseal up` of the state directory");
  down->add_option("--state", a.state, "State directory");
  SetAction(down, Down);
}

}  // namespace modelseal::cli
