// libFuzzer target: the S3 XML reader (src/aws/xml.h) and the store's
// ListObjectsV2 parsing (S3Store::List in src/store/s3_store.cpp), reached
// through the public store API with a transport that answers every request with
// the fuzzed body (HTTP 200).
//
// Asserts:
//  - xml: FindFirst is the first of FindAll; every non-empty element text found
//    lies inside the document; Text is Decode of FindFirst; Escape then Decode gives back any
//    text unchanged;
//  - List: a page comes only from a body with a ListBucketResult; it lists each
//    <Contents> whose decoded Key starts with the store's prefix, in order, with
//    the prefix removed; a truncated listing has a continuation token.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "aws/xml.h"
#include "net/http.h"
#include "store/store.h"

namespace {

using namespace modelseal;

class FixedTransport final : public net::HttpTransport {
 public:
  Result<net::HttpResponse> Send(const net::HttpRequest&) override {
    net::HttpResponse r;
    r.status = 200;
    r.headers = {{"content-type", "application/xml"}};
    r.body.assign(body.begin(), body.end());
    return r;
  }
  std::string_view body;
};

struct Fixture {
  std::shared_ptr<FixedTransport> transport = std::make_shared<FixedTransport>();
  std::unique_ptr<store::ObjectStore> store;
  Fixture() {
    store::StoreOptions o;
    o.endpoint = "http://127.0.0.1:9";
    o.region = "eu-west-1";
    o.retry.max_attempts = 1;
    o.credentials = aws::StaticCredentials(aws::Credentials::Make("AKID", "secret"));
    o.transport = transport;
    auto s = store::OpenStore("s3://bucket/models/", o);
    if (!s.ok()) __builtin_trap();
    store = std::move(*s);
  }
};

void CheckXml(std::string_view doc) {
  for (std::string_view name : {"Contents", "Key", "IsTruncated"}) {
    const auto all = aws::xml::FindAll(doc, name);
    const auto first = aws::xml::FindFirst(doc, name);
    if (all.empty() != !first.has_value()) __builtin_trap();
    if (first && (first->data() != all[0].data() || first->size() != all[0].size())) {
      __builtin_trap();
    }
    for (std::string_view e : all) {
      // (an empty element, <name/>, may be a view of nothing)
      if (!e.empty() && (e.data() < doc.data() || e.data() + e.size() > doc.data() + doc.size())) {
        __builtin_trap();
      }
    }
    const auto text = aws::xml::Text(doc, name);
    if (text.has_value() != first.has_value()) __builtin_trap();
    if (text && *text != aws::xml::Decode(*first)) __builtin_trap();
  }
  if (aws::xml::Decode(aws::xml::Escape(doc)) != doc) __builtin_trap();
}

void CheckList(std::string_view doc) {
  static Fixture* f = new Fixture();
  f->transport->body = doc;
  auto page = f->store->List("", "", 1000);
  if (!page.ok()) return;
  if (doc.find("<ListBucketResult") == std::string_view::npos) __builtin_trap();
  size_t i = 0;
  for (std::string_view item : aws::xml::FindAll(doc, "Contents")) {
    const std::string key = aws::xml::Text(item, "Key").value_or("");
    if (key.rfind("models/", 0) != 0) continue;
    if (i >= page->objects.size() || page->objects[i].key != key.substr(7)) __builtin_trap();
    ++i;
  }
  if (i != page->objects.size()) __builtin_trap();
  if (aws::xml::Text(doc, "IsTruncated").value_or("false") == "true" && page->next_token.empty()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view doc(reinterpret_cast<const char*>(data), size);
  CheckXml(doc);
  CheckList(doc);
  return 0;
}
