#include "kms/policy.h"
#include "common/text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace modelseal::kms {

using nlohmann::json;

namespace {

Error Malformed(const std::string& msg) {
  return MakeError(ErrorCode::kInvalidArgument, "kms", "malformed-policy", msg);
}

const std::vector<std::string> kBaseOps = {"StringEquals",
                                           "StringNotEquals",
                                           "StringEqualsIgnoreCase",
                                           "StringNotEqualsIgnoreCase",
                                           "StringLike",
                                           "StringNotLike",
                                           "Bool",
                                           "Null"};

bool IsNegated(const std::string& base) {
  return base == "StringNotEquals" || base == "StringNotEqualsIgnoreCase" ||
         base == "StringNotLike";
}

// A string or an array of strings (booleans accepted and written as text, as AWS does).
Result<std::vector<std::string>> StringList(const json& v, const std::string& where) {
  std::vector<std::string> out;
  auto one = [&](const json& e) -> Status {
    if (e.is_string()) {
      out.push_back(e.get<std::string>());
    } else if (e.is_boolean()) {
      out.push_back(e.get<bool>() ? "true" : "false");
    } else {
      return Malformed(where + " must be a string or a list of strings");
    }
    return Ok{};
  };
  if (v.is_array()) {
    if (v.empty()) return Malformed(where + " is an empty list");
    for (const auto& e : v) MS_RETURN_IF_ERROR(one(e));
  } else {
    MS_RETURN_IF_ERROR(one(v));
  }
  return out;
}

Result<Condition> ParseOperator(const std::string& op, const std::string& where) {
  Condition c;
  c.op = op;
  std::string rest = op;
  if (rest.rfind("ForAnyValue:", 0) == 0) {
    c.set = Condition::Set::kAnyValue;
    rest = rest.substr(12);
  } else if (rest.rfind("ForAllValues:", 0) == 0) {
    c.set = Condition::Set::kAllValues;
    rest = rest.substr(13);
  }
  if (rest.size() > 8 && rest.compare(rest.size() - 8, 8, "IfExists") == 0) {
    c.if_exists = true;
    rest = rest.substr(0, rest.size() - 8);
  }
  if (std::find(kBaseOps.begin(), kBaseOps.end(), rest) == kBaseOps.end() ||
      (rest == "Null" && (c.if_exists || c.set != Condition::Set::kNone))) {
    return Malformed(where + ": unsupported condition operator \"" + op + "\"");
  }
  c.base_op = rest;
  return c;
}

Result<Statement> ParseStatement(const json& s, size_t index, bool identity) {
  const std::string where = "statement " + std::to_string(index + 1);
  if (!s.is_object()) return Malformed(where + " is not an object");
  static const std::vector<std::string> kKnown = {
      "Sid", "Effect", "Principal", "Action", "NotAction", "Resource", "NotResource", "Condition"};
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (it.key() == "NotPrincipal")
      return Malformed(where + ": NotPrincipal is not supported in key policies");
    if (std::find(kKnown.begin(), kKnown.end(), it.key()) == kKnown.end()) {
      return Malformed(where + ": unknown element \"" + it.key() + "\"");
    }
  }
  Statement st;
  if (s.contains("Sid")) {
    if (!s["Sid"].is_string()) return Malformed(where + ": Sid must be a string");
    st.sid = s["Sid"].get<std::string>();
  }
  if (!s.contains("Effect") || !s["Effect"].is_string() ||
      (s["Effect"] != "Allow" && s["Effect"] != "Deny")) {
    return Malformed(where + ": Effect must be \"Allow\" or \"Deny\"");
  }
  st.allow = s["Effect"] == "Allow";

  if (identity) {
    if (s.contains("Principal"))
      return Malformed(where + ": an identity policy names no Principal (it is the principal's)");
    st.any_principal = true;
  } else if (!s.contains("Principal")) {
    return Malformed(where + ": Principal is required in a key policy");
  }
  const json& p = identity ? json("*") : s["Principal"];
  if (p.is_string()) {
    if (p != "*") return Malformed(where + ": Principal must be \"*\" or {\"AWS\": ...}");
    st.any_principal = true;
  } else if (p.is_object()) {
    for (auto it = p.begin(); it != p.end(); ++it) {
      if (it.key() != "AWS")
        return Malformed(where + ": principal type \"" + it.key() + "\" is not supported");
      MS_ASSIGN_OR_RETURN(auto arns, StringList(it.value(), where + ": Principal.AWS"));
      for (auto& a : arns) {
        if (a == "*") st.any_principal = true;
        st.principals.push_back(a);
      }
    }
    if (!st.any_principal && st.principals.empty())
      return Malformed(where + ": Principal is empty");
  } else {
    return Malformed(where + ": Principal must be \"*\" or an object");
  }

