#include "kms/client.h"

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <mutex>

#include "aws/errors.h"
#include "aws/sigv4.h"
#include "common/ossl.h"
#include "kms/recipient.h"
#include "kms/secret_codec.h"

namespace modelseal::kms {

using nlohmann::json;

namespace {

PkeyPtr NewRecipientKey() {
  return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
}

}  // namespace

// One key made ahead at a time. Take() hands it over when it is ready and starts the
// next; when it is not ready yet (a load right after the previous one), it makes one
// at the caller's priority instead of waiting for a thread that runs at the lowest.
struct KmsClient::KeyAhead {
  std::mutex mu;
  std::future<PkeyPtr> next;

  void Start() {
    next = std::async(std::launch::async, [] {
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
      return NewRecipientKey();
    });
  }

  PkeyPtr Take() {
    std::lock_guard<std::mutex> lock(mu);
    if (next.valid() && next.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      PkeyPtr key = next.get();
      Start();
      if (key) return key;
    }
    return NewRecipientKey();
  }
};

Result<std::unique_ptr<KmsClient>> KmsClient::Create(ClientConfig config) {
  std::unique_ptr<KmsClient> c(new KmsClient());
  c->transport_ = config.transport ? config.transport : net::DefaultTransport();
  c->credentials_ =
      config.credentials ? config.credentials : aws::DefaultCredentialsChain(c->transport_);
  c->retry_ = config.retry;
  c->region_ = config.region;
  if (c->region_.empty()) {
    MS_ASSIGN_OR_RETURN(c->region_, aws::ResolveRegion(c->transport_));
  }
  c->endpoint_ = config.endpoint;
  if (c->endpoint_.empty()) {
    c->endpoint_ =
        aws::EndpointOverride("KMS").value_or("https://kms." + c->region_ + ".amazonaws.com");
  }
  while (!c->endpoint_.empty() && c->endpoint_.back() == '/') c->endpoint_.pop_back();
  MS_RETURN_IF_ERROR(net::ParseUrl(c->endpoint_));
  if (config.prepare_recipient_key) {
    c->ahead_ = std::make_shared<KeyAhead>();
    c->ahead_->Start();
  }
  return c;
}

Result<json> KmsClient::Call(const std::string& operation, const json& request) const {
  MS_ASSIGN_OR_RETURN(Bytes body, CallRaw(operation, request));
  json result = json::parse(body.begin(), body.end(), nullptr, false);
  if (result.is_discarded() || !result.is_object()) {
    return MakeError(ErrorCode::kInternal, "kms", "bad-response",
                     operation + ": response is not a JSON object");
  }
  return result;
}

Result<Bytes> KmsClient::CallRaw(const std::string& operation, const json& request) const {
  MS_ASSIGN_OR_RETURN(net::Url url, net::ParseUrl(endpoint_ + "/"));
  const std::string body = request.dump();
  const std::span<const uint8_t> body_bytes(reinterpret_cast<const uint8_t*>(body.data()),
                                            body.size());
  Bytes result;
  Status s = net::WithRetries(retry_, [&](int) -> Status {
    MS_ASSIGN_OR_RETURN(aws::CredentialsPtr creds, credentials_->Get());
    aws::SignableRequest sr;
    sr.method = "POST";
    sr.path = "/";
    sr.headers = {{"host", url.Authority()},
                  {"content-type", "application/x-amz-json-1.1"},
                  {"x-amz-target", "TrentService." + operation}};
    aws::SigningParams params;
    params.region = region_;
    params.service = "kms";
    params.time = std::chrono::system_clock::now();
    params.add_content_sha256 = false;
    aws::SignHeaders(sr, *creds, params, aws::Sha256Hex(body_bytes));
    net::HttpRequest req;
    req.method = "POST";
    req.url = endpoint_ + "/";
    req.headers = sr.headers;
    req.body = body_bytes;
    req.total_timeout = std::chrono::milliseconds(60000);
    MS_ASSIGN_OR_RETURN(net::HttpResponse resp, transport_->Send(req));
    if (resp.status != 200) {
      Error e = aws::AwsErrorFromResponse("kms", operation, resp);
      return e;
    }
    result = std::move(resp.body);
    return Ok{};
  });
  if (!s.ok()) return s.take_error();
  return result;
}

namespace {

Result<Bytes> DecodeField(const json& j, const char* name, const std::string& op) {
  if (!j.contains(name) || !j[name].is_string()) {
    return MakeError(ErrorCode::kInternal, "kms", "bad-response", op + ": response has no " + name);
  }
  auto b = Base64Decode(j[name].get<std::string>());
  if (!b)
    return MakeError(ErrorCode::kInternal, "kms", "bad-response",
                     op + ": " + name + " is not base64");
  return *b;
}

json ContextJson(const EncryptionContext& ctx) {
  json j = json::object();
  for (const auto& [k, v] : ctx) j[k] = v;
  return j;
}

// Parses a response that may carry key material, moves `field` (base64) into a
// SecretBuffer, and wipes every other copy: the raw body and the parsed string.
struct SecretResponse {
  json fields;  // the response without `field`
  std::optional<SecretBuffer> secret;
};
Result<SecretResponse> ParseSecretResponse(Bytes& body, const char* field, const std::string& op) {
  SecretResponse out;
  out.fields = json::parse(body.begin(), body.end(), nullptr, false);
  OPENSSL_cleanse(body.data(), body.size());
  if (out.fields.is_discarded() || !out.fields.is_object()) {
    return MakeError(ErrorCode::kInternal, "kms", "bad-response",
                     op + ": response is not a JSON object");
  }
  if (out.fields.contains(field)) {
    if (!out.fields[field].is_string()) {
      return MakeError(ErrorCode::kInternal, "kms", "bad-response",
                       op + ": " + field + " is not a string");
    }
    std::string& text = out.fields[field].get_ref<std::string&>();
    out.secret = Base64DecodeSecret(text);
    WipeString(text);
    out.fields.erase(field);
    if (!out.secret) {
      return MakeError(ErrorCode::kInternal, "kms", "bad-response",
                       op + ": " + field + " is not base64");
    }
  }
  return out;
}

// Does the response's KeyId (always an ARN from KMS) name the expected key?
Status CheckResponseKey(const json& r, const std::string& expected, const std::string& op) {
  const std::string got =
      r.contains("KeyId") && r["KeyId"].is_string() ? r["KeyId"].get<std::string>() : "";
  const bool same = expected.rfind("arn:", 0) == 0
                        ? got == expected
                        : got.size() > expected.size() + 5 &&
                              got.compare(got.size() - expected.size() - 5, std::string::npos,
                                          ":key/" + expected) == 0;
  if (!same) {
    return MakeError(ErrorCode::kPermissionDenied, "kms", "unexpected-key",
                     op + ": the service answered for key '" + got + "', not the expected '" +
                         expected + "'; refusing the result");
  }
  return Ok{};
}

}  // namespace

Status CheckExpectedKeyRef(const std::string& expected) {
  const bool arn = expected.rfind("arn:", 0) == 0 && expected.find(":key/") != std::string::npos;
  const bool id = expected.size() == 36 && expected.find('/') == std::string::npos &&
                  expected.find(':') == std::string::npos;
  if (!arn && !id) {
    return MakeError(ErrorCode::kInvalidArgument, "kms", "bad-expected-key",
                     "the expected key must be named by its key ARN or key id, not '" + expected +
                         "'" +
                         (expected.find("alias/") != std::string::npos
                              ? " (an alias: whoever controls it can point it at another key)"
                              : ""));
  }
  return Ok{};
}

Result<DataKey> KmsClient::GenerateDataKey(const std::string& key_id,
                                           const EncryptionContext& context) const {
  MS_ASSIGN_OR_RETURN(Bytes body,
                      CallRaw("GenerateDataKey", {{"KeyId", key_id},
                                                  {"KeySpec", "AES_256"},
                                                  {"EncryptionContext", ContextJson(context)}}));
  MS_ASSIGN_OR_RETURN(SecretResponse r, ParseSecretResponse(body, "Plaintext", "GenerateDataKey"));
  if (!r.secret) {
    return MakeError(ErrorCode::kInternal, "kms", "bad-response",
                     "GenerateDataKey: response has no Plaintext");
  }
  DataKey dk;
  dk.key_arn = r.fields.value("KeyId", key_id);
  MS_ASSIGN_OR_RETURN(dk.ciphertext, DecodeField(r.fields, "CiphertextBlob", "GenerateDataKey"));
  dk.plaintext = std::move(*r.secret);
  return dk;
}

Result<SecretBuffer> KmsClient::Decrypt(std::span<const uint8_t> ciphertext,
                                        const EncryptionContext& context,
                                        const std::string& expected_key) const {
  MS_RETURN_IF_ERROR(CheckExpectedKeyRef(expected_key));
  MS_ASSIGN_OR_RETURN(Bytes body, CallRaw("Decrypt", {{"CiphertextBlob", Base64Encode(ciphertext)},
                                                      {"EncryptionContext", ContextJson(context)},
                                                      {"KeyId", expected_key}}));
  MS_ASSIGN_OR_RETURN(SecretResponse r, ParseSecretResponse(body, "Plaintext", "Decrypt"));
  MS_RETURN_IF_ERROR(CheckResponseKey(r.fields, expected_key, "Decrypt"));
  if (!r.secret) {
    return MakeError(ErrorCode::kInternal, "kms", "bad-response",
                     "Decrypt: response has no Plaintext");
  }
  return std::move(*r.secret);
}

Result<SecretBuffer> KmsClient::DecryptForRecipient(std::span<const uint8_t> ciphertext,
                                                    const EncryptionContext& context,
                                                    const std::string& expected_key,
                                                    const AttestFn& attest) const {
  MS_RETURN_IF_ERROR(CheckExpectedKeyRef(expected_key));
  PkeyPtr key = ahead_ ? ahead_->Take() : NewRecipientKey();
  if (!key) return OpenSslError("kms", "generate the ephemeral recipient key");
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key.get(), &der);
  if (len <= 0) return OpenSslError("kms", "encode the recipient public key");
  const Bytes spki(der, der + len);
  OPENSSL_free(der);
  MS_ASSIGN_OR_RETURN(Bytes document, attest(spki));
  MS_ASSIGN_OR_RETURN(Bytes body,
                      CallRaw("Decrypt", {{"CiphertextBlob", Base64Encode(ciphertext)},
                                          {"EncryptionContext", ContextJson(context)},
                                          {"KeyId", expected_key},
                                          {"Recipient",
                                           {{"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"},
                                            {"AttestationDocument", Base64Encode(document)}}}}));
  MS_ASSIGN_OR_RETURN(SecretResponse r, ParseSecretResponse(body, "Plaintext", "Decrypt"));
  if (r.secret) {
    return MakeError(ErrorCode::kPermissionDenied, "kms", "plaintext-in-response",
                     "Decrypt: the service returned Plaintext to an attested request; refusing it");
  }
  MS_RETURN_IF_ERROR(CheckResponseKey(r.fields, expected_key, "Decrypt"));
  MS_ASSIGN_OR_RETURN(Bytes envelope, DecodeField(r.fields, "CiphertextForRecipient", "Decrypt"));
  return OpenEnvelope(envelope, key.get());
}

}  // namespace modelseal::kms
