#include "kms/client.h"

#include <openssl/x509.h>

#include "aws/errors.h"
#include "aws/sigv4.h"
#include "common/ossl.h"
#include "kms/recipient.h"

namespace modelseal::kms {

using nlohmann::json;

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
  return c;
}

Result<json> KmsClient::Call(const std::string& operation, const json& request) const {
  MS_ASSIGN_OR_RETURN(net::Url url, net::ParseUrl(endpoint_ + "/"));
  const std::string body = request.dump();
  const std::span<const uint8_t> body_bytes(reinterpret_cast<const uint8_t*>(body.data()),
                                            body.size());
  json result;
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
    result = json::parse(resp.body.begin(), resp.body.end(), nullptr, false);
    if (result.is_discarded() || !result.is_object()) {
      return MakeError(ErrorCode::kInternal, "kms", "bad-response",
                       operation + ": response is not a JSON object");
    }
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

SecretBuffer TakeSecret(Bytes& b) {
  SecretBuffer s(b.data(), b.size());
  OPENSSL_cleanse(b.data(), b.size());
  return s;
}

}  // namespace

Result<DataKey> KmsClient::GenerateDataKey(const std::string& key_id,
                                           const EncryptionContext& context) const {
  MS_ASSIGN_OR_RETURN(json r,
                      Call("GenerateDataKey", {{"KeyId", key_id},
                                               {"KeySpec", "AES_256"},
                                               {"EncryptionContext", ContextJson(context)}}));
  DataKey dk;
  dk.key_arn = r.value("KeyId", key_id);
  MS_ASSIGN_OR_RETURN(dk.ciphertext, DecodeField(r, "CiphertextBlob", "GenerateDataKey"));
  MS_ASSIGN_OR_RETURN(Bytes plain, DecodeField(r, "Plaintext", "GenerateDataKey"));
  dk.plaintext = TakeSecret(plain);
  return dk;
}

Result<SecretBuffer> KmsClient::Decrypt(std::span<const uint8_t> ciphertext,
                                        const EncryptionContext& context) const {
  MS_ASSIGN_OR_RETURN(json r, Call("Decrypt", {{"CiphertextBlob", Base64Encode(ciphertext)},
                                               {"EncryptionContext", ContextJson(context)}}));
  MS_ASSIGN_OR_RETURN(Bytes plain, DecodeField(r, "Plaintext", "Decrypt"));
  return TakeSecret(plain);
}

Result<SecretBuffer> KmsClient::DecryptForRecipient(std::span<const uint8_t> ciphertext,
                                                    const EncryptionContext& context,
                                                    const AttestFn& attest) const {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  if (!key) return OpenSslError("kms", "generate the ephemeral recipient key");
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key.get(), &der);
  if (len <= 0) return OpenSslError("kms", "encode the recipient public key");
  const Bytes spki(der, der + len);
  OPENSSL_free(der);
  MS_ASSIGN_OR_RETURN(Bytes document, attest(spki));
  MS_ASSIGN_OR_RETURN(json r,
                      Call("Decrypt", {{"CiphertextBlob", Base64Encode(ciphertext)},
                                       {"EncryptionContext", ContextJson(context)},
                                       {"Recipient",
                                        {{"KeyEncryptionAlgorithm", "RSAES_OAEP_SHA_256"},
                                         {"AttestationDocument", Base64Encode(document)}}}}));
  if (r.contains("Plaintext")) {
    return MakeError(ErrorCode::kPermissionDenied, "kms", "plaintext-in-response",
                     "Decrypt: the service returned Plaintext to an attested request; refusing it");
  }
  MS_ASSIGN_OR_RETURN(Bytes envelope, DecodeField(r, "CiphertextForRecipient", "Decrypt"));
  return OpenEnvelope(envelope, key.get());
}

}  // namespace modelseal::kms
