// Generation, on the request's own thread: the prompt's tokens go to the model's batch
// loop (batch.h); the tokens that come back become text here (stop strings, UTF-8,
// tool calls) and reach the caller's callback.
#include <climits>
#include <memory>

#include "engine/internal.h"
#include "engine/sampler.h"

namespace modelseal::engine {

namespace {

constexpr char kModule[] = "engine";

std::string TokenPiece(const llama_vocab* vocab, llama_token tok, bool special) {
  std::string out(32, '\0');
  int n =
      llama_token_to_piece(vocab, tok, out.data(), static_cast<int32_t>(out.size()), 0, special);
  if (n < 0) {
    out.resize(static_cast<size_t>(-n));
    n = llama_token_to_piece(vocab, tok, out.data(), static_cast<int32_t>(out.size()), 0, special);
  }
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

double Since(std::chrono::steady_clock::time_point t0,
             std::chrono::steady_clock::time_point t = std::chrono::steady_clock::now()) {
  return std::chrono::duration<double>(t - t0).count();
}

}  // namespace

Result<std::string> FormatChat(const Engine::Model& m, const std::vector<ChatMessage>& messages) {
  if (!m.templates) {
    return MakeError(ErrorCode::kUnsupported, kModule, "template-invalid", m.template_error);
  }
  ChatRequest req;
  req.messages = messages;
  MS_ASSIGN_OR_RETURN(ChatPlan plan,
                      RenderChat(*m.templates, req, std::chrono::system_clock::now()));
  return plan.prompt;
}

std::vector<llama_token> Tokenize(const llama_vocab* vocab, const std::string& text) {
  const auto len = static_cast<int32_t>(text.size());
  int n = -llama_tokenize(vocab, text.data(), len, nullptr, 0, true, true);
  std::vector<llama_token> tokens(static_cast<size_t>(std::max(n, 0)));
  if (n > 0) n = llama_tokenize(vocab, text.data(), len, tokens.data(), n, true, true);
  tokens.resize(static_cast<size_t>(std::max(n, 0)));
  return tokens;
}

Result<int> RequestContext(const Engine::Model& m, uint32_t num_ctx) {
  const uint32_t slot = m.info.context_length;
  if (num_ctx == 0) return static_cast<int>(slot);
  if (m.info.trained_context_length > 0 && num_ctx > m.info.trained_context_length) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "num_ctx " + std::to_string(num_ctx) + " is more than model '" + m.info.name +
                         "' was trained for (" + std::to_string(m.info.trained_context_length) +
                         " tokens)");
  }
  // Above the slot's size the slot's size is what there is (serve --ctx sets it).
  return static_cast<int>(std::min(num_ctx, slot));
}

namespace {

using Clock = std::chrono::steady_clock;

// The prompt's tokens as a job for the model's batch loop, checked against the
// request's context, its sampler made and submitted. nullptr when there is nothing to
// generate (max_tokens 0).
Result<std::shared_ptr<DecodeJob>> SubmitPrompt(Engine::Model& m, const GenerateSpec& spec,
                                                const SamplingOptions& sampling,
                                                const std::atomic<bool>* cancel,
                                                GenerateStats& st) {
  MS_ASSIGN_OR_RETURN(const int n_ctx, RequestContext(m, sampling.num_ctx));
  auto job = std::make_shared<DecodeJob>();
  job->prompt = Tokenize(m.vocab, *spec.prompt);
  const int n = static_cast<int>(job->prompt.size());
  if (n == 0) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "the prompt is empty after tokenisation");
  }
  if (n >= n_ctx) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "prompt-too-long",
                     "model '" + m.info.name + "': the maximum context length is " +
                         std::to_string(n_ctx) +
                         " tokens (prompt and answer together); the prompt has " +
                         std::to_string(n) + " tokens");
  }
  st.prompt_tokens = n;
  if (sampling.max_tokens == 0) return std::shared_ptr<DecodeJob>();
  MS_ASSIGN_OR_RETURN(job->sampler, Sampler::Make(m.model, sampling, spec.grammar));
  job->sampler->AcceptPrompt(job->prompt);
  job->max_tokens = sampling.max_tokens;
  job->n_ctx = n_ctx;
  job->cancel = cancel;
  m.batcher->Submit(job);
  return job;
}

