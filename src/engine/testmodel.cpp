// `modelseal dev make-test-model`: a small llama-architecture GGUF with deterministic
// weights and a real tokenizer taken from one of llama.cpp's vocabulary files.
#include <ggml.h>
#include <gguf.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
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

Result<uint64_t> WriteTestModel(const std::string& out_path, const TestModelOptions& o) {
  const int kv_heads = o.kv_heads > 0 ? o.kv_heads : o.heads;
  const int ff = o.ff > 0 ? o.ff : ((o.dim * 8 / 3 + 31) / 32) * 32;
  if (o.layers < 1 || o.dim < 32 || o.heads < 1 || o.dim % o.heads != 0 ||
      o.heads % kv_heads != 0 || (o.dim / o.heads) % 2 != 0 || o.context_length < 16) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "test model shape is invalid: need layers >= 1, dim >= 32 divisible by "
                     "heads, an even head size, heads divisible by kv-heads, context >= 16");
  }
  ggml_type type;
  uint32_t file_type;
  if (o.type == "f32") {
    type = GGML_TYPE_F32, file_type = 0;
  } else if (o.type == "f16") {
    type = GGML_TYPE_F16, file_type = 1;
  } else if (o.type == "q8_0") {
    type = GGML_TYPE_Q8_0, file_type = 7;
  } else if (o.type == "q4_0") {
    type = GGML_TYPE_Q4_0, file_type = 2;
  } else if (o.type == "q4_k") {
    type = GGML_TYPE_Q4_K, file_type = 14;  // every matrix Q4_K: llama.cpp's Q4_K_S
  } else {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "unknown weight type '" + o.type + "' (f32, f16, q8_0, q4_0, q4_k)");
  }
  if (const int64_t block = ggml_blck_size(type); o.dim % block != 0 || ff % block != 0) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     o.type + " needs dim and ff to be multiples of " + std::to_string(block));
  }
  int pooling = -1;
  if (o.pooling == "mean") {
    pooling = 1;
  } else if (o.pooling == "cls") {
    pooling = 2;
  } else if (o.pooling == "last") {
    pooling = 3;
  } else if (!o.pooling.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "unknown pooling '" + o.pooling + "' (mean, cls, last)");
  }

  const std::string vocab_path = o.vocab_path.empty() ? DefaultVocabPath() : o.vocab_path;
  gguf_init_params ip{/*no_alloc=*/true, /*ctx=*/nullptr};
  std::unique_ptr<gguf_context, GgufFree> vocab(gguf_init_from_file(vocab_path.c_str(), ip));
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
  const int64_t n_vocab = static_cast<int64_t>(gguf_get_arr_n(vocab.get(), tokens_key));

  std::unique_ptr<gguf_context, GgufFree> g(gguf_init_empty());
  // The tokenizer: every tokenizer.* key of the vocabulary file.
  gguf_set_kv(g.get(), vocab.get());
  for (int64_t j = gguf_get_n_kv(g.get()) - 1; j >= 0; --j) {
    const std::string key = gguf_get_key(g.get(), j);
    if (key.rfind("tokenizer.", 0) != 0) gguf_remove_key(g.get(), key.c_str());
  }
  const int head_dim = o.dim / o.heads;
  gguf_set_val_str(g.get(), "general.architecture", "llama");
  gguf_set_val_str(g.get(), "general.name", o.name.c_str());
  gguf_set_val_u32(g.get(), "general.file_type", file_type);
  gguf_set_val_u32(g.get(), "llama.context_length", o.context_length);
  gguf_set_val_u32(g.get(), "llama.embedding_length", static_cast<uint32_t>(o.dim));
  gguf_set_val_u32(g.get(), "llama.block_count", static_cast<uint32_t>(o.layers));
  gguf_set_val_u32(g.get(), "llama.feed_forward_length", static_cast<uint32_t>(ff));
  gguf_set_val_u32(g.get(), "llama.attention.head_count", static_cast<uint32_t>(o.heads));
  gguf_set_val_u32(g.get(), "llama.attention.head_count_kv", static_cast<uint32_t>(kv_heads));
  gguf_set_val_u32(g.get(), "llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
  gguf_set_val_f32(g.get(), "llama.rope.freq_base", 10000.0f);
  gguf_set_val_f32(g.get(), "llama.attention.layer_norm_rms_epsilon", 1e-5f);
  gguf_set_val_u32(g.get(), "llama.vocab_size", static_cast<uint32_t>(n_vocab));
  if (o.chat_template != "none") {
    gguf_set_val_str(g.get(), "tokenizer.chat_template",
                     o.chat_template.empty() ? kChatTemplate : o.chat_template.c_str());
  }
  if (pooling >= 0) gguf_set_val_u32(g.get(), "llama.pooling_type", static_cast<uint32_t>(pooling));
  gguf_set_val_str(g.get(), "modelseal.test_model", "deterministic weights, not a trained model");
  gguf_set_val_u64(g.get(), "modelseal.test_model.seed", o.seed);

  const int64_t kv_dim = static_cast<int64_t>(kv_heads) * head_dim;
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
    specs.push_back({b + "ffn_gate.weight", o.dim, ff, inv(o.dim)});
    specs.push_back({b + "ffn_up.weight", o.dim, ff, inv(o.dim)});
    specs.push_back({b + "ffn_down.weight", ff, o.dim, inv(ff)});
  }
  specs.push_back({"output_norm.weight", o.dim, 1, 0});
  specs.push_back({"output.weight", o.dim, n_vocab, 4 * inv(o.dim)});

  ggml_init_params gp{ggml_tensor_overhead() * (specs.size() + 1), nullptr, /*no_alloc=*/true};
  std::unique_ptr<ggml_context, GgmlFree> gctx(ggml_init(gp));
  std::vector<ggml_type> types;
  for (const auto& s : specs) {
    const ggml_type t = s.ne1 == 1 ? GGML_TYPE_F32 : type;
    ggml_tensor* tensor = s.ne1 == 1 ? ggml_new_tensor_1d(gctx.get(), t, s.ne0)
                                     : ggml_new_tensor_2d(gctx.get(), t, s.ne0, s.ne1);
    ggml_set_name(tensor, s.name.c_str());
    gguf_add_tensor(g.get(), tensor);
    types.push_back(t);
  }

  const std::string tmp = out_path + ".tmp";
  std::unique_ptr<std::FILE, FileClose> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) return ErrnoError(kModule, "creating " + tmp, errno);
  std::vector<uint8_t> meta(gguf_get_meta_size(g.get()));
  gguf_get_meta_data(g.get(), meta.data());
  Status st = Ok{};
  if (std::fwrite(meta.data(), 1, meta.size(), f.get()) != meta.size()) {
    st = ErrnoError(kModule, "writing " + tmp, errno);
  }
  const size_t data_offset = gguf_get_data_offset(g.get());
  for (size_t i = 0; st.ok() && i < specs.size(); ++i) {
    const long at =
        static_cast<long>(data_offset + gguf_get_tensor_offset(g.get(), static_cast<int64_t>(i)));
    // Padding between tensors: zeros up to the tensor's aligned offset.
    while (st.ok() && std::ftell(f.get()) < at) {
      if (std::fputc(0, f.get()) == EOF) st = ErrnoError(kModule, "writing " + tmp, errno);
    }
    if (st.ok()) st = WriteTensor(f.get(), specs[i], types[i], o.seed);
  }
  // The file ends on the alignment too.
  const long align = static_cast<long>(gguf_get_alignment(g.get()));
  while (st.ok() && std::ftell(f.get()) % align != 0) {
    if (std::fputc(0, f.get()) == EOF) st = ErrnoError(kModule, "writing " + tmp, errno);
  }
  const long size = std::ftell(f.get());
  if (st.ok() && std::fflush(f.get()) != 0) st = ErrnoError(kModule, "writing " + tmp, errno);
  f.reset();
  if (st.ok() && std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    st = ErrnoError(kModule, "renaming " + tmp + " to " + out_path, errno);
  }
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return st.take_error();
  }
  return static_cast<uint64_t>(size);
}

}  // namespace modelseal::engine
