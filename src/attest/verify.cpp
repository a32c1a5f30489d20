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

CheckResult& Add(VerificationReport& r, const char* name) {
  r.checks.push_back(CheckResult{name, CheckOutcome::kNotRun, ""});
  return r.checks.back();
}

void Set(CheckResult& c, bool ok, std::string detail) {
  c.outcome = ok ? CheckOutcome::kPassed : CheckOutcome::kFailed;
  c.detail = std::move(detail);
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

VerificationReport VerifyAttestationDocument(std::span<const uint8_t> data,
                                             const VerifyOptions& options) {
  VerificationReport r;
  r.at_ms = options.at_ms ? *options.at_ms : NowUnixMs();
  r.checks.reserve(6);  // the references below must stay valid
  CheckResult& structure = Add(r, "structure");
  CheckResult& chain = Add(r, "chain");
  CheckResult& validity = Add(r, "validity");
  CheckResult& signature = Add(r, "signature");
  CheckResult& nonce = Add(r, "nonce");
  CheckResult& max_age = Add(r, "max-age");

  auto parsed = ParseAttestationDocument(data);
  if (!parsed.ok()) {
    Set(structure, false, parsed.error().message);
    for (CheckResult* c : {&chain, &validity, &signature, &nonce, &max_age}) {
      c->detail = "not run: the document did not parse";
    }
    return r;
  }
  const ParsedDocument& p = *parsed;
  const AttestationDocument& d = p.doc;
  r.document = d;
  Set(structure, true,
      std::string(d.kind == DocumentKind::kNitroTpm ? "NitroTPM" : "Nitro Enclaves") +
          " document, " + std::to_string(d.pcrs.size()) + " PCRs, " +
          std::to_string(d.cabundle.size()) + " CA certificates");

  std::vector<TrustedRoot> roots = options.roots;
  if (roots.empty()) {
    auto aws = AwsRoot();
    if (!aws.ok()) {
      Set(chain, false, aws.error().message);
    } else {
      roots.push_back(std::move(*aws));
    }
  }
  std::optional<ChainCache::Entry> cached;
  if (!roots.empty()) {
    Bytes cache_key;
    if (options.chain_cache) {
      cache_key = ChainCacheKey(d, roots);
      cached = options.chain_cache->Find(cache_key);
    }
    Result<std::string> root =
        cached ? Result<std::string>(cached->root_name) : CheckChain(d, roots);
    if (options.chain_cache && !cached && root.ok()) {
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
    if (root.ok()) {
      r.root_name = *root;
      auto aws = AwsNitroRootDer();
      bool is_aws = false;
      for (const auto& tr : roots) {
        if (tr.name == *root && aws.ok() && tr.der == *aws) is_aws = true;
      }
      r.development = !is_aws;
      Set(chain, true,
          "leaf -> " + std::to_string(d.cabundle.size()) +
              " cabundle certificates -> trusted root '" + *root + "'");
    } else {
      Set(chain, false, root.error().message);
    }
  }

  // A cached chain answers from its window; outside it (or uncached) every
  // certificate is checked so the failure names the one at fault.
  const bool in_cached_window =
      cached && r.at_ms >= cached->not_before_ms && r.at_ms <= cached->not_after_ms;
  std::string problem = in_cached_window
                            ? std::string()
                            : ValidityProblem(d.certificate, "leaf certificate", r.at_ms);
  for (size_t i = 0; !in_cached_window && problem.empty() && i < d.cabundle.size(); ++i) {
    const std::string what = "cabundle[" + std::to_string(i) + "]";
    problem = ValidityProblem(d.cabundle[i], what.c_str(), r.at_ms);
  }
  // The trusted root the chain ended at, in case the cabundle did not carry it.
  for (const auto& tr : roots) {
    if (!in_cached_window && problem.empty() && !r.root_name.empty() && tr.name == r.root_name) {
      problem = ValidityProblem(tr.der, "trusted root", r.at_ms);
    }
  }
  Set(validity, problem.empty(),
      problem.empty() ? "every certificate is valid at " + FormatTimeMs(r.at_ms) : problem);

  Status sig = CheckSignature(p, cached ? cached->leaf_key.get() : nullptr);
  Set(signature, sig.ok(),
      sig.ok() ? "ES384 signature verifies with the leaf key" : sig.error().message);

  if (options.expected_nonce) {
    const bool ok = d.nonce && *d.nonce == *options.expected_nonce;
    Set(nonce, ok,
        ok ? "nonce matches"
           : (d.nonce ? "nonce " + ToHex(*d.nonce) + " is not the expected " +
                            ToHex(*options.expected_nonce)
                      : "the document has no nonce; expected " + ToHex(*options.expected_nonce)));
  } else {
    nonce.outcome = CheckOutcome::kNotRequested;
  }

  if (options.max_age_ms) {
    if (d.timestamp_ms > r.at_ms + kFutureSkewMs) {
      Set(max_age, false, "timestamp " + FormatTimeMs(d.timestamp_ms) + " is in the future");
    } else if (r.at_ms > d.timestamp_ms && r.at_ms - d.timestamp_ms > *options.max_age_ms) {
      Set(max_age, false,
          "document is " + std::to_string((r.at_ms - d.timestamp_ms) / 1000) +
              " s old, more than the allowed " + std::to_string(*options.max_age_ms / 1000) + " s");
    } else {
      Set(max_age, true, "timestamp " + FormatTimeMs(d.timestamp_ms) + " is recent enough");
    }
  } else {
    max_age.outcome = CheckOutcome::kNotRequested;
  }

  r.verified = true;
  for (const auto& c : r.checks) {
    if (c.outcome == CheckOutcome::kFailed || c.outcome == CheckOutcome::kNotRun)
      r.verified = false;
  }
  return r;
}

std::optional<ChainCache::Entry> ChainCache::Find(const Bytes& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void ChainCache::Insert(const Bytes& key, Entry entry) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= capacity_) entries_.clear();  // simple bound; chains repeat
  entries_[key] = std::move(entry);
}

}  // namespace modelseal::attest
