#include "registry/registry_client.h"

#include <future>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"

namespace clip {
namespace {

constexpr int kMaxRedirects = 5;

std::string AcceptManifests() {
  return absl::StrJoin({kOciIndex, kOciManifest, kDockerManifestList, kDockerManifest}, ", ");
}

std::string HostOf(absl::string_view url) {
  size_t s = url.find("://");
  if (s == absl::string_view::npos) return "";
  url.remove_prefix(s + 3);
  return std::string(url.substr(0, url.find_first_of("/?#")));
}

std::string Scope(const Reference& repo, const std::string& actions) {
  return absl::StrCat("repository:", repo.repository(), ":", actions);
}

// Percent-encodes a query parameter value.
std::string QueryEscape(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    }
  }
  return out;
}

// Resolves a Location header against the URL it came from.
std::string ResolveLocation(const std::string& base, const std::string& location) {
  if (absl::StrContains(location, "://")) return location;
  size_t s = base.find("://");
  size_t path = base.find('/', s + 3);
  std::string origin = base.substr(0, path);
  if (absl::StartsWith(location, "/")) return origin + location;
  std::string dir = base.substr(0, base.rfind('/') + 1);
  return dir + location;
}

// Blob bytes received from registries (clip_registry_blob_bytes_total): "range" for
// lazy reads, "whole" for full downloads (index builds, index artifacts).
Counter& BlobBytes(const char* kind) {
  static Counter& range = DefaultMetrics().GetCounter(
      "clip_registry_blob_bytes_total", "Blob bytes received from registries", {{"kind", "range"}});
  static Counter& whole = DefaultMetrics().GetCounter(
      "clip_registry_blob_bytes_total", "Blob bytes received from registries", {{"kind", "whole"}});
  return kind[0] == 'r' ? range : whole;
}

}  // namespace

absl::Status StatusFromResponse(const HttpResponse& r, absl::string_view what) {
  if (r.status >= 200 && r.status < 300) return absl::OkStatus();
  // The registry's error codes (MANIFEST_UNKNOWN, ...) help; bodies hold no secrets,
  // but are cut short.
  std::string detail;
  rapidjson::Document doc;
  doc.Parse(r.body.data(), r.body.size());
  if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("errors") &&
      doc["errors"].IsArray() && !doc["errors"].Empty()) {
    const auto& e = doc["errors"][0];
    if (e.IsObject() && e.HasMember("code") && e["code"].IsString()) {
      detail = absl::StrCat(" ", e["code"].GetString());
      if (e.HasMember("message") && e["message"].IsString()) {
        absl::StrAppend(&detail, ": ", std::string(e["message"].GetString()).substr(0, 200));
      }
    }
  }
  std::string msg = absl::StrCat(what, ": HTTP ", r.status, detail);
  switch (r.status) {
    case 404:
      return absl::NotFoundError(msg);
    case 401:
    case 403:
      return absl::PermissionDeniedError(msg);
    case 400:
    case 405:
    case 413:
    case 416:
      return absl::InvalidArgumentError(msg);
    case 429:
      return absl::UnavailableError(msg);
    default:
      return r.status >= 500 ? absl::UnavailableError(msg) : absl::UnknownError(msg);
  }
}

RegistryClient::RegistryClient(Options options)
    : options_(std::move(options)), http_(options_.http) {
  if (!options_.hosts) options_.hosts = std::make_shared<DefaultHosts>();
}

namespace {

// Answers worth another attempt: rate limited, or the server (or a proxy) failing.
bool RetryableHttp(int status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

}  // namespace

absl::Status RegistryClient::Retrying(const std::function<Step(int attempt)>& step) const {
  const int max = std::max(1, options_.retry.max_attempts);
  absl::Status last = absl::UnavailableError("no attempt made");
  for (int attempt = 0; attempt < max; ++attempt) {
    if (cancelled()) return absl::CancelledError("request cancelled");
    Step s = step(attempt);
    if (!s.retry) return s.status;
    last = s.status;
    if (attempt + 1 < max && !Sleep(Backoff(attempt, s.retry_after))) {
      return absl::CancelledError("request cancelled");
    }
  }
  return absl::UnavailableError(absl::StrCat(last.message(), " (after ", max, " attempts)"));
}

absl::Duration RegistryClient::Backoff(int attempt,
                                       const std::optional<std::string>& retry_after) const {
  const RetryPolicy& p = options_.retry;
  if (retry_after) {
    int64_t secs = 0;
    absl::Time when;
    std::string err;
    if (absl::SimpleAtoi(*retry_after, &secs)) {
      return std::min(absl::Seconds(std::max<int64_t>(0, secs)), p.max_retry_after);
    }
    if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", *retry_after, &when, &err)) {
      return std::min(std::max(absl::ZeroDuration(), when - absl::Now()), p.max_retry_after);
    }
  }
  absl::Duration d = p.initial_backoff * (int64_t{1} << std::min(attempt, 16));
  d = std::min(d, p.max_backoff);
  thread_local std::mt19937_64 rng(std::random_device{}());
  double jitter = std::uniform_real_distribution<double>(0.5, 1.5)(rng);
  return d * jitter;
}

