// Chat templates and reading answers back, through llama.cpp's common chat library
// (the one llama-server uses with --jinja, from the same pinned release): the model's
// own Jinja template rendered by a real Jinja engine, tools passed to it, and tool
// calls parsed out of the generated text. Internal to the engine; nothing of the
// library's types leaks out of chat.cpp.
#pragma once

#include <llama.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "engine/engine.h"

namespace modelseal::engine {

// The model's templates (the default one and a "tool_use" one when the GGUF has it).
struct ChatTemplates;
struct ChatTemplatesFree {
  void operator()(ChatTemplates* t) const;
};
using ChatTemplatesPtr = std::unique_ptr<ChatTemplates, ChatTemplatesFree>;

struct TemplateInfo {
  std::string source;           // the Jinja text in use
  bool is_default = false;      // the model has none: ChatML, as llama-server
  bool supports_tools = false;  // the template renders a tools list
  std::string bos_token, eos_token;
};

// Parses the model's chat template (or the default). Fails with "template-invalid"
// when it is not Jinja the library can parse.
Result<ChatTemplatesPtr> LoadChatTemplates(const llama_model* model, TemplateInfo* info);

// A grammar the sampler must follow (tool calls), as the library computed it.
struct GrammarSpec {
  std::string grammar;  // GBNF; empty: none
  bool lazy = false;    // only once a trigger appeared
  // Triggers: (common_grammar_trigger_type, text).
  std::vector<std::pair<int, std::string>> triggers;
  std::vector<std::string> preserved_tokens;  // special tokens kept as text
  std::string generation_prompt;              // what the prompt already opened
};

struct ChatSyntax;  // how to read the answer back (the library's parser settings)

struct ChatPlan {
  std::string prompt;
  GrammarSpec grammar;
  std::vector<std::string> additional_stops;
  // Null: the answer is plain content. Otherwise tool calls are parsed out of it.
  std::shared_ptr<const ChatSyntax> syntax;
};

// Renders `request` with the model's template as of `now` (strftime_now). Fails with
// "template-error" (kInvalidArgument) when the template raises an exception (its
// message is the error's), "invalid-argument" for messages the library refuses.
Result<ChatPlan> RenderChat(const ChatTemplates& templates, const ChatRequest& request,
                            std::chrono::system_clock::time_point now);

// Reads generated text back into an assistant message, incrementally (streaming).
class ChatReader {
 public:
  explicit ChatReader(std::shared_ptr<const ChatSyntax> syntax);
  ~ChatReader();
  ChatReader(const ChatReader&) = delete;
  ChatReader& operator=(const ChatReader&) = delete;

  // Adds generated text; returns the changes to the message it makes (possibly none:
  // text that may still become a tool call is held back).
  std::vector<ChatDelta> Push(std::string_view text);
  // The text is complete: the last changes (held-back text, whole tool calls).
  std::vector<ChatDelta> Finish();
  const ChatMessage& message() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelseal::engine
