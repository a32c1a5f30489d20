// Model names, object names, manifests and the listing of published models.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <set>

#include "attest/attest.h"
#include "common/bytes.h"
#include "pipeline/internal.h"
#include "pipeline/pipeline.h"

namespace modelseal::pipeline {

using nlohmann::json;

namespace {

constexpr size_t kMaxNameBytes = 128;
constexpr char kManifestFormat[] = "modelseal-manifest/1";
constexpr char kLegacyObjectSuffix[] = ".gguf.enc";
constexpr char kLegacyKeySuffix[] = ".gguf.datakey.enc";

Error BadManifest(const std::string& why) {
  return Fail(ErrorCode::kIntegrity, "bad-manifest", "manifest " + why);
}

// "<name>.<12 hex>.msealed", as Publish names its objects (of `name` when given).
bool IsSealedObjectKey(std::string_view key, std::string_view name = {}) {
  constexpr size_t kRandom = 12;
  const size_t suffix = std::strlen(kSealedSuffix);
  if (key.find('/') != std::string_view::npos || key.size() < kRandom + suffix + 2 ||
      !key.ends_with(kSealedSuffix)) {
    return false;
  }
  const std::string_view stem = key.substr(0, key.size() - suffix);
  const std::string_view random = stem.substr(stem.size() - kRandom);
  if (stem[stem.size() - kRandom - 1] != '.' ||
      random.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return false;
  }
  const std::string_view owner = stem.substr(0, stem.size() - kRandom - 1);
  return name.empty() ? ValidateModelName(owner).ok() : owner == name;
}

}  // namespace

Status ValidateModelName(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Fail(ErrorCode::kInvalidArgument, "invalid-name",
                "invalid model name '" + std::string(name.substr(0, 64)) + "': " + why +
                    " (use 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter "
                    "or digit)");
  };
  if (name.empty()) return bad("empty");
  if (name.size() > kMaxNameBytes) return bad("longer than 128 characters");
  if (!std::isalnum(static_cast<unsigned char>(name.front()))) {
    return bad("must start with a letter or digit");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != ':' &&
        c != '-') {
      return bad(std::string("contains '") + c + "'");
    }
  }
  return Ok{};
}

std::string SealedKey(std::string_view name) {
  return std::string(name) + kSealedSuffix;
}

std::string ManifestKey(std::string_view name) {
  return std::string(name) + kManifestSuffix;
}

json ManifestToJson(const Manifest& m) {
  json ctx = json::object();
  for (const auto& [k, v] : m.encryption_context) ctx[k] = v;
  return {{"format", kManifestFormat},
          {"name", m.name},
          {"object", m.object},
          {"source", m.source},
          {"file_name", m.file_name},
          {"plaintext_size", m.plaintext_size},
          {"sealed_size", m.sealed_size},
          {"sha256", m.sha256_hex},
          {"sha384", m.sha384_hex},
          {"kms_key_id", m.kms_key_id},
          {"encryption_context", ctx},
          {"container_version", m.container_version},
          {"chunk_size", m.chunk_size},
          {"created", attest::FormatTimeMs(m.created_unix_ms)},
          {"created_unix_ms", m.created_unix_ms},
          {"pcr15_fresh_boot", m.pcr15_fresh_boot_hex}};
}

