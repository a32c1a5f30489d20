// Engine: llama.cpp initialisation, model loading and the registry of loaded models.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "common/bytes.h"
#include "common/io.h"
#include "common/ossl.h"
#include "engine/gpu.h"
#include "engine/internal.h"

namespace modelseal::engine {

namespace {

constexpr char kModule[] = "engine";

void LogToStderr(ggml_log_level level, const char* text, void* /*user*/) {
  static const bool verbose = std::getenv("MODELSEAL_LLAMA_LOG") != nullptr;
  if (verbose || level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

void InitLlamaOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(LogToStderr, nullptr);
    llama_backend_init();
    // Registers the GPU backend (if any) before the first model is placed.
    const GpuStatus& gpu = Gpu();
    if (!gpu.available && std::getenv("MODELSEAL_LLAMA_LOG")) {
      std::fprintf(stderr, "engine: inference on the CPU: %s\n", gpu.reason.c_str());
    }
  });
}

std::string MetaString(const llama_model* model, const char* key) {
  char buf[256];
  const int n = llama_model_meta_val_str(model, key, buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf, std::min<size_t>(n, sizeof(buf) - 1));
}

// SHA-256 and SHA-384 of the whole of `fd` (mapped read-only).
Status HashFd(int fd, uint64_t size, std::string* sha256, std::string* sha384) {
  void* map = nullptr;
  if (size > 0) {
    map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return ErrnoError(kModule, "mapping the model to hash it", errno);
    madvise(map, size, MADV_DONTDUMP);  // plaintext weights stay out of core dumps
  }
  Status st = Ok{};
  for (auto [md, out] : {std::pair{EVP_sha256(), sha256}, std::pair{EVP_sha384(), sha384}}) {
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (EVP_Digest(map, size, digest, &len, md, nullptr) != 1) {
      st = OpenSslError(kModule, "hashing the model");
      break;
    }
    *out = ToHex(std::span<const uint8_t>(digest, len));
  }
  if (map) munmap(map, size);
  return st;
}

}  // namespace

Engine::Model::~Model() {
  for (llama_context* ctx : idle) llama_free(ctx);
  idle.clear();
  if (model) llama_model_free(model);
}

Result<llama_context*> Engine::Model::Acquire() {
  {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (!idle.empty()) {
      llama_context* ctx = idle.back();
      idle.pop_back();
      return ctx;
    }
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = info.context_length;
  cp.n_batch = std::min<uint32_t>(512, info.context_length);
  cp.n_ubatch = cp.n_batch;
  cp.n_seq_max = 1;
  cp.n_threads = info.threads;
  cp.n_threads_batch = info.threads;
  cp.no_perf = true;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    return MakeError(ErrorCode::kInternal, kModule, "context-failed",
                     "llama.cpp could not create a context of " +
                         std::to_string(info.context_length) + " tokens for model " + info.name);
  }
  return ctx;
}

void Engine::Model::Release(llama_context* ctx) {
  std::lock_guard<std::mutex> lock(pool_mu);
  // Keep a few warm contexts; the rest are freed.
  if (idle.size() < 4) {
    idle.push_back(ctx);
  } else {
    llama_free(ctx);
  }
}

struct Engine::State {
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<Model>> models;
  // Names being loaded right now (so two loads of one name do not race).
  std::map<std::string, int> loading;
  std::atomic<uint64_t> active{0}, completed{0}, cancelled{0}, failed{0};
  // Where every model's decodes run; shared with the models (they may outlive a load).
  const std::shared_ptr<ComputeThread> compute = std::make_shared<ComputeThread>();

  Result<std::shared_ptr<Model>> Find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = models.find(name);
    if (it == models.end()) {
      return MakeError(ErrorCode::kNotFound, kModule, "model-not-found",
                       "model '" + name + "' is not loaded");
    }
    return it->second;
  }

  Result<ModelInfo> Load(const std::string& path, int fd, uint64_t size, std::optional<Memfd> memfd,
                         LoadOptions o);
};

