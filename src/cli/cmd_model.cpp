// Model verbs for development: `dev make-test-model` writes a small deterministic
// llama-architecture GGUF that the real loading code runs on unchanged.
#include <cstdio>

#include "cli/commands.h"
#include "engine/engine.h"

namespace modelseal::cli {

void RegisterDevModelCommands(CLI::App* dev) {
  static std::string out;
  static engine::TestModelOptions o;
  auto* make = dev->add_subcommand(
      "make-test-model",
      "Write a tiny llama GGUF with deterministic weights and a real vocabulary");
  make->add_option("OUT", out, "Output .gguf file")->required();
  make->add_option("--layers", o.layers, "Transformer blocks")->capture_default_str();
  make->add_option("--dim", o.dim, "Embedding width")->capture_default_str();
  make->add_option("--heads", o.heads, "Attention heads")->capture_default_str();
  make->add_option("--kv-heads", o.kv_heads, "Key/value heads (0: = heads)");
  make->add_option("--ff", o.ff, "Feed-forward width (0: about 8/3 dim)");
  make->add_option("--ctx", o.context_length, "Trained context length")->capture_default_str();
  make->add_option("--type", o.type,
                   "Weight type: f32, f16, q8_0, q4_0, q4_k (q4_k: dim and ff "
                   "multiples of 256)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "q8_0", "q4_0", "q4_k"}));
  make->add_option("--chat-template", o.chat_template,
                   "Jinja chat template (tokenizer.chat_template); \"none\": the model has none "
                   "(default: a Llama 2 template)");
  make->add_option("--pooling", o.pooling, "Embedding pooling the model declares")
      ->check(CLI::IsMember({"mean", "cls", "last"}));
  make->add_option("--seed", o.seed, "Seed of the weights")->capture_default_str();
  make->add_option("--name", o.name, "general.name")->capture_default_str();
  make->add_option("--vocab", o.vocab_path,
                   "Tokenizer vocabulary GGUF (default: llama.cpp's ggml-vocab-llama-spm.gguf "
                   "from the setup cache)");
  SetAction(make, [] {
    auto r = engine::WriteTestModel(out, o);
    if (!r.ok()) return ReportError(r.error());
    std::printf("%s: %llu bytes\n", out.c_str(), static_cast<unsigned long long>(*r));
    return 0;
  });
}

}  // namespace modelseal::cli
