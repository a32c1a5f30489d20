// `modelseal dev make-test-model`: a small llama-architecture GGUF with deterministic
// weights and a real tokenizer taken from one of llama.cpp's vocabulary files.
#include <ggml.h>
#include <gguf.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/io.h"
#include "engine/engine.h"

#ifndef MODELSEAL_LLAMA_DIR
#define MODELSEAL_LLAMA_DIR "/var/cache/modelseal/llama/unknown"
#endif

namespace modelseal::engine {

namespace {

constexpr char kModule[] = "engine";

// Llama 2's chat template (llama.cpp recognises it by its markers).
constexpr char kChatTemplate[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = '<<SYS>>\\n' + messages[0]['content'].strip() + '\\n<</SYS>>\\n\\n' %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = '' %}{% endif %}"
    "{% for message in loop_messages %}{% if loop.index0 == 0 %}"
    "{% set content = system_message + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}";

struct GgufFree {
  void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
struct FileClose {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t NameSeed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

struct TensorSpec {
  std::string name;
  int64_t ne0, ne1;  // ne1 == 1: a vector (kept F32)
  float scale;       // uniform in [-scale, scale]; 0: all ones (norms)
};

Status WriteTensor(std::FILE* f, const TensorSpec& t, ggml_type type, uint64_t seed) {
  uint64_t state = NameSeed(seed, t.name);
  std::vector<float> row(static_cast<size_t>(t.ne0));
  std::vector<uint8_t> out(ggml_row_size(type, t.ne0));
  for (int64_t r = 0; r < t.ne1; ++r) {
    for (auto& v : row) {
      if (t.scale == 0) {
        v = 1.0f;
      } else {
        const double u = static_cast<double>(SplitMix(state) >> 11) * 0x1.0p-53;  // [0,1)
        v = static_cast<float>((2 * u - 1) * t.scale);
      }
    }
    if (type == GGML_TYPE_F32) {
      std::memcpy(out.data(), row.data(), out.size());
    } else if (type == GGML_TYPE_F16) {
      ggml_fp32_to_fp16_row(row.data(), reinterpret_cast<ggml_fp16_t*>(out.data()), t.ne0);
    } else {
      ggml_quantize_chunk(type, row.data(), out.data(), 0, 1, t.ne0, nullptr);
    }
    if (std::fwrite(out.data(), 1, out.size(), f) != out.size()) {
      return ErrnoError(kModule, "writing tensor " + t.name, errno);
    }
  }
  return Ok{};
}

}  // namespace

std::string DefaultVocabPath() {
  if (const char* env = std::getenv("MODELSEAL_LLAMA_VOCAB")) return env;
  return std::string(MODELSEAL_LLAMA_DIR) + "/vocab/ggml-vocab-llama-spm.gguf";
}

namespace {

using GgufPtr = std::unique_ptr<gguf_context, GgufFree>;

// What the options ask for, checked: the weights' type, the derived sizes, the pooling.
struct Shape {
  ggml_type type = GGML_TYPE_F16;
  uint32_t file_type = 1;  // llama.cpp's LLAMA_FTYPE for general.file_type
  int kv_heads = 0, ff = 0, head_dim = 0;
  int pooling = -1;  // -1: none declared
};

Result<Shape> CheckShape(const TestModelOptions& o) {
  Shape sh;
  sh.kv_heads = o.kv_heads > 0 ? o.kv_heads : o.heads;
  sh.ff = o.ff > 0 ? o.ff : ((o.dim * 8 / 3 + 31) / 32) * 32;
  if (o.layers < 1 || o.dim < 32 || o.heads < 1 || o.dim % o.heads != 0 ||
      o.heads % sh.kv_heads != 0 || (o.dim / o.heads) % 2 != 0 || o.context_length < 16) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "test model shape is invalid: need layers >= 1, dim >= 32 divisible by "
                     "heads, an even head size, heads divisible by kv-heads, context >= 16");
  }
  sh.head_dim = o.dim / o.heads;
  static const std::map<std::string, std::pair<ggml_type, uint32_t>> kTypes =
      {
          {"f32", {GGML_TYPE_F32, 0}},    {"f16", {GGML_TYPE_F16, 1}},
          {"q8_0", {GGML_TYPE_Q8_0, 7}},  {"q4_0", {GGML_TYPE_Q4_0, 2}},
          {"q4_k", {GGML_TYPE_Q4_K, 14}},  // every matrix Q4_K: llama.cpp's Q4_K_S
      };
  const auto t = kTypes.find(o.type);
  if (t == kTypes.end()) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "unknown weight type '" + o.type + "' (f32, f16, q8_0, q4_0, q4_k)");
  }
  std::tie(sh.type, sh.file_type) = t->second;
  if (const int64_t block = ggml_blck_size(sh.type); o.dim % block != 0 || sh.ff % block != 0) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     o.type + " needs dim and ff to be multiples of " + std::to_string(block));
  }
  static const std::map<std::string, int> kPooling = {
      {"", -1}, {"mean", 1}, {"cls", 2}, {"last", 3}};
  const auto p = kPooling.find(o.pooling);
  if (p == kPooling.end()) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "unknown pooling '" + o.pooling + "' (mean, cls, last)");
  }
  sh.pooling = p->second;
  return sh;
}