bool RegistryClient::Sleep(absl::Duration d) const {
  if (!options_.cancel) {
    absl::SleepFor(d);
    return true;
  }
  return !options_.cancel->WaitFor(d);
}

absl::StatusOr<std::string> RegistryClient::Authorize(const RegistryEndpoint& ep,
                                                      const Reference& repo,
                                                      const std::string& actions,
                                                      const HttpResponse& resp) const {
  std::optional<Credential> cred;
  if (options_.credentials) {
    CLIP_ASSIGN_OR_RETURN(cred, options_.credentials->Get(repo.domain()));
  }
  std::optional<std::string> header = resp.Header("www-authenticate");
  if (!header) return absl::PermissionDeniedError(absl::StrCat(ep.host, ": 401 without challenge"));
  CLIP_ASSIGN_OR_RETURN(Challenge c, ParseChallenge(*header));
  if (c.scheme == "basic") {
    if (!cred || cred->empty()) {
      return absl::PermissionDeniedError(absl::StrCat(ep.host, " requires credentials"));
    }
    return BasicAuthorization(*cred);
  }
  if (c.scheme != "bearer" || c.params["realm"].empty()) {
    return absl::PermissionDeniedError(absl::StrCat(ep.host, ": unsupported auth scheme"));
  }
  if (cred && !cred->registry_token.empty()) return absl::StrCat("Bearer ", cred->registry_token);
  std::string scope = c.params.count("scope") ? c.params["scope"] : Scope(repo, actions);
  std::string url = c.params["realm"];
  absl::StrAppend(&url, absl::StrContains(url, "?") ? "&" : "?");
  absl::StrAppend(&url, "service=", QueryEscape(c.params["service"]));
  for (absl::string_view s : absl::StrSplit(scope, ' ', absl::SkipEmpty())) {
    absl::StrAppend(&url, "&scope=", QueryEscape(s));
  }
  HttpRequest req;
  req.url = url;
  req.tls = ep.tls;
  req.cancel = options_.cancel ? options_.cancel->flag() : nullptr;
  if (cred && !cred->identity_token.empty()) {
    req.method = "POST";
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.url = c.params["realm"];
    req.body = absl::StrCat(
        "grant_type=refresh_token&client_id=clip&service=", QueryEscape(c.params["service"]),
        "&scope=", QueryEscape(scope), "&refresh_token=", QueryEscape(cred->identity_token));
  } else if (cred && !cred->empty()) {
    req.headers.emplace_back("Authorization", BasicAuthorization(*cred));
  }
  absl::StatusOr<HttpResponse> tr;
  CLIP_RETURN_IF_ERROR(Retrying([&](int) -> Step {
    tr = http_.Do(req);
    if (!tr.ok()) return {tr.status(), tr.status().code() == absl::StatusCode::kUnavailable};
    absl::Status s = StatusFromResponse(*tr, "token request");
    return {s, RetryableHttp(tr->status), tr->Header("retry-after")};
  }));
  rapidjson::Document doc;
  doc.Parse(tr->body.data(), tr->body.size());
  std::string token;
  if (!doc.HasParseError() && doc.IsObject()) {
    for (const char* k : {"token", "access_token"}) {
      if (doc.HasMember(k) && doc[k].IsString() && token.empty()) token = doc[k].GetString();
    }
  }
  if (token.empty()) return absl::PermissionDeniedError("token server returned no token");
  int64_t expires_in = 60;
  if (doc.HasMember("expires_in") && doc["expires_in"].IsInt64()) {
    expires_in = std::max<int64_t>(doc["expires_in"].GetInt64(), 10);
  }
  std::string value = absl::StrCat("Bearer ", token);
  // Renew a little early so a token never expires in flight.
  tokens_.Put(absl::StrCat(ep.host, "|", Scope(repo, actions)), value,
              absl::Now() + absl::Seconds(expires_in * 9 / 10));
  return value;
}

