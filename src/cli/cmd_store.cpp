// Object store and Hugging Face verbs:
//   store mb URL                 create the bucket/directory (S3: public access blocked)
//   store ls URL [PREFIX]        list keys (all pages)          [--json]
//   store put URL KEY FILE       upload a file (multipart when large)
//   store get URL KEY FILE       download (parallel ranges) into FILE, atomically
//   store head URL KEY / store rm URL KEY
//   hub ls REPO [--revision R]   list a repo's files            [--json]
//   hub download REPO FILE [--revision R]   into the hub cache; prints the path
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/commands.h"
#include "common/io.h"
#include "hub/hub.h"
#include "store/store.h"

namespace modelseal::cli {
namespace {

using nlohmann::json;

struct StoreArgs {
  std::string url, key, file, prefix, repo, revision = "main";
  bool json = false, quiet = false;
  unsigned threads = 8;
};
StoreArgs g;

Result<std::unique_ptr<store::ObjectStore>> Open() {
  store::StoreOptions o;
  o.threads = g.threads;
  return store::OpenStore(g.url, o);
}

int MakeBucket() {
  auto s = Open();
  if (!s.ok()) return ReportError(s.error());
  auto r = (*s)->CreateBucket();
  if (!r.ok()) return ReportError(r.error());
  std::printf("%s %s\n", r->created ? "created" : "exists", (*s)->url().c_str());
  if (!r->note.empty()) std::fprintf(stderr, "modelseal: note: %s\n", r->note.c_str());
  return 0;
}

int List() {
  auto s = Open();
  if (!s.ok()) return ReportError(s.error());
  auto all = (*s)->ListAll(g.prefix);
  if (!all.ok()) return ReportError(all.error());
  if (g.json) {
    json arr = json::array();
    for (const auto& o : *all) {
      arr.push_back(
          {{"key", o.key}, {"size", o.size}, {"etag", o.etag}, {"modified_unix", o.modified_unix}});
    }
    std::printf("%s\n", arr.dump(2).c_str());
    return 0;
  }
  for (const auto& o : *all) {
    std::printf("%14llu  %s\n", static_cast<unsigned long long>(o.size), o.key.c_str());
  }
  return 0;
}

int Put() {
  auto s = Open();
  if (!s.ok()) return ReportError(s.error());
  auto src = FileSource::Open(g.file);
  if (!src.ok()) return ReportError(src.error());
  Status st = (*s)->Put(g.key, **src, TerminalProgress(g.quiet));
  if (!st.ok()) return ReportError(st.error());
  std::printf("uploaded %s -> %s\n", g.file.c_str(), (*s)->ObjectUrl(g.key).c_str());
  return 0;
}

int Get() {
  auto s = Open();
  if (!s.ok()) return ReportError(s.error());
  auto sink = AtomicFileSink::Create(g.file);
  if (!sink.ok()) return ReportError(sink.error());
  auto info = (*s)->Download(g.key, **sink, TerminalProgress(g.quiet));
  if (!info.ok()) return ReportError(info.error());
  if (auto c = (*sink)->Commit(); !c.ok()) return ReportError(c.error());
  std::printf("downloaded %s (%llu bytes)\n", g.file.c_str(),
              static_cast<unsigned long long>(info->size));
  return 0;
}

int Head() {
  auto s = Open();
  if (!s.ok()) return ReportError(s.error());
  auto h = (*s)->Head(g.key);
  if (!h.ok()) return ReportError(h.error());
  std::printf("%s\n", json({{"key", h->key},
                            {"size", h->size},
                            {"etag", h->etag},
                            {"modified_unix", h->modified_unix}})
                          .dump(2)
                          .c_str());
  return 0;
}

int Remove() {
  auto s = Open();
  if (!s.ok()) return ReportError(s.error());
  if (Status st = (*s)->Delete(g.key); !st.ok()) return ReportError(st.error());
  return 0;
}

int HubList() {
  hub::HubClient client;
  auto files = client.ListFiles(g.repo, g.revision);
  if (!files.ok()) return ReportError(files.error());
  if (g.json) {
    json arr = json::array();
    for (const auto& f : *files) {
      arr.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
    }
    std::printf("%s\n", arr.dump(2).c_str());
    return 0;
  }
  for (const auto& f : *files) {
    std::printf("%14llu  %s\n", static_cast<unsigned long long>(f.size), f.path.c_str());
  }
  return 0;
}

int HubDownload() {
  hub::HubClient client;
  auto d = client.Download(g.repo, g.revision, g.file, TerminalProgress(g.quiet));
  if (!d.ok()) return ReportError(d.error());
  if (g.json) {
    std::printf("%s\n", json({{"path", d->path},
                              {"size", d->size},
                              {"sha256", d->sha256},
                              {"verified", d->verified},
                              {"from_cache", d->from_cache}})
                            .dump(2)
                            .c_str());
  } else {
    std::printf("%s\n", d->path.c_str());
  }
  return 0;
}

}  // namespace

void RegisterStoreCommands(CLI::App& app) {
  auto* st = app.add_subcommand("store", "Object stores: s3://bucket[/prefix] or file:///dir");
  st->require_subcommand(1);
  auto url = [](CLI::App* c) { c->add_option("URL", g.url, "Store URL")->required(); };
  auto key = [](CLI::App* c) { c->add_option("KEY", g.key, "Object key")->required(); };

  auto* mb = st->add_subcommand("mb", "Create the bucket (S3: all public access blocked)");
  url(mb);
  SetAction(mb, MakeBucket);

  auto* ls = st->add_subcommand("ls", "List keys under an optional prefix");
  url(ls);
  ls->add_option("PREFIX", g.prefix, "Key prefix");
  ls->add_flag("--json", g.json, "Print JSON");
  SetAction(ls, List);

  // put and get: URL KEY FILE, parallelism, progress.
  auto transfer = [&](CLI::App* c, const char* threads_help) {
    url(c);
    key(c);
    c->add_option("FILE", g.file, "Local file")->required();
    c->add_option("--threads", g.threads, threads_help);
    c->add_flag("-q,--quiet", g.quiet, "No progress bar");
  };
  auto* put = st->add_subcommand("put", "Upload FILE as KEY");
  transfer(put, "Parallel parts");
  SetAction(put, Put);

  auto* get = st->add_subcommand("get", "Download KEY into FILE");
  transfer(get, "Parallel ranges");
  SetAction(get, Get);

  auto* head = st->add_subcommand("head", "Print an object's size and ETag");
  url(head);
  key(head);
  SetAction(head, Head);

  auto* rm = st->add_subcommand("rm", "Delete an object");
  url(rm);
  key(rm);
  SetAction(rm, Remove);

  auto* hb = app.add_subcommand("hub", "Hugging Face Hub (HF_ENDPOINT, HF_TOKEN)");
  hb->require_subcommand(1);
  auto* hls = hb->add_subcommand("ls", "List a repo's files");
  hls->add_option("REPO", g.repo, "org/name")->required();
  hls->add_option("--revision", g.revision, "Branch, tag or commit (default main)");
  hls->add_flag("--json", g.json, "Print JSON");
  SetAction(hls, HubList);
  auto* hdl = hb->add_subcommand("download", "Download a file into the cache; print its path");
  hdl->add_option("REPO", g.repo, "org/name")->required();
  hdl->add_option("FILE", g.file, "File in the repo")->required();
  hdl->add_option("--revision", g.revision, "Branch, tag or commit (default main)");
  hdl->add_flag("--json", g.json, "Print JSON");
  hdl->add_flag("-q,--quiet", g.quiet, "No progress bar");
  SetAction(hdl, HubDownload);
}

}  // namespace modelseal::cli
