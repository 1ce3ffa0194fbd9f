// HttpClient: HTTP(S) requests over libcurl (registry and remote cache), with connection
// reuse, TLS settings per request, and timeouts that guarantee no request hangs:
// a connect timeout, a stall timeout (no byte for N seconds aborts the transfer) and
// a total deadline. Redirects are not followed here: the registry client follows
// them itself so that credentials never travel to another host.
//
//   HttpClient http;
//   HttpRequest req{.method = "GET", .url = "https://registry/v2/"};
//   CLIP_ASSIGN_OR_RETURN(HttpResponse resp, http.Do(req));
//
// Errors: transport failures (refused, reset, timeout, TLS) are kUnavailable with
// curl's reason; a cancelled request is kCancelled. HTTP error statuses are not
// errors here: they come back in the response for the caller to interpret.
// Header values are never logged or put in error messages (they carry credentials).
//
// Thread safety: safe for concurrent use; curl handles are pooled and each is used by
// one request at a time, so connections are reused across requests.
#ifndef CLIP_COMMON_HTTP_CLIENT_H_
#define CLIP_COMMON_HTTP_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace clip {

struct TlsOptions {
  std::string ca_file;      // extra CA bundle (PEM); system CAs are always trusted too
  std::string client_cert;  // PEM client certificate for mutual TLS
  std::string client_key;   // PEM key of client_cert
  bool insecure_skip_verify = false;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent for PUT/POST/PATCH
  // When set, the response body is streamed here instead of collected; an error
  // aborts the transfer and is returned by Do().
  std::function<absl::Status(absl::string_view)> sink;
  TlsOptions tls;
  const std::atomic<bool>* cancel = nullptr;  // aborts the transfer when set to true
};

struct HttpResponse {
  long status = 0;
  // Header names lowercased, in arrival order (only the final response's headers).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // empty when a sink consumed it

  // First value of header `name` (lowercase).
  std::optional<std::string> Header(absl::string_view name) const;
  // All values of header `name` (lowercase).
  std::vector<std::string> Headers(absl::string_view name) const;
};

struct HttpOptions {
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration stall_timeout = absl::Seconds(30);  // no progress this long: abort
  absl::Duration total_timeout = absl::Minutes(30);  // upper bound for any one request
  std::string user_agent = "clip/0.1";
};

// `url` without its query string and user info, fit for logs and error messages.
std::string RedactUrl(absl::string_view url);

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  absl::StatusOr<HttpResponse> Do(const HttpRequest& request) const;

 private:
  struct Handle;
  std::unique_ptr<Handle> Acquire() const;
  void Release(std::unique_ptr<Handle> handle) const;

  const HttpOptions options_;
  mutable absl::Mutex mu_;
  mutable std::vector<std::unique_ptr<Handle>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clip

#endif  // CLIP_COMMON_HTTP_CLIENT_H_
