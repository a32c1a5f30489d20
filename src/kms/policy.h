// Key policies: the IAM JSON policy language as AWS KMS applies it to a key.
//
// Supported: Version, Id, Statement (object or array), Sid, Effect, Principal
// ("*", {"AWS": ARN | account id | [..]}), Action / NotAction and Resource /
// NotResource with * and ? wildcards, and Condition with the operators
// StringEquals, StringNotEquals, StringEqualsIgnoreCase, StringNotEqualsIgnoreCase,
// StringLike, StringNotLike, Bool and Null, each with the IfExists suffix and the
// ForAnyValue: / ForAllValues: set qualifiers. Condition keys are matched
// case-insensitively, as AWS does.
//
// Evaluation: a statement applies when its principal, action, resource and every
// condition match; an applicable explicit Deny wins, then any applicable Allow,
// otherwise the request is implicitly denied. A missing condition key makes a
// positive operator false and a negated one true; IfExists makes any operator
// true when the key is missing; Null tests presence. Several keys under one
// operator and several operators are ANDed; several values for a key are ORed
// (NORed for negated operators).
//
// Pure functions; thread-safe. Parse errors: module "kms", reason
// "malformed-policy", with a message naming the statement and element.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace modelseal::kms {

inline constexpr size_t kMaxPolicyBytes = 32 * 1024;

struct Condition {
  std::string op;       // as written, e.g. "ForAnyValue:StringEqualsIfExists"
  std::string base_op;  // "StringEquals"
  bool if_exists = false;
  enum class Set { kNone, kAnyValue, kAllValues } set = Set::kNone;
  std::string key;  // as written
  std::vector<std::string> values;
};

struct Statement {
  std::string sid;
  bool allow = false;
  bool any_principal = false;
  std::vector<std::string> principals;  // ARNs or account ids
  std::vector<std::string> actions;
  bool not_action = false;
  std::vector<std::string> resources;
  bool not_resource = false;
  std::vector<Condition> conditions;
};

struct Policy {
  std::string version;
  std::string id;
  std::vector<Statement> statements;
};

// Parses and validates a policy document (at most kMaxPolicyBytes).
Result<Policy> ParsePolicy(const std::string& json_text);
// Serialises back to JSON (statement order and content preserved).
std::string PolicyToJson(const Policy& policy, bool pretty = true);

// What the request looks like to the policy.
struct RequestContext {
  std::string principal_arn;  // "arn:aws:iam::111122223333:user/alice"
  std::string action;         // "kms:Decrypt"
  std::string resource;       // the key ARN
  // Condition keys and their values (several for multi-valued keys). Keys are
  // stored as given and looked up case-insensitively.
  std::map<std::string, std::vector<std::string>> keys;
};

struct ConditionTrace {
  std::string op;
  std::string key;
  std::vector<std::string> policy_values;
  std::optional<std::vector<std::string>> request_values;  // nullopt: key missing
  bool matched = false;
};

struct StatementTrace {
  size_t index = 0;
  std::string sid;
  bool allow = false;
  bool principal_matched = false;
  bool action_matched = false;
  bool resource_matched = false;
  std::vector<ConditionTrace> conditions;
  bool applies = false;  // everything above matched
};

enum class Effect { kAllow, kExplicitDeny, kImplicitDeny };

struct Decision {
  Effect effect = Effect::kImplicitDeny;
  // The statement that decided (Allow or explicit Deny); unset for implicit deny.
  std::optional<size_t> statement;
  std::string sid;
  std::vector<StatementTrace> trace;  // every statement, in order

  bool allowed() const { return effect == Effect::kAllow; }
  std::string Describe() const;  // "allowed by statement 2 (\"AttestedDecrypt\")"
};

Decision Evaluate(const Policy& policy, const RequestContext& request);

// IAM-style wildcard match: '*' any run, '?' any single character.
bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case);

}  // namespace modelseal::kms
