#include "cache/remote_cache.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace clip {

RemoteCache::RemoteCache(Options options)
    : SpanStore("remote", options.metrics), options_(std::move(options)), http_(options_.http) {}

std::string RemoteCache::Url(const Digest& key) const {
  std::string base = options_.endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return absl::StrCat(base, "/cas/", key.Hex());
}

std::string RemoteCache::LayerDocUrl(LayerDoc kind, const Digest& layer) const {
  std::string base = options_.endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return absl::StrCat(base, kind == LayerDoc::kIndex ? "/index/" : "/profile/", layer.Hex());
}

absl::StatusOr<std::optional<std::string>> RemoteCache::GetLayerDoc(LayerDoc kind,
                                                                    const Digest& layer) {
  HttpRequest req;
  req.url = LayerDocUrl(kind, layer);
  req.headers = options_.headers;
  req.tls = options_.tls;
  CLIP_ASSIGN_OR_RETURN(HttpResponse resp, http_.Do(req));
  if (resp.status == 404) return std::nullopt;
  if (resp.status != 200) {
    return absl::UnavailableError(
        absl::StrCat("remote cache GET ", RedactUrl(req.url), ": HTTP ", resp.status));
  }
  return std::move(resp.body);
}

absl::Status RemoteCache::PutLayerDoc(LayerDoc kind, const Digest& layer,
                                      const std::string& encoded) {
  HttpRequest put;
  put.method = "PUT";
  put.url = LayerDocUrl(kind, layer);
  put.headers = options_.headers;
  put.headers.emplace_back("Content-Type", "application/octet-stream");
  put.tls = options_.tls;
  put.body = encoded;
  CLIP_ASSIGN_OR_RETURN(HttpResponse resp, http_.Do(put));
  if (resp.status != 200 && resp.status != 201 && resp.status != 204) {
    return absl::UnavailableError(
        absl::StrCat("remote cache PUT ", RedactUrl(put.url), ": HTTP ", resp.status));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<SpanBytes>> RemoteCache::Get(const Digest& key) {
  absl::StatusOr<std::optional<std::string>> got = GetDoc(key);
  if (got.status().code() == absl::StatusCode::kDataLoss) {
    // Wrong bytes from the remote are never served; treated as a miss so the span is
    // fetched from the origin (and written back, repairing the entry).
    return std::nullopt;
  }
  CLIP_RETURN_IF_ERROR(got.status());
  if (!*got) return std::nullopt;
  return SpanBytes(std::make_shared<const std::string>(**std::move(got)));
}

absl::StatusOr<std::optional<std::string>> RemoteCache::GetDoc(const Digest& key) {
  HttpRequest req;
  req.url = Url(key);
  req.headers = options_.headers;
  req.tls = options_.tls;
  absl::StatusOr<HttpResponse> resp = http_.Do(req);
  if (!resp.ok()) {
    counters_.errors.Increment();
    log_.Log(LogLevel::kWarning, "cache.remote",
             absl::StrCat("GET failed: ", resp.status().message()));
    return resp.status();
  }
  if (resp->status == 404) {
    counters_.Miss();
    return std::nullopt;
  }
  if (resp->status != 200) {
    counters_.errors.Increment();
    absl::Status s = absl::UnavailableError(
        absl::StrCat("remote cache GET ", RedactUrl(req.url), ": HTTP ", resp->status));
    log_.Log(LogLevel::kWarning, "cache.remote", s.message());
    return s;
  }
  if (const Digest got = Digest::Of(resp->body); got != key) {
    counters_.corrupt.Increment();
    counters_.Miss();
    log_.Log(LogLevel::kWarning, "cache.remote",
             absl::StrCat("entry ", key.Hex(), " failed verification; ignored"));
    return absl::DataLossError(absl::StrCat("the remote cache's entry ", key.Hex(),
                                            " holds other bytes (", resp->body.size(),
                                            " bytes hashing to ", got.ToString(), ")"));
  }
  counters_.Hit(resp->body.size());
  return std::optional<std::string>(std::move(resp->body));
}

absl::Status RemoteCache::PutDoc(const std::string& bytes) {
  HttpRequest put;
  put.method = "PUT";
  put.url = Url(Digest::Of(bytes));
  put.headers = options_.headers;
  put.headers.emplace_back("Content-Type", "application/octet-stream");
  put.tls = options_.tls;
  put.body = bytes;
  absl::StatusOr<HttpResponse> resp = http_.Do(put);
  CLIP_RETURN_IF_ERROR(resp.status());
  if (resp->status != 200 && resp->status != 201 && resp->status != 204) {
    counters_.errors.Increment();
    return absl::UnavailableError(
        absl::StrCat("remote cache PUT ", RedactUrl(put.url), ": HTTP ", resp->status));
  }
  counters_.bytes_written.Increment(static_cast<double>(bytes.size()));
  return absl::OkStatus();
}

absl::Status RemoteCache::Put(const Digest& key, const SpanBytes& bytes) {
  HttpRequest head;
  head.method = "HEAD";
  head.url = Url(key);
  head.headers = options_.headers;
  head.tls = options_.tls;
  absl::StatusOr<HttpResponse> exists = http_.Do(head);
  if (exists.ok() && exists->status == 200) return absl::OkStatus();
  HttpRequest put;
  put.method = "PUT";
  put.url = head.url;
  put.headers = options_.headers;
  put.headers.emplace_back("Content-Type", "application/octet-stream");
  put.tls = options_.tls;
  put.body = *bytes;
  absl::StatusOr<HttpResponse> resp = http_.Do(put);
  if (!resp.ok() || (resp->status != 200 && resp->status != 201 && resp->status != 204)) {
    counters_.errors.Increment();
    return absl::UnavailableError(absl::StrCat(
        "remote cache PUT ", RedactUrl(put.url), ": ",
        resp.ok() ? absl::StrCat("HTTP ", resp->status) : std::string(resp.status().message())));
  }
  counters_.bytes_written.Increment(static_cast<double>(bytes->size()));
  return absl::OkStatus();
}

}  // namespace clip
