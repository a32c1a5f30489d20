// The S3 store: ListObjectsV2, HeadObject, ranged GetObject, PutObject, multipart
// upload, DeleteObject, CreateBucket + PutPublicAccessBlock.
#include <openssl/evp.h>
#include <openssl/md5.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <ctime>

#include "aws/errors.h"
#include "common/parallel.h"
#include "store/internal.h"
#include "store/s3_request.h"

namespace modelseal::store {
namespace {

constexpr uint64_t kMinPartSize = 5ull << 20;  // S3's minimum for all but the last part

int64_t ParseHttpDate(const std::string& s) {
  std::tm tm{};
  if (strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string Base64Md5(std::span<const uint8_t> data) {
  uint8_t md[16];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
  uint8_t out[32];
  const int n = EVP_EncodeBlock(out, md, 16);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class S3Store final : public ObjectStore {
 public:
  S3Store(std::shared_ptr<S3Endpoint> ep, std::string prefix, StoreOptions o)
      : ep_(std::move(ep)), prefix_(std::move(prefix)), o_(std::move(o)) {
    if (o_.threads == 0) o_.threads = DefaultThreads();
    if (o_.part_size < kMinPartSize) o_.part_size = kMinPartSize;
  }

  std::string url() const override { return "s3://" + ep_->bucket() + "/" + prefix_; }
  const StoreOptions& options() const override { return o_; }

  Result<ListPage> List(std::string_view prefix, std::string_view token, int max_keys) override {
    if (max_keys <= 0 || max_keys > 1000) max_keys = 1000;
    S3Call c{"ListObjectsV2", "GET", "", {}, {}, {}, nullptr, nullptr};
    c.query = {{"list-type", "2"},
               {"prefix", prefix_ + std::string(prefix)},
               {"max-keys", std::to_string(max_keys)}};
    if (!token.empty()) c.query.emplace_back("continuation-token", std::string(token));
    MS_ASSIGN_OR_RETURN(net::HttpResponse r, ep_->Send(std::move(c)));
    const std::string body = r.BodyText();
    if (body.find("<ListBucketResult") == std::string::npos) {
      return StoreError(ErrorCode::kInternal, "malformed-response",
                        "ListObjectsV2 returned no ListBucketResult");
    }
    ListPage page;
    for (std::string_view item : aws::xml::FindAll(body, "Contents")) {
      ObjectInfo o;
      std::string key = aws::xml::Text(item, "Key").value_or("");
      if (!key.starts_with(prefix_)) continue;
      o.key = key.substr(prefix_.size());
      o.size = std::strtoull(aws::xml::Text(item, "Size").value_or("0").c_str(), nullptr, 10);
      o.etag = aws::xml::Text(item, "ETag").value_or("");
      if (auto t = aws::ParseIso8601(aws::xml::Text(item, "LastModified").value_or(""))) {
        o.modified_unix = std::chrono::system_clock::to_time_t(*t);
      }
      page.objects.push_back(std::move(o));
    }
    if (aws::xml::Text(body, "IsTruncated").value_or("false") == "true") {
      page.next_token = aws::xml::Text(body, "NextContinuationToken").value_or("");
      if (page.next_token.empty()) {
        return StoreError(ErrorCode::kInternal, "malformed-response",
                          "ListObjectsV2 is truncated but has no NextContinuationToken");
      }
    }
    return page;
  }

  Result<ObjectInfo> Head(std::string_view key) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    S3Call c{"HeadObject", "HEAD", prefix_ + std::string(key), {}, {}, {}, nullptr, nullptr};
    MS_ASSIGN_OR_RETURN(net::HttpResponse r, ep_->Send(std::move(c)));
    ObjectInfo o;
    o.key = std::string(key);
    o.size = std::strtoull(r.Header("content-length").value_or("0").c_str(), nullptr, 10);
    o.etag = r.Header("etag").value_or("");
    o.modified_unix = ParseHttpDate(r.Header("last-modified").value_or(""));
    return o;
  }

  Status GetRange(std::string_view key, uint64_t offset, uint64_t length, ByteSink& sink,
                  uint64_t sink_offset) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    return FetchRange(prefix_ + std::string(key), "", offset, length, sink, sink_offset, nullptr);
  }

  Result<ObjectInfo> Download(std::string_view key, ByteSink& sink,
                              const ProgressFn& progress) override {
    MS_ASSIGN_OR_RETURN(ObjectInfo info, Head(key));
    const std::string full = prefix_ + std::string(key);
    ProgressCounter pc(progress, "download", info.size);
    const uint64_t n = (info.size + o_.part_size - 1) / o_.part_size;
    MS_RETURN_IF_ERROR(ParallelFor(n, o_.threads, [&](uint64_t i, unsigned) -> Status {
      const uint64_t off = i * o_.part_size;
      const uint64_t len = std::min(o_.part_size, info.size - off);
      return FetchRange(full, info.etag, off, len, sink, off, &pc);
    }));
    pc.Finish();
    return info;
  }

  Result<std::unique_ptr<ObjectWriter>> NewWriter(std::string_view key, uint64_t size,
                                                  const ProgressFn& progress) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    return NewS3Writer(ep_, prefix_ + std::string(key), size, o_, progress);
  }

  Status Delete(std::string_view key) override {
    MS_RETURN_IF_ERROR(ValidateKey(key));
    S3Call c{"DeleteObject", "DELETE", prefix_ + std::string(key), {}, {}, {}, nullptr, nullptr};
    auto r = ep_->Send(std::move(c));
    if (!r.ok() && r.error().reason != "not-found") return r.take_error();
    return Ok{};
  }

  Result<CreateBucketResult> CreateBucket() override {
    CreateBucketResult result;
    std::string config;
    if (ep_->region() != "us-east-1") {
      config =
          "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
          "<LocationConstraint>" +
          aws::xml::Escape(ep_->region()) + "</LocationConstraint></CreateBucketConfiguration>";
    }
    S3Call c{"CreateBucket", "PUT", "", {}, {}, AsBytes(config), nullptr, nullptr};
    auto r = ep_->Send(std::move(c));
    if (!r.ok()) {
      bool ours = r.error().reason == "BucketAlreadyOwnedByYou";
      if (r.error().reason == "BucketAlreadyExists") {  // ours if we may HEAD it
        S3Call h{"HeadBucket", "HEAD", "", {}, {}, {}, nullptr, nullptr};
        ours = ep_->Send(std::move(h)).ok();
      }
      if (!ours) return r.take_error();
      result.created = false;
      result.note = "bucket " + ep_->bucket() + " already exists and is yours";
    }
    const std::string block =
        "<PublicAccessBlockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls>"
        "<BlockPublicPolicy>true</BlockPublicPolicy><RestrictPublicBuckets>true"
        "</RestrictPublicBuckets></PublicAccessBlockConfiguration>";
    S3Call p{"PutPublicAccessBlock", "PUT",   "",     {{"publicAccessBlock", ""}}, {},
             AsBytes(block),         nullptr, nullptr};
    p.headers.emplace_back("Content-MD5", Base64Md5(AsBytes(block)));
    p.headers.emplace_back("Content-Type", "application/xml");
    auto pr = ep_->Send(std::move(p));
    if (!pr.ok()) {
      // S3-compatible test servers (s3rver, some MinIO builds) lack the API;
      // on AWS itself a failure here is an error.
      if (ep_->custom_endpoint() &&
          (pr.error().reason == "NotImplemented" || pr.error().code == ErrorCode::kUnsupported)) {
        result.public_access_blocked = false;
        result.note =
            "the S3 endpoint does not implement PutPublicAccessBlock; the bucket's "
            "public access was not blocked";
        return result;
      }
      Error e = pr.take_error();
      e.message = "bucket " + ep_->bucket() +
                  " was created but blocking public access failed: " + e.message;
      return e;
    }
    return result;
  }

 private:
  // Range fetch that resumes from the last byte received on a retry.
  Status FetchRange(const std::string& full, const std::string& etag, uint64_t offset,
                    uint64_t length, ByteSink& sink, uint64_t sink_offset, ProgressCounter* pc) {
    if (length == 0) return Ok{};
    uint64_t got = 0;
    S3Call c{"GetObject", "GET", full, {}, {}, {}, nullptr, nullptr};
    c.on_response = [&](long status, const net::HeaderList& headers) -> Status {
      std::string range;
      for (const auto& [n, v] : headers) {
        if (n == "content-range") range = v;
      }
      const std::string want = "bytes " + std::to_string(offset + got) + "-";
      if (status != 206 || !range.starts_with(want)) {
        return StoreError(ErrorCode::kInternal, "range-ignored",
                          "GetObject " + full + ": the server did not honour Range (status " +
                              std::to_string(status) + ", Content-Range '" + range + "')");
      }
      return Ok{};
    };
    c.on_body = [&](std::span<const uint8_t> d) -> Status {
      if (got + d.size() > length) {
        return StoreError(ErrorCode::kInternal, "range-overrun",
                          "GetObject " + full + ": more bytes than the requested range");
      }
      MS_RETURN_IF_ERROR(sink.WriteAt(sink_offset + got, d));
      got += d.size();
      if (pc != nullptr) pc->Add(d.size());
      return Ok{};
    };
    auto prepare = [&](S3Call& call, int) {
      call.headers.clear();
      call.headers.emplace_back("Range", "bytes=" + std::to_string(offset + got) + "-" +
                                             std::to_string(offset + length - 1));
      if (!etag.empty()) call.headers.emplace_back("If-Match", etag);
    };
    // Each attempt that moved bytes does not count against the retry budget.
    for (int round = 0; round < 64; ++round) {
      const uint64_t before = got;
      auto r = ep_->Send(c, prepare);
      if (r.ok() && got == length) return Ok{};
      if (r.ok()) {
        return StoreError(ErrorCode::kInvalidArgument, "InvalidRange",
                          "GetObject " + full + ": object ended after " +
                              std::to_string(offset + got) + " bytes, range wanted " +
                              std::to_string(offset + length));
      }
      if (!net::IsRetryable(r.error()) || got == before) return r.take_error();
    }
    return StoreError(ErrorCode::kUnavailable, "connection",
                      "GetObject " + full + ": gave up after 64 interrupted resumes");
  }

  std::shared_ptr<S3Endpoint> ep_;
  std::string prefix_;
  StoreOptions o_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> NewS3Store(std::string bucket, std::string prefix,
                                                StoreOptions options) {
  MS_ASSIGN_OR_RETURN(auto ep, S3Endpoint::Resolve(bucket, options));
  return std::unique_ptr<ObjectStore>(
      new S3Store(std::move(ep), std::move(prefix), std::move(options)));
}

}  // namespace modelseal::store