Result<Manifest> ManifestFromJson(std::string_view text) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return BadManifest("is not a JSON object");
  if (j.value("format", "") != kManifestFormat) {
    return BadManifest("format is not " + std::string(kManifestFormat));
  }
  Manifest m;
  auto str = [&](const char* key, std::string* out) -> Status {
    if (!j.contains(key) || !j[key].is_string()) return BadManifest(std::string(key) + " missing");
    *out = j[key].get<std::string>();
    return Ok{};
  };
  auto num = [&](const char* key, auto* out) -> Status {
    if (!j.contains(key) || !j[key].is_number_unsigned()) {
      return BadManifest(std::string(key) + " missing or not a non-negative integer");
    }
    const uint64_t v = j[key].get<uint64_t>();
    using T = std::remove_pointer_t<decltype(out)>;
    if (v > std::numeric_limits<T>::max()) return BadManifest(std::string(key) + " out of range");
    *out = static_cast<T>(v);
    return Ok{};
  };
  MS_RETURN_IF_ERROR(str("name", &m.name));
  MS_RETURN_IF_ERROR(str("object", &m.object));
  MS_RETURN_IF_ERROR(str("source", &m.source));
  MS_RETURN_IF_ERROR(str("file_name", &m.file_name));
  MS_RETURN_IF_ERROR(str("sha256", &m.sha256_hex));
  MS_RETURN_IF_ERROR(str("sha384", &m.sha384_hex));
  MS_RETURN_IF_ERROR(str("kms_key_id", &m.kms_key_id));
  MS_RETURN_IF_ERROR(str("pcr15_fresh_boot", &m.pcr15_fresh_boot_hex));
  MS_RETURN_IF_ERROR(num("plaintext_size", &m.plaintext_size));
  MS_RETURN_IF_ERROR(num("sealed_size", &m.sealed_size));
  MS_RETURN_IF_ERROR(num("container_version", &m.container_version));
  MS_RETURN_IF_ERROR(num("chunk_size", &m.chunk_size));
  MS_RETURN_IF_ERROR(num("created_unix_ms", &m.created_unix_ms));
  if (!j.contains("encryption_context") || !j["encryption_context"].is_object()) {
    return BadManifest("encryption_context missing");
  }
  for (const auto& [k, v] : j["encryption_context"].items()) {
    if (!v.is_string()) return BadManifest("encryption_context values must be strings");
    m.encryption_context[k] = v.get<std::string>();
  }
  MS_RETURN_IF_ERROR(ValidateModelName(m.name));
  MS_RETURN_IF_ERROR(store::ValidateKey(m.object));
  const auto d256 = FromHex(m.sha256_hex);
  const auto d384 = FromHex(m.sha384_hex);
  if (!d256 || d256->size() != 32 || !d384 || d384->size() != 48) {
    return BadManifest("digests are not 32/48-byte hex");
  }
  return m;
}

Result<Listing> ListPublished(store::ObjectStore& store) {
  MS_ASSIGN_OR_RETURN(auto objects, store.ListAll(""));
  Listing out;
  std::map<std::string, uint64_t> sizes;
  for (const auto& o : objects) sizes[o.key] = o.size;
  for (const auto& o : objects) {
    if (o.key.ends_with(kManifestSuffix) && o.key.find('/') == std::string::npos) {
      const std::string name = o.key.substr(0, o.key.size() - std::strlen(kManifestSuffix));
      auto m = GetPublished(store, name);
      if (!m.ok()) {
        out.problems.push_back(name + ": " + m.error().message);
        continue;
      }
      out.models.push_back(std::move(*m));
    } else if (o.key.ends_with(kLegacyObjectSuffix)) {
      const std::string base = o.key.substr(0, o.key.size() - std::strlen(".enc"));
      const std::string datakey = base + ".datakey.enc";
      if (sizes.count(datakey)) out.legacy.push_back({o.key, datakey, o.size});
    }
  }
  std::sort(out.models.begin(), out.models.end(),
            [](const Manifest& a, const Manifest& b) { return a.name < b.name; });
  std::set<std::string> referenced;
  for (const auto& m : out.models) referenced.insert(m.object);
  for (const auto& o : objects) {
    if (IsSealedObjectKey(o.key) && !referenced.count(o.key)) out.orphans.push_back(o);
  }
  return out;
}

Result<Manifest> GetPublished(store::ObjectStore& store, std::string_view name) {
  MS_RETURN_IF_ERROR(ValidateModelName(name));
  VectorSink text;
  Status s = store.Download(ManifestKey(name), text);
  if (!s.ok()) {
    if (s.error().code == ErrorCode::kNotFound) {
      return Fail(ErrorCode::kNotFound, "not-published",
                  "no model named '" + std::string(name) + "' is published in " + store.url());
    }
    return s.take_error();
  }
  const Bytes& b = text.bytes();
  MS_ASSIGN_OR_RETURN(Manifest m, ManifestFromJson(std::string_view(
                                      reinterpret_cast<const char*>(b.data()), b.size())));
  if (m.name != name) {
    return BadManifest("of '" + std::string(name) + "' names another model ('" + m.name + "')");
  }
  return m;
}

Status DeletePublished(store::ObjectStore& store, std::string_view name) {
  auto m = GetPublished(store, name);
  if (!m.ok() && m.error().reason != "not-published") return m.take_error();
  if (m.ok()) {
    MS_RETURN_IF_ERROR(store.Delete(ManifestKey(name)));
    MS_RETURN_IF_ERROR(store.Delete(m->object));
  }
  MS_ASSIGN_OR_RETURN(auto objects, store.ListAll(std::string(name) + "."));
  size_t orphans = 0;
  for (const auto& o : objects) {
    if (IsSealedObjectKey(o.key, name)) {
      MS_RETURN_IF_ERROR(store.Delete(o.key));
      ++orphans;
    }
  }
  if (!m.ok() && orphans == 0) return m.take_error();
  return Ok{};
}

}  // namespace modelseal::pipeline
