// Chat templates and tool calls through llama.cpp's common chat library (see chat.h).
// The library reports failures by exceptions; they are turned into Errors here.
#include "engine/chat.h"

#include <chat.h>
#include <common.h>

#include <random>
#include <set>

namespace modelseal::engine {

namespace {

constexpr char kModule[] = "engine";

common_chat_msg ToLibrary(const ChatMessage& m) {
  common_chat_msg out;
  out.role = m.role;
  out.content = m.content;
  out.reasoning_content = m.reasoning_content;
  out.tool_name = m.tool_name;
  out.tool_call_id = m.tool_call_id;
  for (const auto& tc : m.tool_calls) out.tool_calls.push_back({tc.name, tc.arguments, tc.id});
  return out;
}

std::string NewToolCallId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof(kChars) - 1)];
  return id;
}

std::string Strip(std::string s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0 ? s.substr(prefix.size()) : s;
}

}  // namespace

struct ChatTemplates {
  common_chat_templates_ptr t;
};

void ChatTemplatesFree::operator()(ChatTemplates* t) const {
  delete t;
}

struct ChatSyntax {
  common_chat_parser_params params;
};

Result<ChatTemplatesPtr> LoadChatTemplates(const llama_model* model, TemplateInfo* info) {
  ChatTemplatesPtr out(new ChatTemplates());
  try {
    out->t = common_chat_templates_init(model, "");
    info->source = common_chat_templates_source(out->t.get());
    info->is_default = !common_chat_templates_was_explicit(out->t.get());
    auto caps = common_chat_templates_get_caps(out->t.get());
    info->supports_tools = caps["supports_tools"];
  } catch (const std::exception& e) {
    return MakeError(
        ErrorCode::kInvalidArgument, kModule, "template-invalid",
        std::string("the model's chat template is not Jinja llama.cpp can read: ") + e.what());
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const auto piece = [&](llama_token t) {
    return t == LLAMA_TOKEN_NULL ? std::string() : common_token_to_piece(vocab, t, true);
  };
  info->bos_token = piece(llama_vocab_bos(vocab));
  info->eos_token = piece(llama_vocab_eos(vocab));
  return out;
}

Result<ChatPlan> RenderChat(const ChatTemplates& templates, const ChatRequest& request,
                            std::chrono::system_clock::time_point now) {
  if (request.messages.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "invalid-argument",
                     "a chat needs at least one message");
  }
  common_chat_templates_inputs in;
  for (const auto& m : request.messages) in.messages.push_back(ToLibrary(m));
  for (const auto& t : request.tools) in.tools.push_back({t.name, t.description, t.parameters});
  in.tool_choice = request.tool_choice == ToolChoice::kNone       ? COMMON_CHAT_TOOL_CHOICE_NONE
                   : request.tool_choice == ToolChoice::kRequired ? COMMON_CHAT_TOOL_CHOICE_REQUIRED
                                                                  : COMMON_CHAT_TOOL_CHOICE_AUTO;
  in.parallel_tool_calls = request.parallel_tool_calls;
  in.add_generation_prompt = true;
  in.use_jinja = true;
  in.reasoning_format = COMMON_REASONING_FORMAT_NONE;
  in.now = now;
  common_chat_params params;
  try {
    params = common_chat_templates_apply(templates.t.get(), in);
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, kModule, "template-error",
                     "the model's chat template refused these messages: " +
                         Strip(e.what(), "Jinja Exception: "));
  }
  ChatPlan plan;
  plan.prompt = std::move(params.prompt);
  plan.additional_stops = params.additional_stops;
  const bool tools = !request.tools.empty() && request.tool_choice != ToolChoice::kNone;
  if (tools) {
    plan.grammar.grammar = params.grammar;
    plan.grammar.lazy = params.grammar_lazy;
    for (const auto& t : params.grammar_triggers) {
      plan.grammar.triggers.emplace_back(static_cast<int>(t.type), t.value);
    }
    plan.grammar.preserved_tokens = params.preserved_tokens;
    plan.grammar.generation_prompt = params.generation_prompt;
    auto syntax = std::make_shared<ChatSyntax>();
    syntax->params = common_chat_parser_params(params);
    syntax->params.reasoning_format = COMMON_REASONING_FORMAT_NONE;
    syntax->params.parse_tool_calls = true;
    try {
      if (!params.parser.empty()) syntax->params.parser.load(params.parser);
    } catch (const std::exception& e) {
      return MakeError(ErrorCode::kInternal, kModule, "template-error",
                       std::string("the chat format's parser could not be loaded: ") + e.what());
    }
    plan.syntax = std::move(syntax);
  }
  return plan;
}