  const bool has_action = s.contains("Action"), has_not_action = s.contains("NotAction");
  if (has_action == has_not_action)
    return Malformed(where + ": exactly one of Action and NotAction is required");
  st.not_action = has_not_action;
  MS_ASSIGN_OR_RETURN(st.actions,
                      StringList(s[has_action ? "Action" : "NotAction"], where + ": Action"));
  for (const auto& a : st.actions) {
    if (a != "*" && AsciiLower(a).rfind("kms:", 0) != 0) {
      return Malformed(where + ": action \"" + a + "\" is not a kms: action");
    }
  }
  const bool has_res = s.contains("Resource"), has_not_res = s.contains("NotResource");
  if (has_res == has_not_res)
    return Malformed(where + ": exactly one of Resource and NotResource is required");
  st.not_resource = has_not_res;
  MS_ASSIGN_OR_RETURN(st.resources,
                      StringList(s[has_res ? "Resource" : "NotResource"], where + ": Resource"));

  if (s.contains("Condition")) {
    const json& c = s["Condition"];
    if (!c.is_object()) return Malformed(where + ": Condition must be an object");
    for (auto op = c.begin(); op != c.end(); ++op) {
      MS_ASSIGN_OR_RETURN(Condition proto, ParseOperator(op.key(), where));
      if (!op.value().is_object() || op.value().empty()) {
        return Malformed(where + ": condition \"" + op.key() + "\" must map keys to values");
      }
      for (auto k = op.value().begin(); k != op.value().end(); ++k) {
        Condition cond = proto;
        cond.key = k.key();
        MS_ASSIGN_OR_RETURN(cond.values,
                            StringList(k.value(), where + ": condition key \"" + k.key() + "\""));
        if (cond.base_op == "Bool" || cond.base_op == "Null") {
          for (const auto& v : cond.values) {
            if (AsciiLower(v) != "true" && AsciiLower(v) != "false") {
              return Malformed(where + ": " + cond.base_op +
                               " values must be \"true\" or \"false\"");
            }
          }
        }
        st.conditions.push_back(std::move(cond));
      }
    }
  }
  return st;
}

bool MatchValue(const std::string& base, const std::string& policy_value,
                const std::string& value) {
  if (base == "StringEquals" || base == "StringNotEquals") return policy_value == value;
  if (base == "StringEqualsIgnoreCase" || base == "StringNotEqualsIgnoreCase") {
    return AsciiLower(policy_value) == AsciiLower(value);
  }
  if (base == "StringLike" || base == "StringNotLike")
    return WildcardMatch(policy_value, value, false);
  if (base == "Bool") return AsciiLower(policy_value) == AsciiLower(value);
  return false;
}

// Does one request value satisfy the operator against the policy's values?
bool MatchOne(const Condition& c, const std::string& value) {
  const bool negated = IsNegated(c.base_op);
  bool any = false;
  for (const auto& pv : c.values) any = any || MatchValue(c.base_op, pv, value);
  return negated ? !any : any;
}

const std::vector<std::string>* Lookup(const RequestContext& r, const std::string& key) {
  const std::string want = AsciiLower(key);
  for (const auto& [k, v] : r.keys) {
    if (AsciiLower(k) == want) return &v;
  }
  return nullptr;
}

