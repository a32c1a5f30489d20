// Engine: llama.cpp initialisation, model loading and the registry of loaded models.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "common/bytes.h"
#include "common/digest.h"
#include "common/io.h"
#include "common/ossl.h"
#include "engine/cpu.h"
#include "engine/gpu.h"
#include "engine/internal.h"

namespace modelseal::engine {

namespace {

constexpr char kModule[] = "engine";

void LogToStderr(ggml_log_level level, const char* text, void* /*user*/) {
  static const bool verbose = std::getenv("MODELSEAL_LLAMA_LOG") != nullptr;
  if (verbose || level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

std::string MetaString(const llama_model* model, const char* key) {
  char buf[256];
  const int n = llama_model_meta_val_str(model, key, buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf, std::min<size_t>(n, sizeof(buf) - 1));
}

// Loads the CPU backend (cpu.h) and the GPU one (gpu.h) before the first model.
Status InitLlamaOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(LogToStderr, nullptr);
    // First: llama_backend_init() loads whatever libggml-*.so it finds next to the
    // executable or in the working directory (ggml_backend_load_all) unless a backend
    // is registered already.
    const CpuBackendStatus& cpu = CpuBackend();
    llama_backend_init();
    if (std::getenv("MODELSEAL_LLAMA_LOG")) {
      std::fprintf(stderr, "engine: llama.cpp CPU backend: %s\n", cpu.Describe().c_str());
    }
    // Registers the GPU backend (if any) before the first model is placed.
    const GpuStatus& gpu = Gpu();
    if (!gpu.available && std::getenv("MODELSEAL_LLAMA_LOG")) {
      std::fprintf(stderr, "engine: inference on the CPU: %s\n", gpu.reason.c_str());
    }
  });
  if (!CpuBackend().loaded) {
    return MakeError(ErrorCode::kInternal, kModule, "cpu-backend",
                     "llama.cpp has no CPU backend: " + CpuBackend().error);
  }
  return Ok{};
}

// Ollama's names of llama.cpp's file types (general.file_type); else llama.cpp's own
// (the description's tail: "llama ?B Q4_K - Medium" -> "Q4_K - Medium").
std::string FileTypeName(const std::string& number, const std::string& description) {
  static const std::map<int, const char*> kNames = {
      {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},
      {8, "Q5_0"},    {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
      {13, "Q3_K_L"}, {14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
      {18, "Q6_K"},   {32, "BF16"}};
  if (!number.empty()) {
    if (auto it = kNames.find(std::atoi(number.c_str())); it != kNames.end()) return it->second;
  }
  const auto first = description.find(' ');
  const auto second = first == std::string::npos ? first : description.find(' ', first + 1);
  return second == std::string::npos ? description : description.substr(second + 1);
}

const char* PoolingName(enum llama_pooling_type t) {
  switch (t) {
    case LLAMA_POOLING_TYPE_MEAN:
      return "mean";
    case LLAMA_POOLING_TYPE_CLS:
      return "cls";
    case LLAMA_POOLING_TYPE_LAST:
      return "last";
    case LLAMA_POOLING_TYPE_RANK:
      return "rank";
    default:
      return "none";
  }
}

// The pooling a model declares (its GGUF's <arch>.pooling_type), without a context.
enum llama_pooling_type DeclaredPooling(const llama_model* model, const std::string& arch) {
  const std::string v = MetaString(model, (arch + ".pooling_type").c_str());
  if (v.empty()) return LLAMA_POOLING_TYPE_NONE;
  return static_cast<enum llama_pooling_type>(std::atoi(v.c_str()));
}

}  // namespace

Engine::Model::~Model() {
  // The contexts first: they use the model.
  batcher.reset();
  embedder.reset();
  if (model) llama_model_free(model);
}

struct Engine::State {
  mutable std::mutex mu;
  std::map<std::string, std::shared_ptr<Model>> models;
  // Names being loaded right now (so two loads of one name do not race).
  std::map<std::string, int> loading;
  std::atomic<uint64_t> active{0}, completed{0}, cancelled{0}, failed{0};
  // Where every model's decodes run; shared with the models (they may outlive a load).
  const std::shared_ptr<ComputeThread> compute = std::make_shared<ComputeThread>();
  const std::shared_ptr<BatchCounters> batch_counters = std::make_shared<BatchCounters>();

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

  MS_RETURN_IF_ERROR(InitLlamaOnce());
  if (o.parallel < 0 || o.parallel > 64) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "parallel must be between 1 and 64");
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto m = std::make_shared<Model>();
  m->compute = compute;
  ModelInfo& info = m->info;
  info.name = o.name;
  info.source = o.source.empty() ? path : o.source;
  info.size_bytes = size;
  info.measured = false;
  info.sha256_hex = o.sha256_hex;
  info.sha384_hex = o.sha384_hex;
  if (info.sha256_hex.empty() || info.sha384_hex.empty()) {
    MS_ASSIGN_OR_RETURN(const ModelDigests digests, DigestFd(fd, size, kModule));
    info.sha256_hex = ToHex(digests.sha256);
    info.sha384_hex = ToHex(digests.sha384);
  }
  if (o.measurement) {
    if (o.measurement->sha384_hex() != info.sha384_hex) {
      return MakeError(ErrorCode::kIntegrity, kModule, "measurement-mismatch",
                       "model '" + o.name + "': PCR15 was extended with SHA-384 " +
                           o.measurement->sha384_hex() + ", not this model's " + info.sha384_hex);
    }
    info.measured = true;
    info.pcr15_after_hex = o.measurement->pcr15_after_hex();
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
  info.file_type = FileTypeName(MetaString(m->model, "general.file_type"), info.description);
  if (auto t = LoadChatTemplates(m->model, &m->template_info); t.ok()) {
    m->templates = std::move(*t);
  } else {
    // The model still serves raw completions and embeddings; chats say why not.
    m->template_error = "model '" + o.name + "': " + t.error().message;
    const char* tmpl = llama_model_chat_template(m->model, nullptr);
    m->template_info.source = tmpl ? tmpl : "";
  }
  info.chat_template = m->template_info.source;
  info.default_template = m->template_info.is_default;
  info.supports_tools = m->template_info.supports_tools;
  info.embedding_length = static_cast<uint32_t>(llama_model_n_embd(m->model));
  info.pooling = PoolingName(DeclaredPooling(m->model, info.architecture));
  info.n_params = llama_model_n_params(m->model);
  info.trained_context_length = static_cast<uint32_t>(llama_model_n_ctx_train(m->model));
  info.context_length =
      o.context_length ? o.context_length : std::min<uint32_t>(info.trained_context_length, 4096);
  info.threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  if (info.threads <= 0) info.threads = 1;
  const int offloadable = llama_model_n_layer(m->model) + 1;  // + the output layer
  info.gpu_layers = mp.n_gpu_layers < 0 ? offloadable : std::min(mp.n_gpu_layers, offloadable);

  info.parallel = o.parallel > 0 ? o.parallel : 4;

  // The context now, so a bad context length fails the load, not the first chat.
  Batcher::Options bo;
  bo.parallel = info.parallel;
  bo.slot_ctx = info.context_length;
  bo.threads = info.threads;
  bo.model_name = o.name;
  bo.counters = batch_counters;
  m->batcher = std::make_unique<Batcher>(m->model, bo, compute);
  MS_RETURN_IF_ERROR(m->batcher->Start());

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
  if (options.measurement) {
    close(fd);
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "a plain file is not measured: load the sealed model through the pipeline");
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

Result<ChatPlan> Plan(const Engine::Model& m, const ChatRequest& request) {
  if (!m.templates) {
    return MakeError(ErrorCode::kUnsupported, kModule, "template-invalid", m.template_error);
  }
  return RenderChat(*m.templates, request, std::chrono::system_clock::now());
}

}  // namespace

Result<RenderedChat> Engine::RenderChat(const std::string& name, const ChatRequest& request,
                                        uint32_t num_ctx) const {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  MS_ASSIGN_OR_RETURN(ChatPlan plan, Plan(*m, request));
  MS_ASSIGN_OR_RETURN(const int n_ctx, RequestContext(*m, num_ctx));
  RenderedChat out;
  out.prompt = std::move(plan.prompt);
  out.prompt_tokens = static_cast<int>(Tokenize(m->vocab, out.prompt).size());
  if (out.prompt_tokens >= n_ctx) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "prompt-too-long",
                     "model '" + name + "': the maximum context length is " +
                         std::to_string(n_ctx) +
                         " tokens (prompt and answer together); the prompt has " +
                         std::to_string(out.prompt_tokens) + " tokens");
  }
  return out;
}

