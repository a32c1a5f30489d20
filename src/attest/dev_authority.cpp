// The development attestation authority: a local P-384 CA (root -> intermediate
// -> leaf) that issues documents in the NitroTPM format, marked DEVELOPMENT.
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "attest/internal.h"
#include "common/clock.h"
#include "common/io.h"
#include "common/ossl.h"

namespace modelseal::attest {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kDayS = 24 * 3600;

struct KeyCert {
  PkeyPtr key;
  X509Ptr cert;
};

Result<PkeyPtr> NewP384() {
  PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  if (!k) return OpenSslError("attest", "generate a P-384 key");
  return k;
}

Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return OpenSslError("attest", std::string("build extension ") + value);
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError("attest", "add extension");
  return Ok{};
}

// Issues a certificate for `key` named CN=`cn`, signed by `issuer` (self-signed
// when issuer is null), valid from one hour ago for `days`.
Result<X509Ptr> MakeCert(EVP_PKEY* key, const std::string& cn, const KeyCert* issuer, uint64_t days,
                         int path_len /* -1 = leaf */) {
  X509Ptr x(X509_new());
  if (!x) return OpenSslError("attest", "allocate certificate");
  X509_set_version(x.get(), 2);
  uint8_t serial[16];
  MS_RETURN_IF_ERROR(RandomBytes(serial, sizeof(serial)));
  serial[0] &= 0x7f;
  serial[0] |= 0x01;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("modelseal DEVELOPMENT"), -1,
                             -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer->cert.get()) : name);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(days * kDayS));
  X509_set_pubkey(x.get(), key);
  X509* iss = issuer ? issuer->cert.get() : x.get();
  if (path_len >= 0) {
    const std::string bc = "critical,CA:TRUE,pathlen:" + std::to_string(path_len);
    MS_RETURN_IF_ERROR(AddExt(x.get(), iss, NID_basic_constraints, bc.c_str()));
    MS_RETURN_IF_ERROR(
        AddExt(x.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"));
  } else {
    MS_RETURN_IF_ERROR(AddExt(x.get(), iss, NID_basic_constraints, "critical,CA:FALSE"));
    MS_RETURN_IF_ERROR(AddExt(x.get(), iss, NID_key_usage, "critical,digitalSignature"));
  }
  MS_RETURN_IF_ERROR(AddExt(x.get(), iss, NID_subject_key_identifier, "hash"));
  if (issuer)
    MS_RETURN_IF_ERROR(AddExt(x.get(), iss, NID_authority_key_identifier, "keyid:always"));
  EVP_PKEY* signer = issuer ? issuer->key.get() : key;
  if (X509_sign(x.get(), signer, EVP_sha384()) <= 0)
    return OpenSslError("attest", "sign certificate");
  return x;
}

Status WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("attest", "create " + tmp, errno);
  ::fchmod(fd, mode);
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return ErrnoError("attest", "write " + tmp, e);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return ErrnoError("attest", "sync " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("attest", "rename " + tmp, errno);
  return Ok{};
}

Status SaveKeyCert(const std::string& dir, const std::string& stem, const KeyCert& kc) {
  BioPtr kb(BIO_new(BIO_s_mem()));
  BioPtr cb(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(kb.get(), kc.key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(cb.get(), kc.cert.get()) != 1) {
    return OpenSslError("attest", "encode " + stem);
  }
  char* p = nullptr;
  long n = BIO_get_mem_data(kb.get(), &p);
  std::string key_pem(p, static_cast<size_t>(n));
  n = BIO_get_mem_data(cb.get(), &p);
  std::string cert_pem(p, static_cast<size_t>(n));
  Status st = WriteFile(dir + "/" + stem + ".key", key_pem, 0600);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  MS_RETURN_IF_ERROR(st);
  return WriteFile(dir + "/" + stem + ".crt", cert_pem, 0644);
}

Result<KeyCert> LoadKeyCert(const std::string& dir, const std::string& stem) {
  KeyCert kc;
  for (const char* ext : {".key", ".crt"}) {
    const std::string path = dir + "/" + stem + ext;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return ErrnoError("attest", "open " + path, errno);
    if (ext[1] == 'k')
      kc.key.reset(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    else
      kc.cert.reset(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
  }
  if (!kc.key || !kc.cert) return OpenSslError("attest", "read " + dir + "/" + stem);
  if (X509_check_private_key(kc.cert.get(), kc.key.get()) != 1) {
    return OpenSslError("attest", dir + "/" + stem + ": key does not match certificate",
                        ErrorCode::kIntegrity);
  }
  return kc;
}

Status CreateAuthority(const std::string& dir) {
  const std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (::mkdir(tmp.c_str(), 0700) != 0) return ErrnoError("attest", "create " + tmp, errno);
  KeyCert root, inter, leaf;
  MS_ASSIGN_OR_RETURN(root.key, NewP384());
  MS_ASSIGN_OR_RETURN(root.cert, MakeCert(root.key.get(), "modelseal development attestation root",
                                          nullptr, 3650, 1));
  MS_ASSIGN_OR_RETURN(inter.key, NewP384());
  MS_ASSIGN_OR_RETURN(
      inter.cert, MakeCert(inter.key.get(), "modelseal development intermediate", &root, 1825, 0));
  MS_ASSIGN_OR_RETURN(leaf.key, NewP384());
  MS_ASSIGN_OR_RETURN(
      leaf.cert, MakeCert(leaf.key.get(), "modelseal development NitroTPM signer", &inter, 30, -1));
  MS_RETURN_IF_ERROR(SaveKeyCert(tmp, "root", root));
  MS_RETURN_IF_ERROR(SaveKeyCert(tmp, "intermediate", inter));
  MS_RETURN_IF_ERROR(SaveKeyCert(tmp, "leaf", leaf));
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    const int e = errno;
    fs::remove_all(tmp, ec);
    if (e != EEXIST && e != ENOTEMPTY) return ErrnoError("attest", "rename " + tmp, e);
    // Another process created it first: use theirs.
  }
  return Ok{};
}

}  // namespace

struct DevAuthority::Impl {
  KeyCert root, inter, leaf;
  Bytes root_der, inter_der, leaf_der;
  std::string module_id;
};

DevAuthority::DevAuthority(std::unique_ptr<Impl> impl, std::string dir)
    : impl_(std::move(impl)), dir_(std::move(dir)) {}
DevAuthority::~DevAuthority() = default;

Result<std::unique_ptr<DevAuthority>> DevAuthority::Open(const std::string& state_dir) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec)
    return MakeError(ErrorCode::kIo, "attest", "io", "create " + state_dir + ": " + ec.message());
  const std::string dir = state_dir + "/dev-authority";
  if (!fs::exists(dir + "/root.crt")) MS_RETURN_IF_ERROR(CreateAuthority(dir));
  const int lock = ::open((dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return ErrnoError("attest", "open " + dir + "/.lock", errno);
  ::flock(lock, LOCK_EX);
  auto impl = std::make_unique<Impl>();
  auto load = [&]() -> Status {
    MS_ASSIGN_OR_RETURN(impl->root, LoadKeyCert(dir, "root"));
    MS_ASSIGN_OR_RETURN(impl->inter, LoadKeyCert(dir, "intermediate"));
    MS_ASSIGN_OR_RETURN(impl->leaf, LoadKeyCert(dir, "leaf"));
    // Renew a leaf that has less than a day left (or has already expired).
    time_t soon = time(nullptr) + static_cast<time_t>(kDayS);
    if (X509_cmp_time(X509_get0_notAfter(impl->leaf.cert.get()), &soon) < 0) {
      KeyCert leaf;
      MS_ASSIGN_OR_RETURN(leaf.key, NewP384());
      MS_ASSIGN_OR_RETURN(
          leaf.cert,
          MakeCert(leaf.key.get(), "modelseal development NitroTPM signer", &impl->inter, 30, -1));
      MS_RETURN_IF_ERROR(SaveKeyCert(dir, "leaf", leaf));
      impl->leaf = std::move(leaf);
    }
    return Ok{};
  };
  Status st = load();
  ::flock(lock, LOCK_UN);
  ::close(lock);
  MS_RETURN_IF_ERROR(st);
  impl->root_der = ToDer(impl->root.cert.get());
  impl->inter_der = ToDer(impl->inter.cert.get());
  impl->leaf_der = ToDer(impl->leaf.cert.get());
  impl->module_id = std::string(kDevModuleIdPrefix) + "modelseal-" +
                    ToHex(Sha256(impl->root_der)).substr(0, 16) + "-tpm";
  return std::unique_ptr<DevAuthority>(new DevAuthority(std::move(impl), dir));
}

TrustedRoot DevAuthority::root() const {
  return TrustedRoot{"development", impl_->root_der};
}

Result<Bytes> DevAuthority::Issue(const std::map<uint32_t, Bytes>& sha384_pcrs,
                                  const DocumentRequest& req, uint64_t timestamp_ms) const {
  auto bad = [](std::string m) {
    return MakeError(ErrorCode::kInvalidArgument, "attest", "bad-request", std::move(m));
  };
  if (sha384_pcrs.empty()) return bad("no PCR values to attest");
  for (const auto& [i, v] : sha384_pcrs) {
    if (i > 23 || v.size() != 48)
      return bad("PCR" + std::to_string(i) + " is not a SHA-384 PCR 0..23");
  }
  for (const auto* f : {&req.public_key, &req.user_data, &req.nonce}) {
    if (*f && (*f)->size() > 1024)
      return bad("public_key, user_data and nonce are at most 1024 bytes");
  }
  AttestationDocument d;
  d.kind = DocumentKind::kNitroTpm;
  d.module_id = impl_->module_id;
  d.digest = "SHA384";
  d.timestamp_ms = timestamp_ms ? timestamp_ms : NowUnixMs();
  d.pcrs = sha384_pcrs;
  d.certificate = impl_->leaf_der;
  d.cabundle = {impl_->root_der, impl_->inter_der};
  d.public_key = req.public_key;
  d.user_data = req.user_data;
  d.nonce = req.nonce;
  const Bytes prot = Es384ProtectedHeader();
  const Bytes payload = EncodePayload(d);
  const Bytes tbs = CoseSigStructure(prot, payload);
  MdCtxPtr md(EVP_MD_CTX_new());
  size_t len = 0;
  if (!md ||
      EVP_DigestSignInit(md.get(), nullptr, EVP_sha384(), nullptr, impl_->leaf.key.get()) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len, tbs.data(), tbs.size()) != 1) {
    return OpenSslError("attest", "sign the development document");
  }
  Bytes der(len);
  if (EVP_DigestSign(md.get(), der.data(), &len, tbs.data(), tbs.size()) != 1) {
    return OpenSslError("attest", "sign the development document");
  }
  der.resize(len);
  MS_ASSIGN_OR_RETURN(Bytes raw, DerSignatureToRaw(der, 48));
  return EncodeCoseSign1(prot, payload, raw);
}

}  // namespace modelseal::attest
