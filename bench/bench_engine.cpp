// Inference benchmark (not a test): generation speed and time to first token through
// modelseal's chat API (HTTP, /v1/chat/completions streamed as SSE), next to
// llama.cpp's own llama-bench on the same model file, threads and context, in the
// same run. Prints the ratios (goal >= 0.95).
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
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/gpu.h"
#include "server/server.h"

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace modelseal;

namespace {

struct Run {
  double ttft = 0, gen_tps = 0;
  int tokens = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string Prompt(int words) {
  static const char* kWords[] = {"the", "sealed",   "model",  "is", "loaded", "into", "memory",
                                 "and", "measured", "before", "it", "serves", "chat"};
  std::string p;
  for (int i = 0; i < words; ++i) {
    p += kWords[i % 13];
    p += ' ';
  }
  return p;
}

// One streamed chat completion; TTFT = request sent -> first content chunk.
Run Chat(httplib::Client& cli, const std::string& prompt, int gen, int* prompt_tokens) {
  json req = {{"model", "bench"},  {"messages", {{{"role", "user"}, {"content", prompt}}}},
              {"max_tokens", gen}, {"temperature", 0},
              {"stream", true},    {"stream_options", {{"include_usage", true}}}};
  Run r;
  const auto t0 = Clock::now();
  Clock::time_point first{}, last{};
  std::string buf;
  int chunks = 0;
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
        *prompt_tokens = j["usage"]["prompt_tokens"];
      }
      if (!j["choices"].empty() && j["choices"][0]["delta"].value("content", "") != "") {
        if (chunks++ == 0) first = Clock::now();
        last = Clock::now();
      }
    }
    return true;
  };
  httplib::Response hres;
  httplib::Error herr;
  cli.send(hreq, hres, herr);
  r.ttft = std::chrono::duration<double>(first - t0).count();
  if (r.tokens > 1)
    r.gen_tps = (r.tokens - 1) / std::chrono::duration<double>(last - first).count();
  return r;
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

  // The prompt for the API: its templated length decides llama-bench's -p.
  const std::string prompt = Prompt(200);
  const int ctx = 1024;
  engine::Engine eng;
  engine::LoadOptions lo;
  lo.name = "bench";
  lo.threads = threads;
  lo.context_length = ctx;
  lo.gpu_layers = gpu_layers;
  auto info = eng.LoadFile(model, lo);
  if (!info.ok()) {
    std::fprintf(stderr, "%s\n", info.error().ToString().c_str());
    return 1;
  }
  server::ServerOptions so;
  so.port = 0;
  server::Server srv(eng, so);
  if (!srv.Start().ok()) return 1;
  httplib::Client cli("127.0.0.1", srv.port());
  cli.set_read_timeout(600, 0);

  int prompt_tokens = 0;
  Chat(cli, prompt, 8, &prompt_tokens);  // warm-up (also learns the prompt's token count)

  // llama.cpp's own numbers on the same model and threads: prompt processing of the
  // same prompt length, and generation at the same depth (after that prompt). Runs
  // alternate with ours so both see the same machine load.
  // On a GPU, llama-bench loads the same backend library (GGML_BACKEND_PATH) and
  // offloads as many layers.
  const engine::GpuStatus& gpu = engine::Gpu();
  const std::string base_cmd =
      (gpu.available ? "GGML_BACKEND_PATH='" + gpu.backend + "' " : std::string()) +
      MODELSEAL_LLAMA_BENCH + " -m '" + model + "' -t " + std::to_string(threads) + " -ngl " +
      std::to_string(info->gpu_layers) + " -r 1 -o json ";
  std::fprintf(
      stderr, "inference on %s\n",
      gpu.available
          ? (gpu.devices[0] + ", " + std::to_string(info->gpu_layers) + " layers offloaded").c_str()
          : ("the CPU (" + gpu.reason + ")").c_str());
  const auto llama_bench = [&](const std::string& args, double* ts) {
    std::FILE* p = popen((base_cmd + args + " 2>/dev/null").c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while (p && (n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    if (!p || pclose(p) != 0) return false;
    const json j = json::parse(out, nullptr, false);
    if (!j.is_array() || j.empty()) return false;
    *ts = j[0]["avg_ts"];
    return true;
  };
  // The engine alone (no HTTP): separates the engine's cost from the API's.
  const auto direct = [&] {
    engine::SamplingOptions sp;
    sp.temperature = 0;
    sp.max_tokens = gen;
    Run r;
    const auto t0 = Clock::now();
    Clock::time_point first{}, last{};
    auto st = eng.Chat("bench", {{"user", prompt}}, sp, [&](std::string_view) {
      if (r.tokens++ == 0) first = Clock::now();
      last = Clock::now();
      return true;
    });
    r.ttft = std::chrono::duration<double>(first - t0).count();
    if (st.ok() && r.tokens > 1)
      r.gen_tps = (r.tokens - 1) / std::chrono::duration<double>(last - first).count();
    return r;
  };
  std::vector<double> ttft, tps, ref_pp, ref_tg, tps_ratio, ttft_ratio, direct_tps;
  for (int i = 0; i < reps; ++i) {
    const Run d = direct();
    direct_tps.push_back(d.gen_tps);
    Run r = Chat(cli, prompt, gen, &prompt_tokens);
    ttft.push_back(r.ttft);
    tps.push_back(r.gen_tps);
    if (r.tokens < gen) std::fprintf(stderr, "note: run %d ended after %d tokens\n", i, r.tokens);
    double pp = 0, tg = 0;
    if (!llama_bench("-p " + std::to_string(prompt_tokens) + " -n 0", &pp) ||
        !llama_bench("-p 0 -n " + std::to_string(gen) + " -d " + std::to_string(prompt_tokens),
                     &tg)) {
      std::fprintf(stderr, "llama-bench failed: %s\n", base_cmd.c_str());
      return 1;
    }
    ref_pp.push_back(pp);
    ref_tg.push_back(tg);
    tps_ratio.push_back(r.gen_tps / tg);
    ttft_ratio.push_back((prompt_tokens / pp + 1 / tg) / r.ttft);
    std::fprintf(
        stderr,
        "rep %d: modelseal %.2f t/s, first token %.0f ms; engine alone %.2f t/s; llama-bench tg "
        "%.2f t/s, pp %.1f t/s\n",
        i, r.gen_tps, r.ttft * 1e3, d.gen_tps, tg, pp);
  }
  // Several streams at once: decodes interleave on the engine's compute thread, so the
  // aggregate rate should stay at the single-stream rate (no batching across requests).
  double conc_wall = 0, conc_serial = 0;
  if (concurrent > 1) {
    std::vector<std::thread> ts;
    std::vector<Run> runs(static_cast<size_t>(concurrent));
    const auto t0 = Clock::now();
    for (int i = 0; i < concurrent; ++i) {
      ts.emplace_back([&, i] {
        httplib::Client c("127.0.0.1", srv.port());
        c.set_read_timeout(600, 0);
        int pt = 0;
        runs[static_cast<size_t>(i)] = Chat(c, prompt, gen, &pt);
      });
    }
    for (auto& t : ts) t.join();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    int total = 0;
    for (const Run& r : runs) total += r.tokens;
    // Whole requests (prompt included) against one request's time, serially.
    const double one = Median(ttft) + (gen - 1) / Median(tps);
    conc_wall = wall;
    conc_serial = one * concurrent;
    if (total != gen * concurrent)
      std::fprintf(stderr, "note: concurrent runs made %d tokens\n", total);
  }
  srv.Stop();
  (void)eng.Unload("bench");
  const double pp_ts = Median(ref_pp), tg_ts = Median(ref_tg);
  const double ours_tps = Median(tps), ours_ttft = Median(ttft);
  const double ref_ttft = prompt_tokens / pp_ts + 1 / tg_ts;
  std::printf(
      "model %s (%.0f MB, %s), threads %d, GPU layers %d, prompt %d tokens, generate %d, reps %d "
      "(medians)\n",
      model.c_str(), static_cast<double>(size) / 1e6, info->description.c_str(), threads,
      info->gpu_layers, prompt_tokens, gen, reps);
  std::printf("%-34s %12s %14s\n", "", "tokens/s", "first token");
  std::printf("%-34s %12.2f %12.1f ms\n", "modelseal /v1/chat/completions", ours_tps,
              ours_ttft * 1e3);
  std::printf("%-34s %12.2f %12.1f ms  (pp %.1f t/s: prompt/pp + 1/tg)\n", "llama-bench", tg_ts,
              ref_ttft * 1e3, pp_ts);
  // Ratios per repetition (each pair ran back to back), then their median.
  std::printf("ratio tokens/s (modelseal / llama-bench): %.3f\n", Median(tps_ratio));
  std::printf("ratio first-token speed (llama-bench time / modelseal time): %.3f\n",
              Median(ttft_ratio));
  if (conc_wall > 0) {
    std::printf(
        "%d concurrent streams: %.2f s for all; %d requests one after another: %.2f s "
        "(ratio %.3f)\n",
        concurrent, conc_wall, concurrent, conc_serial, conc_serial / conc_wall);
  }
  return 0;
}