namespace {

// Counts a request as active while it runs, then by how it ended.
class Tally {
 public:
  Tally(std::atomic<uint64_t>& active, std::atomic<uint64_t>& completed,
        std::atomic<uint64_t>& cancelled, std::atomic<uint64_t>& failed)
      : active_(active), completed_(completed), cancelled_(cancelled), failed_(failed) {
    ++active_;
  }
  ~Tally() { --active_; }
  Tally(const Tally&) = delete;
  Tally& operator=(const Tally&) = delete;

  template <typename T>
  Result<T> Done(Result<T> r, const std::string& finish) const {
    if (!r.ok()) {
      ++(r.error().reason == "cancelled" ? cancelled_ : failed_);
    } else if (finish == "cancelled") {
      ++cancelled_;
    } else {
      ++completed_;
    }
    return r;
  }

 private:
  std::atomic<uint64_t>&active_, &completed_, &cancelled_, &failed_;
};

}  // namespace

Result<ChatResult> Engine::Chat(const std::string& name, const ChatRequest& request,
                                const SamplingOptions& sampling, const ChatDeltaFn& on_delta,
                                const std::atomic<bool>* cancel) {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  Tally tally(s_->active, s_->completed, s_->cancelled, s_->failed);
  auto plan = Plan(*m, request);
  if (!plan.ok()) return tally.Done(Result<ChatResult>(plan.error()), "");
  ChatReader reader(plan->syntax);
  GenerateSpec spec;
  spec.prompt = &plan->prompt;
  spec.grammar = &plan->grammar;
  spec.extra_stops = plan->additional_stops;
  spec.reader = &reader;
  spec.on_delta = &on_delta;
  auto st = Generate(*m, spec, sampling, cancel);
  if (!st.ok()) return tally.Done(Result<ChatResult>(st.error()), "");
  ChatResult out;
  out.message = reader.message();
  out.stats = *st;
  return tally.Done(Result<ChatResult>(std::move(out)), st->finish_reason);
}