Result<ModelInfo> Engine::State::Load(const std::string& path, int fd, uint64_t size,
                                      std::optional<Memfd> memfd, LoadOptions o) {
  if (o.name.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "a model needs a name to be loaded under");
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    if (models.count(o.name) || loading.count(o.name)) {
      return MakeError(ErrorCode::kAlreadyExists, kModule, "model-exists",
                       "a model named '" + o.name + "' is already loaded");
    }
    loading[o.name] = 1;
  }
  struct Unmark {
    State* s;
    std::string name;
    ~Unmark() {
      std::lock_guard<std::mutex> lock(s->mu);
      s->loading.erase(name);
    }
  } unmark{this, o.name};

  InitLlamaOnce();
  const auto t0 = std::chrono::steady_clock::now();
  auto m = std::make_shared<Model>();
  m->compute = compute;
  ModelInfo& info = m->info;
  info.name = o.name;
  info.source = o.source.empty() ? path : o.source;
  info.size_bytes = size;
  info.measured = o.measured;
  info.sha256_hex = o.sha256_hex;
  info.sha384_hex = o.sha384_hex;
  if (info.sha256_hex.empty() || info.sha384_hex.empty()) {
    MS_RETURN_IF_ERROR(HashFd(fd, size, &info.sha256_hex, &info.sha384_hex));
  }

  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = Gpu().available ? (o.gpu_layers < 0 ? -1 : o.gpu_layers) : 0;
  mp.load_mode = o.use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
  m->model = llama_model_load_from_file(path.c_str(), mp);
  if (!m->model) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "load-failed",
                     "llama.cpp could not load model '" + o.name + "' (" + info.source +
                         "): not a GGUF model it supports (set MODELSEAL_LLAMA_LOG=1 for details)");
  }
  m->vocab = llama_model_get_vocab(m->model);
  // The Model owns the memfd from here; destroying the Model (unload, or a failed
  // load below) frees llama.cpp's mapping first, then the Memfd wipes the pages.
  m->memfd = std::move(memfd);
  if (m->memfd) {
    // llama.cpp mapped /proc/self/fd/N itself: keep its mapping out of core dumps.
    MS_RETURN_IF_ERROR(m->memfd->ExcludeMappingsFromCoreDumps());
  }

  info.architecture = MetaString(m->model, "general.architecture");
  char desc[256];
  llama_model_desc(m->model, desc, sizeof(desc));
  info.description = desc;
  // "llama ?B F16" -> "F16"
  if (auto sp = info.description.rfind(' '); sp != std::string::npos) {
    info.file_type = info.description.substr(sp + 1);
  }
  const char* tmpl = llama_model_chat_template(m->model, nullptr);
  info.chat_template = tmpl ? tmpl : "";
  info.n_params = llama_model_n_params(m->model);
  info.trained_context_length = static_cast<uint32_t>(llama_model_n_ctx_train(m->model));
  info.context_length =
      o.context_length ? o.context_length : std::min<uint32_t>(info.trained_context_length, 4096);
  info.threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  if (info.threads <= 0) info.threads = 1;
  const int offloadable = llama_model_n_layer(m->model) + 1;  // + the output layer
  info.gpu_layers = mp.n_gpu_layers < 0 ? offloadable : std::min(mp.n_gpu_layers, offloadable);

  // Make one context now so a bad context length fails the load, not the first chat.
  MS_ASSIGN_OR_RETURN(llama_context * ctx, m->Acquire());
  m->Release(ctx);

  info.loaded_at = std::chrono::system_clock::now();
  info.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(mu);
  models[o.name] = m;
  return info;
}

Engine::Engine() : s_(std::make_unique<State>()) {}
Engine::~Engine() = default;

Result<ModelInfo> Engine::LoadFile(const std::string& path, LoadOptions options) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(kModule, "opening model file " + path, errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoError(kModule, "reading the size of " + path, err);
  }
  if (options.source.empty()) options.source = "file:" + path;
  auto r = s_->Load(path, fd, static_cast<uint64_t>(st.st_size), std::nullopt, std::move(options));
  close(fd);
  return r;
}

