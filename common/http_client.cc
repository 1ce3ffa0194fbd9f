#include "common/http_client.h"

#include <curl/curl.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace clip {
namespace {

// curl_global_init is not thread-safe; run it once before any handle exists.
void GlobalInit() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  if (!done) abort();
}

constexpr size_t kMaxPooledHandles = 64;
constexpr size_t kMaxCollectedBody = 64 << 20;  // manifests, tokens, error bodies

struct TransferState {
  CURL* curl;
  const HttpRequest* request;
  HttpResponse* response;
  absl::Status sink_status;
  bool too_large = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<TransferState*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    st->response->headers.clear();  // A new response (after 100-continue etc.).
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    st->response->headers.emplace_back(std::move(name), std::string(value));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<TransferState*>(user);
  absl::string_view chunk(data, size * n);
  long code = 0;
  curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &code);
  // Only a 2xx body is streamed to the sink; error bodies are collected.
  if (st->request->sink && code >= 200 && code < 300) {
    st->sink_status = st->request->sink(chunk);
    return st->sink_status.ok() ? chunk.size() : 0;
  }
  if (st->response->body.size() + chunk.size() > kMaxCollectedBody) {
    st->too_large = true;
    return 0;
  }
  st->response->body.append(chunk.data(), chunk.size());
  return chunk.size();
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* st = static_cast<TransferState*>(user);
  const std::atomic<bool>* cancel = st->request->cancel;
  return cancel != nullptr && cancel->load(std::memory_order_relaxed) ? 1 : 0;
}

}  // namespace

std::string RedactUrl(absl::string_view url) {
  // Query strings of blob-storage redirects carry signatures; user:pass@ may appear.
  url = url.substr(0, url.find('?'));
  size_t scheme = url.find("://");
  size_t at = url.find('@');
  size_t slash = url.find('/', scheme == absl::string_view::npos ? 0 : scheme + 3);
  if (scheme != absl::string_view::npos && at != absl::string_view::npos && at < slash) {
    return absl::StrCat(url.substr(0, scheme + 3), url.substr(at + 1));
  }
  return std::string(url);
}

struct HttpClient::Handle {
  CURL* curl = nullptr;
  ~Handle() {
    if (curl) curl_easy_cleanup(curl);
  }
};

std::optional<std::string> HttpResponse::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::vector<std::string> HttpResponse::Headers(absl::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (k == name) out.push_back(v);
  }
  return out;
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) { GlobalInit(); }

HttpClient::~HttpClient() = default;

std::unique_ptr<HttpClient::Handle> HttpClient::Acquire() const {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->curl = curl_easy_init();
  if (h->curl == nullptr) abort();
  return h;
}

void HttpClient::Release(std::unique_ptr<Handle> handle) const {
  absl::MutexLock lock(&mu_);
  if (idle_.size() < kMaxPooledHandles) idle_.push_back(std::move(handle));
}

absl::StatusOr<HttpResponse> HttpClient::Do(const HttpRequest& request) const {
  std::unique_ptr<Handle> h = Acquire();
  CURL* c = h->curl;
  // Reset options but keep the handle's connection cache (the point of pooling).
  curl_easy_reset(c);
  HttpResponse response;
  TransferState st{c, &request, &response, absl::OkStatus()};

  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.total_timeout)));
  // Stalled: under 1 byte/s for stall_timeout.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(
      c, CURLOPT_LOW_SPEED_TIME,
      static_cast<long>(std::max<int64_t>(1, absl::ToInt64Seconds(options_.stall_timeout))));
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &st);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &st);
  // Registries send blobs as they are: never ask for a transfer encoding.
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, nullptr);

  const TlsOptions& tls = request.tls;
  if (!tls.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca_file.c_str());
  if (!tls.client_cert.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, tls.client_cert.c_str());
  if (!tls.client_key.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, tls.client_key.c_str());
  if (tls.insecure_skip_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }

  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }
  struct curl_slist* headers = nullptr;
  for (const auto& [k, v] : request.headers) {
    headers = curl_slist_append(headers, absl::StrCat(k, ": ", v).c_str());
  }
  // No "Expect: 100-continue" round trip on uploads.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  curl_slist_free_all(headers);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  Release(std::move(h));

  // Some servers announce a body on error answers and send none (docker-registry's
  // 416); the status is what matters there.
  if (rc == CURLE_PARTIAL_FILE && response.status >= 400) rc = CURLE_OK;
  if (rc != CURLE_OK) {
    if (!st.sink_status.ok()) return st.sink_status;
    if (st.too_large) return absl::ResourceExhaustedError("response body too large");
    if (rc == CURLE_ABORTED_BY_CALLBACK) return absl::CancelledError("request cancelled");
    return absl::UnavailableError(
        absl::StrCat(request.method, " ", RedactUrl(request.url), ": ", curl_easy_strerror(rc)));
  }
  return response;
}

}  // namespace clip