Result<GenerateStats> Engine::Chat(const std::string& name,
                                   const std::vector<ChatMessage>& messages,
                                   const SamplingOptions& sampling, const TokenFn& on_piece,
                                   const std::atomic<bool>* cancel) {
  ChatRequest request;
  request.messages = messages;
  auto r = Chat(
      name, request, sampling,
      [&](const ChatDelta& d) { return d.content.empty() || on_piece(d.content); }, cancel);
  if (!r.ok()) return r.error();
  return r->stats;
}

Result<GenerateStats> Engine::Complete(const std::string& name, const std::string& prompt,
                                       const SamplingOptions& sampling, const TokenFn& on_piece,
                                       const std::atomic<bool>* cancel) {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  Tally tally(s_->active, s_->completed, s_->cancelled, s_->failed);
  GenerateSpec spec;
  spec.prompt = &prompt;
  spec.on_piece = &on_piece;
  auto st = Generate(*m, spec, sampling, cancel);
  return tally.Done(std::move(st), st.ok() ? st->finish_reason : "");
}

Result<EmbedResult> Engine::Embed(const std::string& name, const std::vector<std::string>& inputs,
                                  const EmbedOptions& options, const std::atomic<bool>* cancel) {
  MS_ASSIGN_OR_RETURN(auto m, s_->Find(name));
  Tally tally(s_->active, s_->completed, s_->cancelled, s_->failed);
  auto r = engine::Embed(*m, inputs, options, cancel);
  return tally.Done(std::move(r), "");
}

EngineCounters Engine::counters() const {
  return {s_->active.load(), s_->completed.load(),      s_->cancelled.load(),
          s_->failed.load(), s_->batch_counters->steps, s_->batch_counters->tokens};
}

}  // namespace modelseal::engine
