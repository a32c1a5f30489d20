// Writing an S3 object whose bytes arrive in any order: one PutObject for a small
// object, else a multipart upload whose parts go up, in parallel, as soon as each
// is complete. A part's buffer lives only until the part is uploaded, and the
// producer waits when `threads` parts are queued, so memory stays bounded by the
// parts being filled plus those in flight.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "aws/errors.h"
#include "store/internal.h"
#include "store/s3_request.h"

namespace modelseal::store {
namespace {

constexpr uint64_t kMaxParts = 10000;

std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class S3ObjectWriter final : public ObjectWriter {
 public:
  S3ObjectWriter(std::shared_ptr<S3Endpoint> ep, std::string full_key, uint64_t size,
                 const StoreOptions& o, const ProgressFn& progress)
      : ep_(std::move(ep)),
        full_(std::move(full_key)),
        size_(size),
        multipart_(size >= o.multipart_threshold),
        threads_(std::max(1u, o.threads)),
        progress_(progress),
        counter_(progress_, "upload", size) {
    part_size_ = multipart_ ? o.part_size : std::max<uint64_t>(size, 1);
    while (multipart_ && (size_ + part_size_ - 1) / part_size_ > kMaxParts) part_size_ *= 2;
    part_count_ = size_ == 0 ? 1 : (size_ + part_size_ - 1) / part_size_;
    etags_.resize(part_count_);
  }

  ~S3ObjectWriter() override {
    if (!finished_) {
      Finish(MakeError(ErrorCode::kCancelled, "store", "cancelled",
                       "upload of " + full_ + " abandoned before commit"));
    }
  }

  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    if (offset > size_ || data.size() > size_ - offset) {
      return StoreError(
          ErrorCode::kInvalidArgument, "out-of-range",
          "write past the end of the " + std::to_string(size_) + "-byte object " + full_);
    }
    while (!data.empty()) {
      const uint64_t index = offset / part_size_;
      const uint64_t within = offset % part_size_;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(part_size_ - within, data.size()));
      Part* part = nullptr;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (finished_) {
          return StoreError(ErrorCode::kInvalidArgument, "finished", "writer already finished");
        }
        MS_RETURN_IF_ERROR(failure_);
        auto& slot = parts_[index];
        if (!slot) {
          slot = std::make_unique<Part>();
          if (!spare_.empty()) {  // an uploaded part's buffer: no new pages, no zeroing
            slot->data = std::move(spare_.back());
            spare_.pop_back();
          }
          slot->data.resize(PartLength(index));
        }
        part = slot.get();
      }
      std::memcpy(part->data.data() + within, data.data(), take);
      const uint64_t filled = part->filled.fetch_add(take) + take;
      if (filled == part->data.size()) MS_RETURN_IF_ERROR(Enqueue(index));
      offset += take;
      data = data.subspan(take);
    }
    return Ok{};
  }

  Status Commit() override {
    if (finished_) {
      return StoreError(ErrorCode::kInvalidArgument, "finished", "writer already finished");
    }
    if (size_ == 0) {  // an empty object is one empty part
      {
        std::lock_guard<std::mutex> lock(mu_);
        parts_[0] = std::make_unique<Part>();
      }
      MS_RETURN_IF_ERROR(Enqueue(0));
    }
    Status s;
    {
      std::unique_lock<std::mutex> lock(mu_);
      idle_.wait(lock, [&] { return (queue_.empty() && busy_ == 0) || !failure_.ok(); });
      if (failure_.ok() && uploaded_ != part_count_) {
        failure_ = StoreError(ErrorCode::kInvalidArgument, "incomplete",
                              "commit of " + full_ + " before every byte was written (" +
                                  std::to_string(uploaded_) + " of " + std::to_string(part_count_) +
                                  " parts complete)");
      }
      s = failure_;
    }
    if (s.ok() && multipart_) s = Complete();
    Finish(s);
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      return failure_;  // with the note on the abort
    }
    counter_.Finish();
    return Ok{};
  }

 private:
  struct Part {
    Bytes data;
    std::atomic<uint64_t> filled{0};
  };

  uint64_t PartLength(uint64_t index) const {
    return std::min(part_size_, size_ - index * part_size_);
  }

  // A complete part joins the queue; the caller waits while `threads_` are queued.
  Status Enqueue(uint64_t index) {
    std::unique_lock<std::mutex> lock(mu_);
    if (workers_.empty()) {
      for (unsigned i = 0; i < std::min<uint64_t>(threads_, part_count_); ++i)
        workers_.emplace_back([this] { Work(); });
    }
    space_.wait(lock, [&] { return queue_.size() < threads_ || !failure_.ok(); });
    MS_RETURN_IF_ERROR(failure_);
    queue_.push_back(index);
    work_.notify_one();
    return Ok{};
  }

  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return !queue_.empty() || stop_; });
      if (stop_) return;
      const uint64_t index = queue_.front();
      queue_.pop_front();
      ++busy_;
      space_.notify_all();
      std::unique_ptr<Part> part = std::move(parts_[index]);
      parts_.erase(index);
      const bool failed = !failure_.ok();
      lock.unlock();
      Status s = failed ? Status() : Upload(index, part->data);
      lock.lock();
      spare_.push_back(std::move(part->data));
      part.reset();
      --busy_;
      if (!s.ok() && failure_.ok()) failure_ = s;
      if (!failed && s.ok()) ++uploaded_;
      space_.notify_all();
      idle_.notify_all();
    }
  }

  Status Upload(uint64_t index, const Bytes& data) {
    if (!multipart_) {
      S3Call c{"PutObject", "PUT", full_, {}, {}, data, nullptr, nullptr};
      c.headers.emplace_back("Content-Type", "application/octet-stream");
      MS_ASSIGN_OR_RETURN(net::HttpResponse r, ep_->Send(std::move(c)));
      counter_.Add(data.size());
      return Ok{};
    }
    MS_ASSIGN_OR_RETURN(std::string upload_id, UploadId());
    S3Call c{"UploadPart", "PUT",
             full_,        {{"partNumber", std::to_string(index + 1)}, {"uploadId", upload_id}},
             {},           data,
             nullptr,      nullptr};
    MS_ASSIGN_OR_RETURN(net::HttpResponse r, ep_->Send(std::move(c)));
    std::string etag = r.Header("etag").value_or("");
    if (etag.empty()) {
      return StoreError(ErrorCode::kInternal, "malformed-response",
                        "UploadPart " + std::to_string(index + 1) + " returned no ETag");
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      etags_[index] = std::move(etag);
    }
    counter_.Add(data.size());
    return Ok{};
  }

  // CreateMultipartUpload once, by the first part to need it.
  Result<std::string> UploadId() {
    std::lock_guard<std::mutex> lock(create_mu_);
    if (!upload_id_.empty()) return upload_id_;
    S3Call create{
        "CreateMultipartUpload", "POST", full_, {{"uploads", ""}}, {}, {}, nullptr, nullptr};
    create.headers.emplace_back("Content-Type", "application/octet-stream");
    MS_ASSIGN_OR_RETURN(net::HttpResponse cr, ep_->Send(std::move(create)));
    std::string id = aws::xml::Text(cr.BodyText(), "UploadId").value_or("");
    if (id.empty()) {
      return StoreError(ErrorCode::kInternal, "malformed-response",
                        "CreateMultipartUpload returned no UploadId");
    }
    upload_id_ = id;
    return id;
  }

  Status Complete() {
    std::string body =
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
    for (size_t i = 0; i < etags_.size(); ++i) {
      body += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
              aws::xml::Escape(etags_[i]) + "</ETag></Part>";
    }
    body += "</CompleteMultipartUpload>";
    return net::WithRetries(ep_->retry(), [&](int) -> Status {
      S3Call c{"CompleteMultipartUpload",
               "POST",
               full_,
               {{"uploadId", upload_id_}},
               {},
               AsBytes(body),
               nullptr,
               nullptr};
      c.headers.emplace_back("Content-Type", "application/xml");
      MS_ASSIGN_OR_RETURN(net::HttpResponse r, ep_->SendOnce(c));
      // S3 may answer 200 and still fail: the error is in the body.
      if (r.status < 200 || r.status >= 300 || r.BodyText().find("<Error>") != std::string::npos) {
        if (r.status >= 200 && r.status < 300) r.status = 500;
        return S3Endpoint::Translate(aws::AwsErrorFromResponse("store", c.op, r));
      }
      return Ok{};
    });
  }

  // Stops the workers; on failure aborts the multipart upload, which frees every
  // uploaded part. `outcome` is returned by Commit with a note on the abort.
  void Finish(Status outcome) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (failure_.ok() && !outcome.ok()) failure_ = outcome;
      stop_ = true;
      finished_ = true;
    }
    work_.notify_all();
    space_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    parts_.clear();
    if (!outcome.ok() && !upload_id_.empty()) {
      S3Call c{"AbortMultipartUpload",
               "DELETE",
               full_,
               {{"uploadId", upload_id_}},
               {},
               {},
               nullptr,
               nullptr};
      auto r = ep_->Send(std::move(c));
      std::lock_guard<std::mutex> lock(mu_);
      Error e = failure_.error();
      if (r.ok() || r.error().reason == "NoSuchUpload") {
        e.message += " (multipart upload aborted; no parts left behind)";
      } else {
        e.message +=
            " (and aborting multipart upload " + upload_id_ + " failed: " + r.error().message + ")";
      }
      failure_ = e;
    }
  }

  std::shared_ptr<S3Endpoint> ep_;
  const std::string full_;
  const uint64_t size_;
  const bool multipart_;
  const unsigned threads_;
  uint64_t part_size_ = 0;
  uint64_t part_count_ = 0;
  ProgressFn progress_;
  ProgressCounter counter_;

  std::mutex create_mu_;
  std::string upload_id_;  // set once under create_mu_

  std::mutex mu_;
  std::condition_variable work_, space_, idle_;
  std::map<uint64_t, std::unique_ptr<Part>> parts_;
  // Buffers of uploaded parts, for the next parts: no more than were ever in flight
  // at once. Where malloc returns freed blocks of this size to the kernel (as the
  // server has it), allocating each part afresh cost a page fault per 4 KiB and
  // zeroing it.
  std::vector<Bytes> spare_;
  std::deque<uint64_t> queue_;
  std::vector<std::string> etags_;
  std::vector<std::thread> workers_;
  uint64_t busy_ = 0;
  uint64_t uploaded_ = 0;
  Status failure_;
  bool stop_ = false;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<ObjectWriter> NewS3Writer(std::shared_ptr<S3Endpoint> ep, std::string full_key,
                                          uint64_t size, const StoreOptions& options,
                                          const ProgressFn& progress) {
  return std::make_unique<S3ObjectWriter>(std::move(ep), std::move(full_key), size, options,
                                          progress);
}

}  // namespace modelseal::store
