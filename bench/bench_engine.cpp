// Inference benchmark (not a test). Everything runs through modelseal's chat API
// (HTTP, /v1/chat/completions streamed as SSE) next to llama.cpp's own tools on the
// same model file, threads and CPU backend variant, in the same run:
//   1. one stream: generation speed and time to first token against llama-bench
//      (goal >= 0.95);
//   2. N concurrent streams (continuous batching): aggregate generation speed against
//      llama-batched-bench -npl N (goal >= 0.9);
//   3. the prompt cache: a conversation's second turn after a ~1,000-token history,
//      time to first token against the first turn's (goal <= 0.3).
//
//   bench_engine [--model FILE.gguf] [--threads N] [--gen N] [--reps N] [--concurrent N]
//                [--gpu-layers N]
// Without --model it generates a q8_0 test model of about 290 MB (dim 1024, 16 layers).
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/cpu.h"
#include "engine/engine.h"
#include "engine/gpu.h"
#include "server/server.h"

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace modelseal;

namespace {

struct Run {
  double ttft = 0, gen_tps = 0;
  int tokens = 0, prompt_tokens = 0, cached_tokens = 0;
  std::string text;
  std::vector<Clock::time_point> stamps;  // when each content chunk arrived
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// `words` words of filler, starting with `salt` so that no two prompts share a prefix
// (the prompt cache would otherwise answer for the benchmark).
std::string Prompt(int words, const std::string& salt) {
  static const char* kWords[] = {"the", "sealed",   "model",  "is", "loaded", "into", "memory",
                                 "and", "measured", "before", "it", "serves", "chat"};
  std::string p = salt + ": ";
  for (int i = 0; i < words; ++i) {
    p += kWords[i % 13];
    p += ' ';
  }
  return p;
}

// One streamed chat completion; TTFT = request sent -> first content chunk.
Run Chat(int port, const json& messages, int gen) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(600, 0);
  json req = {{"model", "bench"},  {"messages", messages},
              {"max_tokens", gen}, {"temperature", 0},
              {"stream", true},    {"stream_options", {{"include_usage", true}}}};
  Run r;
  const auto t0 = Clock::now();
  std::string buf;
  httplib::Request hreq;
  hreq.method = "POST";
  hreq.path = "/v1/chat/completions";
  hreq.body = req.dump();
  hreq.set_header("Content-Type", "application/json");
  hreq.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    buf.append(data, len);
    size_t end;
    while ((end = buf.find("\n\n")) != std::string::npos) {
      const std::string ev = buf.substr(0, end);
      buf.erase(0, end + 2);
      if (ev.rfind("data: {", 0) != 0) continue;
      const json j = json::parse(ev.substr(6));
      if (j.contains("usage") && j["usage"].is_object()) {
        r.tokens = j["usage"]["completion_tokens"];
        r.prompt_tokens = j["usage"]["prompt_tokens"];
        if (j["usage"].contains("prompt_tokens_details")) {
          r.cached_tokens = j["usage"]["prompt_tokens_details"].value("cached_tokens", 0);
        }
      }
      if (!j["choices"].empty()) {
        const std::string c = j["choices"][0]["delta"].value("content", "");
        if (!c.empty()) {
          r.stamps.push_back(Clock::now());
          r.text += c;
        }
      }
    }
    return true;
  };
  httplib::Response hres;
  httplib::Error herr;
  cli.send(hreq, hres, herr);
  if (!r.stamps.empty()) {
    r.ttft = Seconds(t0, r.stamps.front());
    if (r.tokens > 1 && r.stamps.size() > 1) {
      r.gen_tps = (r.tokens - 1) / Seconds(r.stamps.front(), r.stamps.back());
    }
  }
  return r;
}

json User(const std::string& text) {
  return json::array({{{"role", "user"}, {"content", text}}});
}

