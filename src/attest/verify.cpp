// Fail-closed verification of attestation documents, one reported check at a time.
#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <ctime>

#include "attest/internal.h"
#include "common/clock.h"
#include "common/ossl.h"

namespace modelseal::attest {

namespace {

constexpr uint64_t kFutureSkewMs = 5 * 60 * 1000;

struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

CheckResult Made(const char* name, bool ok, std::string detail) {
  return CheckResult{name, ok ? CheckOutcome::kPassed : CheckOutcome::kFailed, std::move(detail)};
}

// Leaf -> cabundle -> one of `roots`, signatures and CA constraints only (dates
// are the validity check's job). Returns the matched root's name.
Result<std::string> CheckChain(const AttestationDocument& d,
                               const std::vector<TrustedRoot>& roots) {
  auto fail = [](std::string m) {
    return MakeError(ErrorCode::kPermissionDenied, "attest", "chain", std::move(m));
  };
  MS_ASSIGN_OR_RETURN(X509Ptr leaf, ParseDer(d.certificate));
  EVP_PKEY* key = X509_get0_pubkey(leaf.get());
  char group[64] = {0};
  size_t glen = 0;
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
      EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1 ||
      std::string(group) != "secp384r1") {
    return fail("the leaf certificate's key is not EC P-384");
  }
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  if (!store || !untrusted) return OpenSslError("attest", "allocate X509 store");
  for (const auto& r : roots) {
    MS_ASSIGN_OR_RETURN(X509Ptr x, ParseDer(r.der));
    if (X509_STORE_add_cert(store.get(), x.get()) != 1) {
      ERR_clear_error();  // a duplicate root is harmless
    }
  }
  for (size_t i = 0; i < d.cabundle.size(); ++i) {
    auto x = ParseDer(d.cabundle[i]);
    if (!x.ok()) return fail("cabundle entry " + std::to_string(i) + ": " + x.error().message);
    sk_X509_push(untrusted.get(), x->release());
  }
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) != 1) {
    return OpenSslError("attest", "initialise chain verification");
  }
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return fail(std::string("no chain to a trusted root: ") + X509_verify_cert_error_string(err) +
                " (depth " + std::to_string(X509_STORE_CTX_get_error_depth(ctx.get())) + ")");
  }
  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  X509* top = sk_X509_value(chain, sk_X509_num(chain) - 1);
  const Bytes top_der = ToDer(top);
  for (const auto& r : roots) {
    if (r.der == top_der) return r.name;
  }
  return fail("the chain ended at a certificate that is not one of the trusted roots");
}

Bytes ChainCacheKey(const AttestationDocument& d, const std::vector<TrustedRoot>& roots) {
  MdCtxPtr md(EVP_MD_CTX_new());
  EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
  auto add = [&](const Bytes& b) {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i)
      len[i] = static_cast<uint8_t>(static_cast<uint64_t>(b.size()) >> (56 - 8 * i));
    EVP_DigestUpdate(md.get(), len, sizeof(len));  // length-prefixed: no ambiguity
    EVP_DigestUpdate(md.get(), b.data(), b.size());
  };
  add(d.certificate);
  for (const auto& c : d.cabundle) add(c);
  for (const auto& r : roots) {
    add(Bytes(r.name.begin(), r.name.end()));
    add(r.der);
  }
  Bytes out(32);
  unsigned int n = 0;
  EVP_DigestFinal_ex(md.get(), out.data(), &n);
  return out;
}

std::string ValidityProblem(const Bytes& der, const char* what, uint64_t at_ms) {
  auto ci = DescribeCertificate(der);
  if (!ci.ok()) return std::string(what) + ": " + ci.error().message;
  if (at_ms < ci->not_before_ms) {
    return std::string(what) + " (" + ci->subject + ") is not valid before " +
           FormatTimeMs(ci->not_before_ms);
  }
  if (at_ms > ci->not_after_ms) {
    return std::string(what) + " (" + ci->subject + ") expired at " +
           FormatTimeMs(ci->not_after_ms);
  }
  return {};
}