// The model's metadata: every tokenizer.* key of the vocabulary file, then the llama
// hyper-parameters. `n_vocab` gets the vocabulary's size.
Result<GgufPtr> Metadata(const TestModelOptions& o, const Shape& sh, int64_t* n_vocab) {
  const std::string vocab_path = o.vocab_path.empty() ? DefaultVocabPath() : o.vocab_path;
  gguf_init_params ip{/*no_alloc=*/true, /*ctx=*/nullptr};
  GgufPtr vocab(gguf_init_from_file(vocab_path.c_str(), ip));
  if (!vocab) {
    return MakeError(ErrorCode::kNotFound, kModule, "vocab-not-found",
                     "cannot read the tokenizer vocabulary " + vocab_path +
                         " (run ./scripts/up to fetch llama.cpp, or pass --vocab)");
  }
  const int64_t tokens_key = gguf_find_key(vocab.get(), "tokenizer.ggml.tokens");
  if (tokens_key < 0) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "vocab-invalid",
                     vocab_path + " has no tokenizer.ggml.tokens");
  }
  *n_vocab = static_cast<int64_t>(gguf_get_arr_n(vocab.get(), tokens_key));

  GgufPtr g(gguf_init_empty());
  gguf_set_kv(g.get(), vocab.get());
  for (int64_t j = gguf_get_n_kv(g.get()) - 1; j >= 0; --j) {
    const std::string key = gguf_get_key(g.get(), j);
    if (key.rfind("tokenizer.", 0) != 0) gguf_remove_key(g.get(), key.c_str());
  }
  const auto u32 = [&](const char* key, int64_t v) {
    gguf_set_val_u32(g.get(), key, static_cast<uint32_t>(v));
  };
  gguf_set_val_str(g.get(), "general.architecture", "llama");
  gguf_set_val_str(g.get(), "general.name", o.name.c_str());
  u32("general.file_type", sh.file_type);
  u32("llama.context_length", o.context_length);
  u32("llama.embedding_length", o.dim);
  u32("llama.block_count", o.layers);
  u32("llama.feed_forward_length", sh.ff);
  u32("llama.attention.head_count", o.heads);
  u32("llama.attention.head_count_kv", sh.kv_heads);
  u32("llama.rope.dimension_count", sh.head_dim);
  gguf_set_val_f32(g.get(), "llama.rope.freq_base", 10000.0f);
  gguf_set_val_f32(g.get(), "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  u32("llama.vocab_size", *n_vocab);
  if (o.chat_template != "none") {
    gguf_set_val_str(g.get(), "tokenizer.chat_template",
                     o.chat_template.empty() ? kChatTemplate : o.chat_template.c_str());
  }
  if (sh.pooling >= 0) u32("llama.pooling_type", sh.pooling);
  gguf_set_val_str(g.get(), "modelseal.test_model", "deterministic weights, not a trained model");
  gguf_set_val_u64(g.get(), "modelseal.test_model.seed", o.seed);
  return g;
}