// ---- reading answers back ----------------------------------------------------------

struct ChatReader::Impl {
  std::shared_ptr<const ChatSyntax> syntax;
  std::string text;              // generated so far
  common_chat_msg parsed;        // the message as last parsed
  std::vector<std::string> ids;  // tool call ids, stable across parses
  std::set<size_t> announced;    // tool calls whose id and name were sent
  ChatMessage message;

  void Sync() {
    message.role = "assistant";
    message.content = parsed.content;
    message.reasoning_content = parsed.reasoning_content;
    message.tool_calls.clear();
    for (const auto& tc : parsed.tool_calls) {
      message.tool_calls.push_back({tc.id, tc.name, tc.arguments});
    }
  }

  // Parses the text so far; the changes, with a tool call's id and name sent once,
  // before its arguments, when the name is whole (as llama-server streams them).
  std::vector<ChatDelta> Update(bool partial) {
    common_chat_msg next;
    try {
      next = common_chat_parse(text, partial, syntax->params);
    } catch (const std::exception&) {
      if (partial) return {};  // not readable yet: wait for more text
      next = common_chat_msg();
      next.role = "assistant";
      next.content = text;  // not a well-formed tool call after all: plain text
      next.tool_calls.clear();
    }
    if (next.empty() && partial) return {};
    next.set_tool_call_ids(ids, NewToolCallId);
    std::vector<common_chat_msg_diff> diffs;
    try {
      diffs = common_chat_msg_diff::compute_diffs(parsed, next);
    } catch (const std::exception&) {
      if (partial) return {};
      diffs.clear();
    }
    parsed = std::move(next);
    Sync();
    std::vector<ChatDelta> out;
    const auto header = [&](size_t i) {
      ChatDelta d;
      d.tool_calls.push_back({i, parsed.tool_calls[i].id, parsed.tool_calls[i].name, ""});
      out.push_back(std::move(d));
      announced.insert(i);
    };
    for (auto& d : diffs) {
      for (size_t i = 0; i < parsed.tool_calls.size(); ++i) {
        if (announced.count(i) || parsed.tool_calls[i].name.empty()) continue;
        if (d.tool_call_index != i || !d.tool_call_delta.arguments.empty()) header(i);
      }
      if (d.tool_call_index == std::string::npos) {
        if (!d.content_delta.empty()) {
          ChatDelta c;
          c.content = d.content_delta;
          out.push_back(std::move(c));
        }
        continue;
      }
      const size_t i = d.tool_call_index;
      if (!announced.count(i) && (partial && d.tool_call_delta.arguments.empty())) continue;
      if (!announced.count(i)) header(i);
      if (!d.tool_call_delta.arguments.empty()) {
        ChatDelta a;
        a.tool_calls.push_back({i, "", "", d.tool_call_delta.arguments});
        out.push_back(std::move(a));
      }
    }
    if (!partial) {
      for (size_t i = 0; i < parsed.tool_calls.size(); ++i) {
        if (!announced.count(i)) header(i);
      }
    }
    return out;
  }
};

ChatReader::ChatReader(std::shared_ptr<const ChatSyntax> syntax) : impl_(std::make_unique<Impl>()) {
  impl_->syntax = std::move(syntax);
  impl_->message.role = "assistant";
}

ChatReader::~ChatReader() = default;

std::vector<ChatDelta> ChatReader::Push(std::string_view text) {
  if (text.empty()) return {};
  if (!impl_->syntax) {
    impl_->message.content.append(text);
    ChatDelta d;
    d.content = std::string(text);
    return {std::move(d)};
  }
  impl_->text.append(text);
  return impl_->Update(true);
}

std::vector<ChatDelta> ChatReader::Finish() {
  if (!impl_->syntax) return {};
  return impl_->Update(false);
}

const ChatMessage& ChatReader::message() const {
  return impl_->message;
}

}  // namespace modelseal::engine