// Runs `cmd` and returns its standard output ("" when it failed).
std::string Capture(const std::string& cmd) {
  std::FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p && (n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (!p || pclose(p) != 0) return "";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int gen = 64, reps = 3, concurrent = 4, gpu_layers = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--model")
      model = argv[i + 1];
    else if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--gen")
      gen = std::atoi(argv[i + 1]);
    else if (a == "--reps")
      reps = std::atoi(argv[i + 1]);
    else if (a == "--concurrent")
      concurrent = std::atoi(argv[i + 1]);
    else if (a == "--gpu-layers")
      gpu_layers = std::atoi(argv[i + 1]);
  }
  if (model.empty()) {
    model = (std::filesystem::temp_directory_path() / "modelseal-bench-q8.gguf").string();
    if (!std::filesystem::exists(model)) {
      engine::TestModelOptions o;
      o.dim = 1024;
      o.layers = 16;
      o.heads = 16;
      o.type = "q8_0";
      o.context_length = 4096;
      std::fprintf(stderr, "generating %s ...\n", model.c_str());
      auto r = engine::WriteTestModel(model, o);
      if (!r.ok()) {
        std::fprintf(stderr, "%s\n", r.error().ToString().c_str());
        return 1;
      }
    }
  }
  const auto size = std::filesystem::file_size(model);

  const int ctx = 2048;  // per slot: the 1,000-token conversation fits
  engine::Engine eng;
  engine::LoadOptions lo;
  lo.name = "bench";
  lo.threads = threads;
  lo.context_length = ctx;
  lo.gpu_layers = gpu_layers;
  lo.parallel = std::max(4, concurrent);
  auto info = eng.LoadFile(model, lo);
  if (!info.ok()) {
    std::fprintf(stderr, "%s\n", info.error().ToString().c_str());
    return 1;
  }
  server::ServerOptions so;
  so.port = 0;
  server::Server srv(eng, so);
  if (!srv.Start().ok()) return 1;
  const int port = srv.port();

  // llama.cpp's tools load exactly the CPU variant the engine chose (and on a GPU the
  // same backend library), so both sides run the same kernels.
  const engine::CpuBackendStatus& cpu = engine::CpuBackend();
  const engine::GpuStatus& gpu = engine::Gpu();
  std::string env = "GGML_BACKEND_PATH='" + cpu.path + "' ";
  if (gpu.available) {
    // Two backends: the CPU variant from the working directory, the GPU one by path.
    const std::string dir =
        (std::filesystem::temp_directory_path() / "modelseal-bench-cpu").string();
    std::filesystem::create_directories(dir);
    std::error_code ec;
    std::filesystem::create_symlink(
        cpu.path, dir + "/" + std::filesystem::path(cpu.path).filename().string(), ec);
    env = "cd '" + dir + "' && GGML_BACKEND_PATH='" + gpu.backend + "' ";
  }
  const std::string common = " -m '" + model + "' -t " + std::to_string(threads) + " -ngl " +
                             std::to_string(info->gpu_layers) + " ";
  std::fprintf(stderr, "CPU backend: %s\n", cpu.Describe().c_str());
  std::fprintf(
      stderr, "inference on %s\n",
      gpu.available
          ? (gpu.devices[0] + ", " + std::to_string(info->gpu_layers) + " layers offloaded").c_str()
          : ("the CPU (" + gpu.reason + ")").c_str());
  const auto llama_bench = [&](const std::string& args, double* ts) {
    const json j = json::parse(
        Capture(env + MODELSEAL_LLAMA_BENCH + common + "-r 1 -o json " + args), nullptr, false);
    if (!j.is_array() || j.empty()) return false;
    *ts = j[0]["avg_ts"];
    return true;
  };

  const std::string prompt_text = Prompt(200, "warm-up");
  Run warm = Chat(port, User(prompt_text), 8);  // also learns the prompt's token count
  const int prompt_tokens = warm.prompt_tokens;

  // 1. One stream.
  std::vector<double> ttft, tps, ref_pp, ref_tg, tps_ratio, ttft_ratio;
  for (int i = 0; i < reps; ++i) {
    Run r = Chat(port, User(Prompt(200, "single " + std::to_string(i))), gen);
    ttft.push_back(r.ttft);
    tps.push_back(r.gen_tps);
    if (r.tokens < gen) std::fprintf(stderr, "note: run %d ended after %d tokens\n", i, r.tokens);
    double pp = 0, tg = 0;
    if (!llama_bench("-p " + std::to_string(r.prompt_tokens) + " -n 0", &pp) ||
        !llama_bench("-p 0 -n " + std::to_string(gen) + " -d " + std::to_string(r.prompt_tokens),
                     &tg)) {
      std::fprintf(stderr, "llama-bench failed: %s%s\n", env.c_str(), MODELSEAL_LLAMA_BENCH);
      return 1;
    }
    ref_pp.push_back(pp);
    ref_tg.push_back(tg);
    tps_ratio.push_back(r.gen_tps / tg);
    ttft_ratio.push_back((r.prompt_tokens / pp + 1 / tg) / r.ttft);
    std::fprintf(stderr,
                 "rep %d: modelseal %.2f t/s, first token %.0f ms; llama-bench tg %.2f t/s, pp "
                 "%.1f t/s\n",
                 i, r.gen_tps, r.ttft * 1e3, tg, pp);
  }

  // 2. Concurrent streams: aggregate generation speed while all of them generate.
  std::vector<double> agg, ref_agg, agg_ratio;
  for (int rep = 0; rep < reps && concurrent > 1; ++rep) {
    std::vector<std::thread> ts;
    std::vector<Run> runs(static_cast<size_t>(concurrent));
    for (int i = 0; i < concurrent; ++i) {
      ts.emplace_back([&, i] {
        runs[static_cast<size_t>(i)] =
            Chat(port, User(Prompt(200, "stream " + std::to_string(rep) + "." + std::to_string(i))),
                 gen);
      });
    }
    for (auto& t : ts) t.join();
    // The window in which every stream generates: from the last first token to the
    // first last token; the tokens that arrived in it.
    Clock::time_point from = runs[0].stamps.front(), to = runs[0].stamps.back();
    for (const Run& r : runs) {
      if (r.stamps.empty()) {
        std::fprintf(stderr, "a concurrent stream produced nothing\n");
        return 1;
      }
      from = std::max(from, r.stamps.front());
      to = std::min(to, r.stamps.back());
    }
    int n = 0;
    for (const Run& r : runs) {
      for (const auto& t : r.stamps) n += (t > from && t <= to) ? 1 : 0;
    }
    const double ours = Seconds(from, to) > 0 ? n / Seconds(from, to) : 0;
    const json j = json::parse(
        [&] {
          const std::string out =
              Capture(env + MODELSEAL_LLAMA_BATCHED_BENCH + common + "-c " +
                      std::to_string(concurrent * (prompt_tokens + gen + 16)) + " -npp " +
                      std::to_string(prompt_tokens) + " -ntg " + std::to_string(gen) + " -npl " +
                      std::to_string(concurrent) + " --output-format jsonl");
          const auto at = out.find('{');
          return at == std::string::npos ? std::string() : out.substr(at);
        }(),
        nullptr, false);
    if (!j.is_object()) {
      std::fprintf(stderr, "llama-batched-bench failed: %s%s\n", env.c_str(),
                   MODELSEAL_LLAMA_BATCHED_BENCH);
      return 1;
    }
    const double ref = j["speed_tg"];
    agg.push_back(ours);
    ref_agg.push_back(ref);
    agg_ratio.push_back(ours / ref);
    std::fprintf(stderr,
                 "rep %d: %d streams, %.2f t/s together (%d tokens in %.2f s); "
                 "llama-batched-bench S_TG %.2f t/s\n",
                 rep, concurrent, ours, n, Seconds(from, to), ref);
  }

  // 3. The prompt cache: a conversation with a ~1,000-token history, then its next turn.
  std::vector<double> turn1, turn2, turn_ratio;
  int history_tokens = 0, cached = 0;
  for (int rep = 0; rep < reps; ++rep) {
    json conv = json::array(
        {{{"role", "system"}, {"content", "You answer questions about the text."}},
         {{"role", "user"}, {"content", Prompt(880, "history " + std::to_string(rep))}}});
    Run first = Chat(port, conv, gen);
    conv.push_back({{"role", "assistant"}, {"content", first.text}});
    conv.push_back({{"role", "user"}, {"content", "What was the first word?"}});
    Run second = Chat(port, conv, gen);
    history_tokens = first.prompt_tokens;
    cached = second.cached_tokens;
    turn1.push_back(first.ttft);
    turn2.push_back(second.ttft);
    turn_ratio.push_back(second.ttft / first.ttft);
    std::fprintf(stderr,
                 "rep %d: first turn %d tokens, first token %.0f ms; next turn %d tokens (%d "
                 "cached), first token %.0f ms\n",
                 rep, first.prompt_tokens, first.ttft * 1e3, second.prompt_tokens,
                 second.cached_tokens, second.ttft * 1e3);
  }
  srv.Stop();
  (void)eng.Unload("bench");

  const double pp_ts = Median(ref_pp), tg_ts = Median(ref_tg);
  const double ours_tps = Median(tps), ours_ttft = Median(ttft);
  const double ref_ttft = prompt_tokens / pp_ts + 1 / tg_ts;
  std::printf(
      "model %s (%.0f MB, %s), threads %d, CPU variant %s, GPU layers %d, prompt %d tokens, "
      "generate %d, reps %d (medians)\n",
      model.c_str(), static_cast<double>(size) / 1e6, info->description.c_str(), threads,
      cpu.variant.c_str(), info->gpu_layers, prompt_tokens, gen, reps);
  std::printf("%-34s %12s %14s\n", "", "tokens/s", "first token");
  std::printf("%-34s %12.2f %12.1f ms\n", "modelseal /v1/chat/completions", ours_tps,
              ours_ttft * 1e3);
  std::printf("%-34s %12.2f %12.1f ms  (pp %.1f t/s: prompt/pp + 1/tg)\n", "llama-bench", tg_ts,
              ref_ttft * 1e3, pp_ts);
  // Ratios per repetition (each pair ran back to back), then their median.
  std::printf("ratio tokens/s, one stream (modelseal / llama-bench): %.3f\n", Median(tps_ratio));
  std::printf("ratio first-token speed (llama-bench time / modelseal time): %.3f\n",
              Median(ttft_ratio));
  if (!agg.empty()) {
    std::printf(
        "%d streams: %.2f t/s together; llama-batched-bench -npl %d: %.2f t/s; ratio %.3f\n",
        concurrent, Median(agg), concurrent, Median(ref_agg), Median(agg_ratio));
  }
  std::printf(
      "conversation: first turn %d prompt tokens, first token %.0f ms; next turn (%d cached) "
      "%.0f ms; ratio %.3f\n",
      history_tokens, Median(turn1) * 1e3, cached, Median(turn2) * 1e3, Median(turn_ratio));
  return 0;
}