Result<ModelInfo> Engine::LoadMemfd(Memfd memfd, LoadOptions options) {
  if (memfd.fd() < 0) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "the in-memory model file is not open");
  }
  const std::string path = memfd.path();
  const int fd = memfd.fd();
  const uint64_t size = memfd.size();
  if (options.source.empty()) options.source = "memory";
  return s_->Load(path, fd, size, std::move(memfd), std::move(options));
}

Status Engine::Unload(const std::string& name) {
  std::shared_ptr<Model> m;
  {
    std::lock_guard<std::mutex> lock(s_->mu);
    auto it = s_->models.find(name);
    if (it == s_->models.end()) {
      return MakeError(ErrorCode::kNotFound, kModule, "model-not-found",
                       "model '" + name + "' is not loaded");
    }
    m = std::move(it->second);
    s_->models.erase(it);
  }
  // Freed here, or when the last request that holds it finishes: llama.cpp's
  // model (and its mapping of the memfd) first, then the Memfd, which overwrites
  // the plaintext with zeros before the pages go back to the kernel.
  m.reset();
  return Ok{};
}

std::vector<ModelInfo> Engine::List() const {
  std::lock_guard<std::mutex> lock(s_->mu);
  std::vector<ModelInfo> out;
  for (const auto& [name, m] : s_->models) out.push_back(m->info);
  return out;
}

Result<ModelInfo> Engine::Get(const std::string& name) const {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  std::lock_guard<std::mutex> lock(s_->mu);
  return m->info;
}

Status Engine::SetPcr15After(const std::string& name, const std::string& pcr_hex) {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  std::lock_guard<std::mutex> lock(s_->mu);
  m->info.pcr15_after_hex = pcr_hex;
  m->info.measured = true;
  return Ok{};
}

Result<std::string> Engine::ApplyTemplate(const std::string& name,
                                          const std::vector<ChatMessage>& messages) const {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  return FormatChat(*m, messages);
}

Result<int> Engine::CountTokens(const std::string& name, const std::string& prompt) const {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  const int n = -llama_tokenize(m->vocab, prompt.data(), static_cast<int32_t>(prompt.size()),
                                nullptr, 0, true, true);
  return std::max(n, 0);
}

namespace {

Result<GenerateStats> Run(Engine::Model& m, std::atomic<uint64_t>& active,
                          std::atomic<uint64_t>& completed, std::atomic<uint64_t>& cancelled,
                          std::atomic<uint64_t>& failed,
                          const std::function<Result<GenerateStats>()>& fn) {
  (void)m;
  ++active;
  auto r = fn();
  --active;
  if (!r.ok()) {
    ++(r.error().reason == "cancelled" ? cancelled : failed);
  } else if (r->finish_reason == "cancelled") {
    ++cancelled;
  } else {
    ++completed;
  }
  return r;
}

}  // namespace

Result<GenerateStats> Engine::Chat(const std::string& name,
                                   const std::vector<ChatMessage>& messages,
                                   const SamplingOptions& sampling, const TokenFn& on_piece,
                                   const std::atomic<bool>* cancel) {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  MS_ASSIGN_OR_RETURN(std::string prompt, FormatChat(*m, messages));
  return Run(*m, s_->active, s_->completed, s_->cancelled, s_->failed,
             [&] { return Generate(*m, prompt, sampling, on_piece, cancel); });
}

Result<GenerateStats> Engine::Complete(const std::string& name, const std::string& prompt,
                                       const SamplingOptions& sampling, const TokenFn& on_piece,
                                       const std::atomic<bool>* cancel) {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  return Run(*m, s_->active, s_->completed, s_->cancelled, s_->failed,
             [&] { return Generate(*m, prompt, sampling, on_piece, cancel); });
}

EngineCounters Engine::counters() const {
  return {s_->active.load(), s_->completed.load(), s_->cancelled.load(), s_->failed.load()};
}

}  // namespace modelseal::engine