// Hands text to the caller: as raw pieces, or through the chat reader as deltas.
// Each returns false when the caller wants no more.
struct Output {
  const GenerateSpec& spec;
  bool Text(const std::string& text) const {
    if (text.empty()) return true;
    if (spec.reader == nullptr) return (*spec.on_piece)(text);
    for (const ChatDelta& d : spec.reader->Push(text)) {
      if (!(*spec.on_delta)(d)) return false;
    }
    return true;
  }
  bool End() const {  // what the chat reader held back (a tool call's tail)
    if (spec.reader == nullptr) return true;
    for (const ChatDelta& d : spec.reader->Finish()) {
      if (!(*spec.on_delta)(d)) return false;
    }
    return true;
  }
};

struct Streamed {
  std::string finish;  // "stop", "length", "cancelled", or empty (the loop ended cleanly)
  std::optional<Error> error;
  std::optional<Clock::time_point> prompt_done;
};

// Turns the job's tokens into text as the batch loop makes them, until a stop string or
// the caller ends it here, or the loop ends it there.
Streamed Stream(Engine::Model& m, DecodeJob& job, PieceFilter& filter, const Output& out,
                GenerateStats& st, Clock::time_point t0) {
  Streamed r;
  std::deque<llama_token> tokens;
  bool done = false;
  while (r.finish.empty() && !done) {
    {
      std::unique_lock<std::mutex> lock(job.mu);
      job.cv.wait(lock, [&] { return !job.tokens.empty() || job.done; });
      tokens.swap(job.tokens);
      done = job.done && tokens.empty();
      if (job.prompt_done && !r.prompt_done) r.prompt_done = job.prompt_done;
      if (done) {
        r.finish = job.finish_reason;
        r.error = job.error;
      }
    }
    for (llama_token tok : tokens) {
      if (st.completion_tokens++ == 0) st.first_token_seconds = Since(t0);
      bool stopped = false;
      const std::string text =
          filter.Push(TokenPiece(m.vocab, tok, job.sampler->Preserved(tok)), &stopped);
      if (!out.Text(text)) {
        r.finish = "cancelled";
        break;
      }
      if (stopped) {
        r.finish = "stop";
        break;
      }
    }
    tokens.clear();
  }
  return r;
}

// A job the batch loop still runs is told to stop (it frees the slot at its next step).
void StopIfRunning(DecodeJob& job, const std::string& finish, GenerateStats& st) {
  if (!job.done) {
    {
      std::lock_guard<std::mutex> lock(job.mu);
      if (job.finish_reason.empty()) job.finish_reason = finish;
    }
    job.stop = true;
  }
  std::lock_guard<std::mutex> lock(job.mu);
  st.cached_tokens = job.cached_tokens;
}

}  // namespace

// Submit the prompt, stream the answer, stop the job, then hand over what the stop
// filter and the chat reader held back (unless the request was cancelled).
Result<GenerateStats> Generate(Engine::Model& m, const GenerateSpec& spec,
                               const SamplingOptions& sampling, const std::atomic<bool>* cancel) {
  const auto t0 = Clock::now();
  GenerateStats st;
  MS_ASSIGN_OR_RETURN(const auto job, SubmitPrompt(m, spec, sampling, cancel, st));
  if (!job) {  // nothing to generate
    st.finish_reason = "length";
    st.total_seconds = st.prompt_seconds = Since(t0);
    return st;
  }
  std::vector<std::string> stops = sampling.stop;
  stops.insert(stops.end(), spec.extra_stops.begin(), spec.extra_stops.end());
  PieceFilter filter(std::move(stops));
  const Output out{spec};
  Streamed r = Stream(m, *job, filter, out, st, t0);
  StopIfRunning(*job, r.finish, st);
  if (r.error) return *r.error;
  std::string finish = r.finish.empty() ? "stop" : r.finish;
  if (finish == "cancelled" || (cancel && cancel->load())) {
    finish = "cancelled";
  } else if (!out.Text(filter.Flush()) || !out.End()) {
    finish = "cancelled";
  }
  st.finish_reason = finish;
  const auto now = Clock::now();
  st.prompt_seconds = r.prompt_done ? Since(t0, *r.prompt_done) : Since(t0, now);
  st.generation_seconds = r.prompt_done ? Since(*r.prompt_done, now) : 0;
  st.total_seconds = Since(t0, now);
  return st;
}

}  // namespace modelseal::engine