bool EvaluateCondition(const Condition& c, const RequestContext& r, ConditionTrace& trace) {
  const auto* values = Lookup(r, c.key);
  trace.op = c.op;
  trace.key = c.key;
  trace.policy_values = c.values;
  if (values) trace.request_values = *values;
  const bool present = values != nullptr && !values->empty();
  if (c.base_op == "Null") {
    const bool want_missing = AsciiLower(c.values.front()) == "true";
    return want_missing != present;
  }
  if (!present) {
    if (c.if_exists) return true;
    if (c.set == Condition::Set::kAllValues) return true;
    if (c.set == Condition::Set::kAnyValue) return false;
    return IsNegated(c.base_op);
  }
  switch (c.set) {
    case Condition::Set::kAnyValue:
      return std::any_of(values->begin(), values->end(),
                         [&](const auto& v) { return MatchOne(c, v); });
    case Condition::Set::kAllValues:
      return std::all_of(values->begin(), values->end(),
                         [&](const auto& v) { return MatchOne(c, v); });
    case Condition::Set::kNone: {
      // A single-valued key has one value. For several (a multivalued key used
      // without a set operator, or context keys that differ only in case): the
      // positive operator holds when some value matches, its negation when none
      // does — never "the first value" (see policy.h).
      const bool some_match = std::any_of(values->begin(), values->end(), [&](const auto& v) {
        return std::any_of(c.values.begin(), c.values.end(),
                           [&](const auto& pv) { return MatchValue(c.base_op, pv, v); });
      });
      return IsNegated(c.base_op) ? !some_match : some_match;
    }
  }
  return false;
}

enum class PrincipalMatch { kNone, kDirect, kAccount };

PrincipalMatch MatchPrincipal(const Statement& st, const std::string& principal) {
  if (st.any_principal) return PrincipalMatch::kDirect;
  const std::string account = AccountOfArn(principal);
  bool account_match = false;
  for (const auto& p : st.principals) {
    if (p == principal) return PrincipalMatch::kDirect;
    // An account id or the account's root ARN stands for the account: the
    // account's identity policies decide for its principals.
    if (!account.empty() && (p == account || p == "arn:aws:iam::" + account + ":root")) {
      account_match = true;
    }
  }
  return account_match ? PrincipalMatch::kAccount : PrincipalMatch::kNone;
}

}  // namespace

bool IsMultivaluedKey(std::string_view key) {
  static const std::vector<std::string> kMulti = {"kms:encryptioncontextkeys", "aws:tagkeys",
                                                  "kms:grantoperations"};
  return std::find(kMulti.begin(), kMulti.end(), AsciiLower(key)) != kMulti.end();
}

std::optional<uint32_t> AttestationPcrIndex(std::string_view key) {
  const std::string k = AsciiLower(key);
  for (const std::string prefix :
       {"kms:recipientattestation:nitrotpmpcr", "kms:recipientattestation:pcr"}) {
    if (k.rfind(prefix, 0) != 0) continue;
    const std::string digits = k.substr(prefix.size());
    if (digits.empty() || digits.size() > 2 ||
        !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      return std::nullopt;
    return static_cast<uint32_t>(std::stoul(digits));
  }
  return std::nullopt;
}

bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case) {
  auto eq = [&](char a, char b) { return ignore_case ? AsciiLower(a) == AsciiLower(b) : a == b; };
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() &&
        (pattern[p] == '?' || (pattern[p] != '*' && eq(pattern[p], text[t])))) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {

Result<Policy> ParseAny(const std::string& text, bool identity) {
  if (text.size() > kMaxPolicyBytes) {
    return Malformed("policy is " + std::to_string(text.size()) + " bytes; the limit is 32768");
  }
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return Malformed("policy is not valid JSON");
  if (!doc.is_object()) return Malformed("policy must be a JSON object");
  Policy p;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() != "Version" && it.key() != "Id" && it.key() != "Statement") {
      return Malformed("unknown top-level element \"" + it.key() + "\"");
    }
  }
  if (doc.contains("Version")) {
    if (doc["Version"] != "2012-10-17" && doc["Version"] != "2008-10-17") {
      return Malformed("Version must be \"2012-10-17\" or \"2008-10-17\"");
    }
    p.version = doc["Version"].get<std::string>();
  }
  if (doc.contains("Id")) {
    if (!doc["Id"].is_string()) return Malformed("Id must be a string");
    p.id = doc["Id"].get<std::string>();
  }
  if (!doc.contains("Statement")) return Malformed("Statement is required");
  const json& st = doc["Statement"];
  if (st.is_object()) {
    MS_ASSIGN_OR_RETURN(auto s, ParseStatement(st, 0, identity));
    p.statements.push_back(std::move(s));
  } else if (st.is_array() && !st.empty()) {
    for (size_t i = 0; i < st.size(); ++i) {
      MS_ASSIGN_OR_RETURN(auto s, ParseStatement(st[i], i, identity));
      p.statements.push_back(std::move(s));
    }
  } else {
    return Malformed("Statement must be an object or a non-empty list");
  }
  return p;
}

}  // namespace

Result<Policy> ParsePolicy(const std::string& text) {
  return ParseAny(text, false);
}