Result<std::shared_ptr<EVP_PKEY>> LeafKey(const AttestationDocument& d) {
  MS_ASSIGN_OR_RETURN(X509Ptr leaf, ParseDer(d.certificate));
  EVP_PKEY* key = X509_get_pubkey(leaf.get());  // a new reference
  if (key == nullptr) return OpenSslError("attest", "read the leaf public key");
  return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

// The window in which every certificate of the chain is valid.
Result<std::pair<uint64_t, uint64_t>> ChainWindow(const AttestationDocument& d,
                                                  const Bytes& root_der) {
  uint64_t nb = 0, na = UINT64_MAX;
  auto add = [&](const Bytes& der) -> Status {
    MS_ASSIGN_OR_RETURN(CertificateInfo ci, DescribeCertificate(der));
    nb = std::max(nb, ci.not_before_ms);
    na = std::min(na, ci.not_after_ms);
    return Ok{};
  };
  MS_RETURN_IF_ERROR(add(d.certificate));
  for (const auto& c : d.cabundle) MS_RETURN_IF_ERROR(add(c));
  MS_RETURN_IF_ERROR(add(root_der));
  return std::make_pair(nb, na);
}

Status CheckSignature(const ParsedDocument& p, EVP_PKEY* cached_key) {
  std::shared_ptr<EVP_PKEY> owned;
  EVP_PKEY* key = cached_key;
  if (key == nullptr) {
    MS_ASSIGN_OR_RETURN(owned, LeafKey(p.doc));
    key = owned.get();
  }
  MS_ASSIGN_OR_RETURN(Bytes der_sig, RawSignatureToDer(p.signature));
  const Bytes tbs = CoseSigStructure(p.protected_header, p.payload);
  MdCtxPtr md(EVP_MD_CTX_new());
  if (!md || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha384(), nullptr, key) != 1) {
    return OpenSslError("attest", "initialise signature verification");
  }
  const int rc = EVP_DigestVerify(md.get(), der_sig.data(), der_sig.size(), tbs.data(), tbs.size());
  ERR_clear_error();
  if (rc != 1) {
    return MakeError(ErrorCode::kPermissionDenied, "attest", "signature",
                     "the ES384 signature does not verify with the leaf certificate's key");
  }
  return Ok{};
}

}  // namespace

std::string_view OutcomeName(CheckOutcome o) {
  switch (o) {
    case CheckOutcome::kPassed:
      return "passed";
    case CheckOutcome::kFailed:
      return "FAILED";
    case CheckOutcome::kNotRun:
      return "not run";
    case CheckOutcome::kNotRequested:
      return "not requested";
  }
  return "unknown";
}

const CheckResult* VerificationReport::first_failure() const {
  for (const auto& c : checks) {
    if (c.outcome == CheckOutcome::kFailed || c.outcome == CheckOutcome::kNotRun) return &c;
  }
  return nullptr;
}

Status VerificationReport::status() const {
  if (verified) return Ok{};
  const CheckResult* f = first_failure();
  if (f == nullptr) {
    return MakeError(ErrorCode::kPermissionDenied, "attest", "attestation-not-verified",
                     "the attestation document was not verified");
  }
  return MakeError(ErrorCode::kPermissionDenied, "attest", "attestation-" + f->name + "-failed",
                   "attestation " + f->name + " check failed: " + f->detail);
}

Result<AttestationDocument> VerifiedDocument(const VerificationReport& report) {
  MS_RETURN_IF_ERROR(report.status());
  if (!report.document) {
    return MakeError(ErrorCode::kInternal, "attest", "attestation-not-verified",
                     "verified report without a document");
  }
  return *report.document;
}

namespace {

// The chain step: leaf -> cabundle -> one of the roots, answered from the cache when
// it holds this chain for these roots. Sets the report's root name and whether the
// root is a development one; `cached` gets the chain's entry when there is one.
CheckResult ChainStep(const AttestationDocument& d, const std::vector<TrustedRoot>& roots,
                      const VerifyOptions& options, VerificationReport& r,
                      std::optional<ChainCache::Entry>& cached) {
  Bytes cache_key;
  if (options.chain_cache) {
    cache_key = ChainCacheKey(d, roots);
    cached = options.chain_cache->Find(cache_key);
  }
  const bool hit = cached.has_value();
  Result<std::string> root = hit ? Result<std::string>(cached->root_name) : CheckChain(d, roots);
  if (!root.ok()) return Made("chain", false, root.error().message);
  if (options.chain_cache && !hit) {
    const TrustedRoot* tr = nullptr;
    for (const auto& t : roots) {
      if (t.name == *root) tr = &t;
    }
    auto window = tr ? ChainWindow(d, tr->der)
                     : Result<std::pair<uint64_t, uint64_t>>(
                           MakeError(ErrorCode::kInternal, "attest", "chain", "root"));
    auto key = LeafKey(d);
    if (window.ok() && key.ok()) {
      ChainCache::Entry e{*root, window->first, window->second, *key};
      options.chain_cache->Insert(cache_key, e);
      cached = e;
    }
  }
  r.root_name = *root;
  auto aws = AwsNitroRootDer();
  bool is_aws = false;
  for (const auto& tr : roots) {
    if (tr.name == *root && aws.ok() && tr.der == *aws) is_aws = true;
  }
  r.development = !is_aws;
  return Made("chain", true,
              "leaf -> " + std::to_string(d.cabundle.size()) +
                  " cabundle certificates -> trusted root '" + *root + "'" +
                  (hit ? " (from the chain cache)" : ""));
}

// A cached chain answers from its window; outside it (or uncached) every certificate
// is checked so the failure names the one at fault.
CheckResult ValidityStep(const AttestationDocument& d, const std::vector<TrustedRoot>& roots,
                         const std::optional<ChainCache::Entry>& cached,
                         const VerificationReport& r) {
  const bool in_cached_window =
      cached && r.at_ms >= cached->not_before_ms && r.at_ms <= cached->not_after_ms;
  std::string problem;
  if (!in_cached_window) {
    problem = ValidityProblem(d.certificate, "leaf certificate", r.at_ms);
    for (size_t i = 0; problem.empty() && i < d.cabundle.size(); ++i) {
      const std::string what = "cabundle[" + std::to_string(i) + "]";
      problem = ValidityProblem(d.cabundle[i], what.c_str(), r.at_ms);
    }
    // The trusted root the chain ended at, in case the cabundle did not carry it.
    for (const auto& tr : roots) {
      if (problem.empty() && !r.root_name.empty() && tr.name == r.root_name) {
        problem = ValidityProblem(tr.der, "trusted root", r.at_ms);
      }
    }
  }
  return Made("validity", problem.empty(),
              problem.empty() ? "every certificate is valid at " + FormatTimeMs(r.at_ms) : problem);
}

CheckResult NonceStep(const AttestationDocument& d, const VerifyOptions& options) {
  if (!options.expected_nonce) return CheckResult{"nonce", CheckOutcome::kNotRequested, ""};
  const Bytes& want = *options.expected_nonce;
  if (!d.nonce) return Made("nonce", false, "the document has no nonce; expected " + ToHex(want));
  if (*d.nonce != want) {
    return Made("nonce", false, "nonce " + ToHex(*d.nonce) + " is not the expected " + ToHex(want));
  }
  return Made("nonce", true, "nonce matches");
}

CheckResult MaxAgeStep(const AttestationDocument& d, const VerifyOptions& options, uint64_t at_ms) {
  if (!options.max_age_ms) return CheckResult{"max-age", CheckOutcome::kNotRequested, ""};
  if (d.timestamp_ms > at_ms + kFutureSkewMs) {
    return Made("max-age", false,
                "timestamp " + FormatTimeMs(d.timestamp_ms) + " is in the future");
  }
  if (at_ms > d.timestamp_ms && at_ms - d.timestamp_ms > *options.max_age_ms) {
    return Made("max-age", false,
                "document is " + std::to_string((at_ms - d.timestamp_ms) / 1000) +
                    " s old, more than the allowed " + std::to_string(*options.max_age_ms / 1000) +
                    " s");
  }
  return Made("max-age", true, "timestamp " + FormatTimeMs(d.timestamp_ms) + " is recent enough");
}

}  // namespace