// Every tensor of a llama model of this shape, in file order, with the scale its
// deterministic weights are drawn at (fan-in scaled, so activations stay bounded).
std::vector<TensorSpec> TensorSpecs(const TestModelOptions& o, const Shape& sh, int64_t n_vocab) {
  const int64_t kv_dim = static_cast<int64_t>(sh.kv_heads) * sh.head_dim;
  const auto inv = [](int64_t fan_in) { return static_cast<float>(std::sqrt(3.0 / fan_in)); };
  std::vector<TensorSpec> specs;
  specs.push_back({"token_embd.weight", o.dim, n_vocab, 1.0f});
  for (int l = 0; l < o.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    specs.push_back({b + "attn_norm.weight", o.dim, 1, 0});
    specs.push_back({b + "attn_q.weight", o.dim, o.dim, inv(o.dim)});
    specs.push_back({b + "attn_k.weight", o.dim, kv_dim, inv(o.dim)});
    specs.push_back({b + "attn_v.weight", o.dim, kv_dim, inv(o.dim)});
    specs.push_back({b + "attn_output.weight", o.dim, o.dim, inv(o.dim)});
    specs.push_back({b + "ffn_norm.weight", o.dim, 1, 0});
    specs.push_back({b + "ffn_gate.weight", o.dim, sh.ff, inv(o.dim)});
    specs.push_back({b + "ffn_up.weight", o.dim, sh.ff, inv(o.dim)});
    specs.push_back({b + "ffn_down.weight", sh.ff, o.dim, inv(sh.ff)});
  }
  specs.push_back({"output_norm.weight", o.dim, 1, 0});
  specs.push_back({"output.weight", o.dim, n_vocab, 4 * inv(o.dim)});
  return specs;
}

// Writes the metadata, then each tensor at its aligned offset, to `path`; the file's
// size.
Result<uint64_t> WriteGguf(const std::string& path, gguf_context* g,
                           const std::vector<TensorSpec>& specs,
                           const std::vector<ggml_type>& types, uint64_t seed) {
  std::unique_ptr<std::FILE, FileClose> f(std::fopen(path.c_str(), "wb"));
  if (!f) return ErrnoError(kModule, "creating " + path, errno);
  const auto pad_to = [&](auto reached) -> Status {
    while (!reached(std::ftell(f.get()))) {
      if (std::fputc(0, f.get()) == EOF) return ErrnoError(kModule, "writing " + path, errno);
    }
    return Ok{};
  };
  std::vector<uint8_t> meta(gguf_get_meta_size(g));
  gguf_get_meta_data(g, meta.data());
  if (std::fwrite(meta.data(), 1, meta.size(), f.get()) != meta.size()) {
    return ErrnoError(kModule, "writing " + path, errno);
  }
  const size_t data_offset = gguf_get_data_offset(g);
  for (size_t i = 0; i < specs.size(); ++i) {
    const long at =
        static_cast<long>(data_offset + gguf_get_tensor_offset(g, static_cast<int64_t>(i)));
    // Padding between tensors: zeros up to the tensor's aligned offset.
    MS_RETURN_IF_ERROR(pad_to([&](long pos) { return pos >= at; }));
    MS_RETURN_IF_ERROR(WriteTensor(f.get(), specs[i], types[i], seed));
  }
  // The file ends on the alignment too.
  const long align = static_cast<long>(gguf_get_alignment(g));
  MS_RETURN_IF_ERROR(pad_to([&](long pos) { return pos % align == 0; }));
  const long size = std::ftell(f.get());
  if (std::fflush(f.get()) != 0) return ErrnoError(kModule, "writing " + path, errno);
  return static_cast<uint64_t>(size);
}

}  // namespace

// Shape, metadata, tensors, then the file, written next to `out_path` and renamed into
// place (a failure leaves nothing behind).
Result<uint64_t> WriteTestModel(const std::string& out_path, const TestModelOptions& o) {
  MS_ASSIGN_OR_RETURN(const Shape sh, CheckShape(o));
  int64_t n_vocab = 0;
  MS_ASSIGN_OR_RETURN(GgufPtr g, Metadata(o, sh, &n_vocab));
  const std::vector<TensorSpec> specs = TensorSpecs(o, sh, n_vocab);

  ggml_init_params gp{ggml_tensor_overhead() * (specs.size() + 1), nullptr, /*no_alloc=*/true};
  std::unique_ptr<ggml_context, GgmlFree> gctx(ggml_init(gp));
  std::vector<ggml_type> types;
  for (const auto& s : specs) {
    const ggml_type t = s.ne1 == 1 ? GGML_TYPE_F32 : sh.type;  // vectors stay F32
    ggml_tensor* tensor = s.ne1 == 1 ? ggml_new_tensor_1d(gctx.get(), t, s.ne0)
                                     : ggml_new_tensor_2d(gctx.get(), t, s.ne0, s.ne1);
    ggml_set_name(tensor, s.name.c_str());
    gguf_add_tensor(g.get(), tensor);
    types.push_back(t);
  }

  const std::string tmp = out_path + ".tmp";
  Result<uint64_t> size = WriteGguf(tmp, g.get(), specs, types, o.seed);
  if (size.ok() && std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    size = ErrnoError(kModule, "renaming " + tmp + " to " + out_path, errno);
  }
  if (!size.ok()) std::remove(tmp.c_str());
  return size;
}

}  // namespace modelseal::engine