absl::StatusOr<HttpResponse> RegistryClient::SendTo(const RegistryEndpoint& ep,
                                                    const Reference& repo,
                                                    const std::string& actions,
                                                    const Call& call) const {
  const std::string auth_key = absl::StrCat(ep.host, "|", Scope(repo, actions));
  std::string url = call.absolute_url.empty()
                        ? absl::StrCat(ep.scheme, "://", ep.host, ep.path_prefix, call.path)
                        : call.absolute_url;
  const std::string origin_host = HostOf(url);
  bool authorized_once = false;
  int redirects = 0;
  // One attempt: the request, following redirects and answering one auth challenge.
  auto once = [&]() -> absl::StatusOr<HttpResponse> {
    for (;;) {
      HttpRequest req;
      req.method = call.method;
      req.url = url;
      req.headers = call.headers;
      req.body = call.body;
      req.sink = call.sink;
      req.tls = ep.tls;
      req.cancel = options_.cancel ? options_.cancel->flag() : nullptr;
      if (cancelled()) return absl::CancelledError("request cancelled");
      bool same_host = HostOf(url) == origin_host;
      if (same_host) {
        if (auto auth = tokens_.Get(auth_key)) req.headers.emplace_back("Authorization", *auth);
      }
      CLIP_ASSIGN_OR_RETURN(HttpResponse resp, http_.Do(req));
      if (resp.status == 401 && same_host && !authorized_once) {
        authorized_once = true;
        tokens_.Erase(auth_key);
        CLIP_ASSIGN_OR_RETURN(std::string value, Authorize(ep, repo, actions, resp));
        if (!tokens_.Get(auth_key)) {
          tokens_.Put(auth_key, value, absl::Now() + absl::Hours(1));  // Basic: no expiry.
        }
        continue;
      }
      if (resp.status >= 300 && resp.status < 400 && resp.status != 304) {
        auto location = resp.Header("location");
        if (!location || ++redirects > kMaxRedirects) {
          return absl::UnavailableError(absl::StrCat("bad redirect from ", RedactUrl(url)));
        }
        url = ResolveLocation(url, *location);
        continue;  // Credentials are attached only while on the original host.
      }
      return resp;
    }
  };
  if (!call.retry) return once();
  absl::StatusOr<HttpResponse> result;
  absl::Status status = Retrying([&](int) -> Step {
    result = once();
    if (!result.ok()) {
      return {result.status(), result.status().code() == absl::StatusCode::kUnavailable};
    }
    if (RetryableHttp(result->status)) {
      return {StatusFromResponse(*result, absl::StrCat(call.method, " ", RedactUrl(url))), true,
              result->Header("retry-after")};
    }
    return {};
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<HttpResponse> RegistryClient::Send(const Reference& repo, Capability cap,
                                                  const std::string& actions, Call call,
                                                  RegistryEndpoint* used) const {
  const std::vector<RegistryEndpoint> eps =
      EndpointsFor(options_.hosts->Endpoints(repo.domain()), cap);
  if (eps.empty()) {
    return absl::NotFoundError(absl::StrCat("no endpoint of ", repo.domain(), " has the ",
                                            CapabilityName(cap), " capability (hosts.toml)"));
  }
  absl::StatusOr<HttpResponse> result;
  for (size_t i = 0; i < eps.size(); ++i) {
    result = SendTo(eps[i], repo, actions, call);
    // A mirror that fails or lacks the content hands over to the next endpoint.
    if (i + 1 < eps.size() &&
        (!result.ok() ? result.status().code() == absl::StatusCode::kUnavailable
                      : result->status == 404 || RetryableHttp(result->status))) {
      continue;
    }
    if (used) *used = eps[i];
    return result;
  }
  return result;
}

absl::StatusOr<Manifest> RegistryClient::FetchManifest(const Reference& ref) const {
  Call call;
  call.path = absl::StrCat("/", ref.repository(), "/manifests/", ref.ManifestReference());
  call.headers.emplace_back("Accept", AcceptManifests());
  // By digest the content is verified, so any endpoint that may pull serves it; a tag
  // is asked only where the configuration trusts the answer (containerd does the same).
  const Capability cap = ref.digest() ? Capability::kPull : Capability::kResolve;
  CLIP_ASSIGN_OR_RETURN(HttpResponse resp, Send(ref, cap, "pull", call));
  CLIP_RETURN_IF_ERROR(StatusFromResponse(resp, absl::StrCat("manifest ", ref.ToString())));
  Manifest m;
  m.bytes = std::move(resp.body);
  m.digest = Digest::Of(m.bytes);
  if (ref.digest() && *ref.digest() != m.digest) {
    return absl::DataLossError(
        absl::StrCat("manifest of ", ref.ToString(), " has digest ", m.digest.ToString()));
  }
  if (auto header = resp.Header("docker-content-digest")) {
    absl::StatusOr<Digest> d = Digest::Parse(*header);
    if (d.ok() && *d != m.digest) {
      return absl::DataLossError(
          absl::StrCat("manifest of ", ref.ToString(), " does not match Docker-Content-Digest"));
    }
  }
  rapidjson::Document doc;
  doc.Parse(m.bytes.data(), m.bytes.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return absl::DataLossError(absl::StrCat("manifest of ", ref.ToString(), " is not JSON"));
  }
  if (doc.HasMember("mediaType") && doc["mediaType"].IsString()) {
    m.media_type = doc["mediaType"].GetString();
  } else {
    m.media_type = resp.Header("content-type").value_or("");
    if (m.media_type.empty()) m.media_type = doc.HasMember("manifests") ? kOciIndex : kOciManifest;
  }
  return m;
}

absl::StatusOr<Manifest> RegistryClient::Resolve(const Reference& ref, const Platform& platform,
                                                 std::optional<Manifest>* index) const {
  CLIP_ASSIGN_OR_RETURN(Manifest m, FetchManifest(ref));
  if (!IsIndex(m.media_type)) return m;
  CLIP_ASSIGN_OR_RETURN(std::vector<Descriptor> entries, ParseIndexManifests(m.bytes));
  if (index != nullptr) *index = m;
  for (const Descriptor& d : entries) {
    if (!d.platform) continue;
    const Platform& p = *d.platform;
    if (p.os != platform.os || p.architecture != platform.architecture) continue;
    if (!platform.variant.empty() && NormalizeVariant(p) != NormalizeVariant(platform)) continue;
    return FetchManifest(ref.WithDigest(d.digest));
  }
  return absl::NotFoundError(absl::StrCat(ref.ToString(), " has no manifest for ", platform.os, "/",
                                          platform.architecture,
                                          platform.variant.empty() ? "" : "/", platform.variant));
}

absl::StatusOr<uint64_t> RegistryClient::BlobSize(const Reference& repo,
                                                  const Digest& digest) const {
  Call call;
  call.method = "HEAD";
  call.path = absl::StrCat("/", repo.repository(), "/blobs/", digest.ToString());
  CLIP_ASSIGN_OR_RETURN(HttpResponse resp, Send(repo, Capability::kPull, "pull", call));
  CLIP_RETURN_IF_ERROR(StatusFromResponse(resp, absl::StrCat("blob ", digest.ToString())));
  uint64_t size = 0;
  auto len = resp.Header("content-length");
  if (!len || !absl::SimpleAtoi(*len, &size)) {
    return absl::DataLossError("blob HEAD without Content-Length");
  }
  return size;
}

absl::Status RegistryClient::FetchBlob(
    const Reference& repo, const Digest& digest,
    const std::function<absl::Status(absl::string_view)>& sink) const {
  Sha256Hasher hasher;
  uint64_t received = 0;
  // Retried here, not in SendTo: a retry resumes with Range from what arrived.
  return Retrying([&](int) -> Step {
    Call call;
    call.path = absl::StrCat("/", repo.repository(), "/blobs/", digest.ToString());
    if (received > 0) call.headers.emplace_back("Range", absl::StrCat("bytes=", received, "-"));
    const uint64_t before = received;
    call.sink = [&](absl::string_view chunk) {
      hasher.Update(chunk);
      received += chunk.size();
      BlobBytes("whole").Increment(static_cast<double>(chunk.size()));
      return sink(chunk);
    };
    call.retry = false;
    absl::StatusOr<HttpResponse> resp = Send(repo, Capability::kPull, "pull", call);
    if (!resp.ok()) return {resp.status(), resp.status().code() == absl::StatusCode::kUnavailable};
    absl::Status s = StatusFromResponse(*resp, absl::StrCat("blob ", digest.ToString()));
    if (RetryableHttp(resp->status)) return {s, true, resp->Header("retry-after")};
    if (!s.ok()) return {s};
    if (before > 0 && resp->status == 200) {
      return {absl::DataLossError("registry ignored Range when resuming a blob download")};
    }
    if (hasher.Finish() != digest) {
      return {
          absl::DataLossError(absl::StrCat("blob ", digest.ToString(), " failed verification"))};
    }
    return {};
  });
}

absl::StatusOr<std::string> RegistryClient::ReadBlobRange(const Reference& repo,
                                                          const Digest& digest, uint64_t offset,
                                                          uint64_t length) const {
  if (length == 0) return std::string();
  const uint64_t last_byte = offset + length - 1;
  std::string body;
  // Retried here, not in SendTo: each attempt starts from an empty buffer.
  CLIP_RETURN_IF_ERROR(Retrying([&](int) -> Step {
    Call call;
    call.path = absl::StrCat("/", repo.repository(), "/blobs/", digest.ToString());
    call.headers.emplace_back("Range", absl::StrCat("bytes=", offset, "-", last_byte));
    // Received straight into a buffer of the expected size (no regrowth); a server
    // sending more than asked is cut off and retried.
    body.clear();
    body.reserve(length);
    call.retry = false;
    call.sink = [&](absl::string_view chunk) {
      if (body.size() + chunk.size() > length) {
        return absl::UnavailableError("more bytes than the range asked for");
      }
      body.append(chunk.data(), chunk.size());
      BlobBytes("range").Increment(static_cast<double>(chunk.size()));
      return absl::OkStatus();
    };
    absl::StatusOr<HttpResponse> sent = Send(repo, Capability::kPull, "pull", call);
    if (!sent.ok()) return {sent.status(), sent.status().code() == absl::StatusCode::kUnavailable};
    const HttpResponse& resp = *sent;
    if (resp.status == 206) {
      // Content-Range: bytes <first>-<last>/<total>
      auto cr = resp.Header("content-range");
      std::string want = absl::StrCat("bytes ", offset, "-", last_byte, "/");
      if (cr && absl::StartsWith(*cr, want) && body.size() == length) return {};
      return {absl::UnavailableError(absl::StrCat("blob ", digest.ToString(),
                                                  ": partial response does not match the range")),
              true};
    }
    if (resp.status == 200) {
      return {absl::UnavailableError(
                  absl::StrCat("blob ", digest.ToString(), ": registry ignored the Range header")),
              true};
    }
    if (resp.status == 416) {
      return {absl::OutOfRangeError(
          absl::StrCat("range ", offset, "+", length, " beyond blob ", digest.ToString()))};
    }
    absl::Status s = StatusFromResponse(resp, absl::StrCat("blob ", digest.ToString()));
    if (RetryableHttp(resp.status)) return {s, true, resp.Header("retry-after")};
    if (!s.ok()) return {s};
    return {absl::UnknownError(absl::StrCat("unexpected HTTP ", resp.status)), true};
  }));
  return body;
}

absl::Status RegistryClient::PushBlob(const Reference& repo, const Digest& digest,
                                      const std::string& bytes,
                                      const std::optional<Reference>& mount_from) const {
  if (Digest::Of(bytes) != digest) return absl::InvalidArgumentError("blob does not match digest");
  {
    Call head;
    head.method = "HEAD";
    head.path = absl::StrCat("/", repo.repository(), "/blobs/", digest.ToString());
    CLIP_ASSIGN_OR_RETURN(HttpResponse resp, Send(repo, Capability::kPush, "pull,push", head));
    if (resp.status == 200) return absl::OkStatus();  // Already there.
  }
  Call start;
  start.method = "POST";
  start.path = absl::StrCat("/", repo.repository(), "/blobs/uploads/");
  if (mount_from && mount_from->domain() == repo.domain()) {
    absl::StrAppend(&start.path, "?mount=", digest.ToString(),
                    "&from=", QueryEscape(mount_from->repository()));
  }
  RegistryEndpoint ep;
  CLIP_ASSIGN_OR_RETURN(HttpResponse started,
                        Send(repo, Capability::kPush, "pull,push", start, &ep));
  if (started.status == 201) return absl::OkStatus();  // Mounted.
  CLIP_RETURN_IF_ERROR(StatusFromResponse(started, "blob upload"));
  auto location = started.Header("location");
  if (!location) return absl::UnavailableError("blob upload without Location");
  std::string base = absl::StrCat(ep.scheme, "://", ep.host, ep.path_prefix, "/");
  std::string url = ResolveLocation(base, *location);
  absl::StrAppend(&url, absl::StrContains(url, "?") ? "&" : "?",
                  "digest=", QueryEscape(digest.ToString()));
  Call put;
  put.method = "PUT";
  put.absolute_url = url;
  put.body = bytes;
  put.headers.emplace_back("Content-Type", "application/octet-stream");
  CLIP_ASSIGN_OR_RETURN(HttpResponse done, Send(repo, Capability::kPush, "pull,push", put));
  return StatusFromResponse(done, "blob upload");
}

absl::StatusOr<Digest> RegistryClient::PushManifest(const Reference& repo, const std::string& tag,
                                                    const std::string& media_type,
                                                    const std::string& bytes) const {
  Digest digest = Digest::Of(bytes);
  Call put;
  put.method = "PUT";
  put.path =
      absl::StrCat("/", repo.repository(), "/manifests/", tag.empty() ? digest.ToString() : tag);
  put.headers.emplace_back("Content-Type", media_type);
  put.body = bytes;
  CLIP_ASSIGN_OR_RETURN(HttpResponse resp, Send(repo, Capability::kPush, "pull,push", put));
  CLIP_RETURN_IF_ERROR(StatusFromResponse(resp, "manifest upload"));
  return digest;
}

absl::StatusOr<std::vector<Descriptor>> RegistryClient::Referrers(
    const Reference& repo, const Digest& subject, const std::string& artifact_type) const {
  Call call;
  call.path = absl::StrCat("/", repo.repository(), "/referrers/", subject.ToString());
  if (!artifact_type.empty())
    absl::StrAppend(&call.path, "?artifactType=", QueryEscape(artifact_type));
  call.headers.emplace_back("Accept", kOciIndex);
  // OCI 1.1 fallback: an index tagged sha256-<hex> lists the referrers. Registries
  // without the referrers API (404) are common, so the fallback is asked at the same
  // time: one round trip instead of two, for one extra request where the API exists.
  absl::StatusOr<Reference> tagged =
      Reference::Parse(absl::StrCat(repo.Name(), ":sha256-", subject.Hex()));
  if (!tagged.ok()) return tagged.status();
  std::future<absl::StatusOr<Manifest>> fallback =
      std::async(std::launch::async, [this, &tagged] { return FetchManifest(*tagged); });
  absl::StatusOr<HttpResponse> sent = Send(repo, Capability::kResolve, "pull", call);
  absl::StatusOr<Manifest> index = fallback.get();
  CLIP_ASSIGN_OR_RETURN(HttpResponse resp, std::move(sent));
  std::vector<Descriptor> found;
  if (resp.status == 200) {
    CLIP_ASSIGN_OR_RETURN(found, ParseIndexManifests(resp.body));
  } else if (resp.status == 404) {
    if (!index.ok()) {
      if (index.status().code() == absl::StatusCode::kNotFound) return found;
      return index.status();
    }
    CLIP_ASSIGN_OR_RETURN(found, ParseIndexManifests(index->bytes));
  } else {
    CLIP_RETURN_IF_ERROR(StatusFromResponse(resp, "referrers"));
  }
  if (!artifact_type.empty()) {
    std::vector<Descriptor> filtered;
    for (auto& d : found) {
      if (d.artifact_type == artifact_type) filtered.push_back(std::move(d));
    }
    return filtered;
  }
  return found;
}

absl::StatusOr<ResolvedImage> ResolveImage(const RegistryClient& client, absl::string_view text,
                                           absl::string_view platform) {
  ResolvedImage r;
  CLIP_ASSIGN_OR_RETURN(r.ref, Reference::Parse(text));
  r.platform = Platform::Host();
  if (!platform.empty()) {
    CLIP_ASSIGN_OR_RETURN(r.platform, Platform::Parse(platform));
  }
  CLIP_ASSIGN_OR_RETURN(r.manifest, client.Resolve(r.ref, r.platform, &r.index));
  CLIP_ASSIGN_OR_RETURN(r.image, ParseImageManifest(r.manifest.bytes));
  return r;
}

absl::StatusOr<std::string> FetchBlobToString(const RegistryClient& client, const Reference& repo,
                                              const Digest& digest) {
  std::string out;
  CLIP_RETURN_IF_ERROR(client.FetchBlob(repo, digest, [&](absl::string_view c) {
    out.append(c.data(), c.size());
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace clip
