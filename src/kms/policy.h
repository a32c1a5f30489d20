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
// Condition key names are matched without regard to case, as IAM documents
// ("Condition key names are not case-sensitive",
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html);
// values are compared as the operator says. A request key with several values
// (kms:EncryptionContextKeys always is one; see
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html)
// is compared as a set: ForAnyValue — some value satisfies the operator;
// ForAllValues — every value does (true when the key is absent). IAM says
// multivalued keys require a set operator and does not define the result
// without one; modelseal reads a plain operator on a multivalued key as "some
// request value equals one of the policy's values" and its negation as "no
// request value does", never as "the first value" (LintPolicy warns about it).
//
// Principals: a statement naming the caller's ARN (or "*") grants directly; one
// naming the caller's account (its id or arn:aws:iam::<id>:root) delegates to the
// account, that is to its IAM (identity) policies — AWS's meaning of the account
// principal (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html).
// Evaluate() reports which of the two decided; Authorize() (authorize.h) combines it
// with the caller's identity policy.
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

// Parses and validates a key policy (at most kMaxPolicyBytes): every statement
// names a Principal.
Result<Policy> ParsePolicy(const std::string& json_text);
// Parses an IAM identity policy (attached to a principal, so no statement names
// a Principal); its statements apply to that principal only.
Result<Policy> ParseIdentityPolicy(const std::string& json_text);
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
  bool principal_via_account = false;  // matched only as the caller's account
  bool action_matched = false;
  bool resource_matched = false;
  std::vector<ConditionTrace> conditions;
  bool applies = false;  // everything above matched
};

enum class Effect { kAllow, kExplicitDeny, kImplicitDeny };

struct Decision {
  Effect effect = Effect::kImplicitDeny;
  // The statement that decided (Allow or explicit Deny); unset for implicit deny.
  // An Allow from a statement naming the caller's ARN or "*" wins over one that
  // names only the caller's account.
  std::optional<size_t> statement;
  std::string sid;
  // The deciding Allow names the caller's account, not the caller: the account's
  // identity policy must allow the request too (see authorize.h).
  bool via_account = false;
  std::vector<StatementTrace> trace;  // every statement, in order

  bool allowed() const { return effect == Effect::kAllow; }
  std::string Describe() const;  // "allowed by statement 2 (\"AttestedDecrypt\")"
};

Decision Evaluate(const Policy& policy, const RequestContext& request);

// `policy` with a statement `sid` (replacing one with that Sid, keeping every
// other) that allows `actions` (default kms:Decrypt) to `principal` only with an
// attestation document whose SHA-384 PCRs equal `pcrs` (index -> hex). Refuses a
// statement that pins no boot PCR (0-7; reason "no-boot-pcr": PCRs 8-15 can be
// extended by the OS to any expected value); "bad-pcr", "no-pcrs", "no-principal".
Result<Policy> WithAttestedStatement(Policy policy, const std::string& principal,
                                     const std::vector<std::string>& actions,
                                     const std::map<uint32_t, std::string>& pcrs,
                                     const std::string& sid);

// The account id in an ARN ("arn:aws:iam::111122223333:user/x" -> "111122223333").
std::string AccountOfArn(const std::string& arn);

// IAM-style wildcard match: '*' any run, '?' any single character.
bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case);

// Condition keys whose request values form a set (IAM "multivalued" keys).
bool IsMultivaluedKey(std::string_view key);
// "kms:RecipientAttestation:NitroTPMPCR4" -> 4 (also ":PCR<N>"); nullopt otherwise.
std::optional<uint32_t> AttestationPcrIndex(std::string_view key);

}  // namespace modelseal::kms