Result<Policy> ParseIdentityPolicy(const std::string& text) {
  return ParseAny(text, true);
}

std::string PolicyToJson(const Policy& policy, bool pretty) {
  json doc = json::object();
  if (!policy.version.empty()) doc["Version"] = policy.version;
  if (!policy.id.empty()) doc["Id"] = policy.id;
  json stmts = json::array();
  for (const auto& s : policy.statements) {
    json j = json::object();
    if (!s.sid.empty()) j["Sid"] = s.sid;
    j["Effect"] = s.allow ? "Allow" : "Deny";
    if (s.principals.empty()) {
      j["Principal"] = "*";
    } else {
      j["Principal"] = {
          {"AWS", s.principals.size() == 1 ? json(s.principals[0]) : json(s.principals)}};
    }
    j[s.not_action ? "NotAction" : "Action"] =
        s.actions.size() == 1 ? json(s.actions[0]) : json(s.actions);
    j[s.not_resource ? "NotResource" : "Resource"] =
        s.resources.size() == 1 ? json(s.resources[0]) : json(s.resources);
    if (!s.conditions.empty()) {
      json c = json::object();
      for (const auto& cond : s.conditions) {
        c[cond.op][cond.key] = cond.values.size() == 1 ? json(cond.values[0]) : json(cond.values);
      }
      j["Condition"] = c;
    }
    stmts.push_back(j);
  }
  doc["Statement"] = stmts;
  return pretty ? doc.dump(2) : doc.dump();
}

Decision Evaluate(const Policy& policy, const RequestContext& r) {
  Decision d;
  std::optional<size_t> first_allow, first_account_allow, first_deny;
  for (size_t i = 0; i < policy.statements.size(); ++i) {
    const Statement& s = policy.statements[i];
    StatementTrace t;
    t.index = i;
    t.sid = s.sid;
    t.allow = s.allow;
    const PrincipalMatch pm = MatchPrincipal(s, r.principal_arn);
    t.principal_matched = pm != PrincipalMatch::kNone;
    t.principal_via_account = pm == PrincipalMatch::kAccount;
    bool action = std::any_of(s.actions.begin(), s.actions.end(),
                              [&](const auto& a) { return WildcardMatch(a, r.action, true); });
    t.action_matched = s.not_action ? !action : action;
    bool resource = std::any_of(s.resources.begin(), s.resources.end(),
                                [&](const auto& p) { return WildcardMatch(p, r.resource, false); });
    t.resource_matched = s.not_resource ? !resource : resource;
    bool conditions = true;
    for (const auto& c : s.conditions) {
      ConditionTrace ct;
      ct.matched = EvaluateCondition(c, r, ct);
      conditions = conditions && ct.matched;
      t.conditions.push_back(std::move(ct));
    }
    t.applies = t.principal_matched && t.action_matched && t.resource_matched && conditions;
    if (t.applies) {
      if (s.allow && !t.principal_via_account && !first_allow) first_allow = i;
      if (s.allow && t.principal_via_account && !first_account_allow) first_account_allow = i;
      // A Deny naming the account denies every principal of it.
      if (!s.allow && !first_deny) first_deny = i;
    }
    d.trace.push_back(std::move(t));
  }
  if (first_deny) {
    d.effect = Effect::kExplicitDeny;
    d.statement = first_deny;
  } else if (first_allow) {
    d.effect = Effect::kAllow;
    d.statement = first_allow;
  } else if (first_account_allow) {
    d.effect = Effect::kAllow;
    d.statement = first_account_allow;
    d.via_account = true;
  }
  if (d.statement) d.sid = policy.statements[*d.statement].sid;
  return d;
}

std::string Decision::Describe() const {
  if (!statement) return "denied: no statement allows it (implicit deny)";
  std::string who = "statement " + std::to_string(*statement + 1);
  if (!sid.empty()) who += " (\"" + sid + "\")";
  return effect == Effect::kAllow ? "allowed by " + who : "denied by " + who + " (explicit deny)";
}

// arn:aws:iam::111122223333:user/alice -> 111122223333
std::string AccountOfArn(const std::string& arn) {
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    pos = arn.find(':', pos);
    if (pos == std::string::npos) return "";
    ++pos;
  }
  const size_t end = arn.find(':', pos);
  return end == std::string::npos ? "" : arn.substr(pos, end - pos);
}

}  // namespace modelseal::kms