// Each check in its fixed order: structure, chain, validity, signature, nonce, max-age.
// Verified only when none failed and none was left unrun.
VerificationReport VerifyAttestationDocument(std::span<const uint8_t> data,
                                             const VerifyOptions& options) {
  VerificationReport r;
  r.at_ms = options.at_ms ? *options.at_ms : NowUnixMs();
  auto parsed = ParseAttestationDocument(data);
  if (!parsed.ok()) {
    r.checks.push_back(Made("structure", false, parsed.error().message));
    for (const char* name : {"chain", "validity", "signature", "nonce", "max-age"}) {
      r.checks.push_back(
          CheckResult{name, CheckOutcome::kNotRun, "not run: the document did not parse"});
    }
    return r;
  }
  const ParsedDocument& p = *parsed;
  const AttestationDocument& d = p.doc;
  r.document = d;
  r.checks.push_back(
      Made("structure", true,
           std::string(d.kind == DocumentKind::kNitroTpm ? "NitroTPM" : "Nitro Enclaves") +
               " document, " + std::to_string(d.pcrs.size()) + " PCRs, " +
               std::to_string(d.cabundle.size()) + " CA certificates"));

  std::vector<TrustedRoot> roots = options.roots;
  std::optional<ChainCache::Entry> cached;
  if (roots.empty()) {
    auto aws = AwsRoot();
    if (aws.ok()) roots.push_back(std::move(*aws));
    if (!aws.ok()) r.checks.push_back(Made("chain", false, aws.error().message));
  }
  if (!roots.empty()) r.checks.push_back(ChainStep(d, roots, options, r, cached));
  r.checks.push_back(ValidityStep(d, roots, cached, r));
  Status sig = CheckSignature(p, cached ? cached->leaf_key.get() : nullptr);
  r.checks.push_back(
      Made("signature", sig.ok(),
           sig.ok() ? "ES384 signature verifies with the leaf key" : sig.error().message));
  r.checks.push_back(NonceStep(d, options));
  r.checks.push_back(MaxAgeStep(d, options, r.at_ms));

  r.verified = std::none_of(r.checks.begin(), r.checks.end(), [](const CheckResult& c) {
    return c.outcome == CheckOutcome::kFailed || c.outcome == CheckOutcome::kNotRun;
  });
  return r;
}

std::optional<ChainCache::Entry> ChainCache::Find(const Bytes& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  ++hits_;
  return it->second;
}

uint64_t ChainCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}

size_t ChainCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void ChainCache::Insert(const Bytes& key, Entry entry) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= capacity_) entries_.clear();  // simple bound; chains repeat
  entries_[key] = std::move(entry);
}

}  // namespace modelseal::attest
