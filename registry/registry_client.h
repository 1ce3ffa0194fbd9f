// RegistryClient: the OCI distribution client clip reads layers, manifests and
// indexes through, and publishes indexes with. What it reads is described in
// manifest.h (media types, platforms, descriptors); where it goes, in endpoint.h.
//
// One request path serves every operation: pick the endpoints for the reference's
// domain (mirrors first, per hosts configuration), attach cached authorization,
// retry transport failures, 429 and 5xx with exponential backoff and jitter
// (honouring Retry-After), answer 401 challenges (Bearer token flow or Basic), and
// follow redirects, dropping credentials when the host changes. Every manifest and
// whole blob is verified against its digest; a Range read is checked for `206` and
// the exact `Content-Range` (a `200` is never taken for a range).
//
//   RegistryClient client(RegistryClient::Options{});
//   CLIP_ASSIGN_OR_RETURN(Reference ref, Reference::Parse("localhost:5000/app:v1"));
//   CLIP_ASSIGN_OR_RETURN(Manifest m, client.Resolve(ref, Platform::Host()));
//   CLIP_ASSIGN_OR_RETURN(std::string bytes, client.ReadBlobRange(ref, layer, 0, 4096));
//
// Errors: kNotFound (unknown manifest/blob), kPermissionDenied (auth refused),
// kUnavailable (registry down after retries, or cancelled transfers), kDataLoss
// (digest mismatch, malformed manifest, wrong Content-Range), kInvalidArgument.
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_REGISTRY_REGISTRY_CLIENT_H_
#define CLIP_REGISTRY_REGISTRY_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cancellation.h"
#include "common/digest.h"
#include "common/http_client.h"
#include "registry/auth.h"
#include "registry/endpoint.h"
#include "registry/manifest.h"
#include "registry/reference.h"

namespace clip {

struct RetryPolicy {
  int max_attempts = 5;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  absl::Duration max_retry_after = absl::Seconds(60);
};

class RegistryClient {
 public:
  struct Options {
    std::shared_ptr<const HostResolver> hosts;           // default: DefaultHosts
    std::shared_ptr<const CredentialStore> credentials;  // default: anonymous
    RetryPolicy retry;
    HttpOptions http;
    // Cancel() aborts every request in flight, ends every backoff at once and fails new
    // requests with kCancelled (shutdown).
    std::shared_ptr<Cancellation> cancel;
  };

  explicit RegistryClient(Options options);

  // The manifest or index `ref` names, verified against ref's digest when it has one.
  absl::StatusOr<Manifest> FetchManifest(const Reference& ref) const;
  // Like FetchManifest, but an index resolves to the manifest for `platform`; `index`
  // (optional) receives the index when `ref` named one (else it is left alone).
  absl::StatusOr<Manifest> Resolve(const Reference& ref, const Platform& platform,
                                   std::optional<Manifest>* index = nullptr) const;

  absl::StatusOr<uint64_t> BlobSize(const Reference& repo, const Digest& digest) const;
  // Streams the whole blob to `sink`, resuming with Range after a broken transfer, and
  // verifies the digest at the end (kDataLoss: the sink has seen bad bytes).
  absl::Status FetchBlob(const Reference& repo, const Digest& digest,
                         const std::function<absl::Status(absl::string_view)>& sink) const;
  // Bytes [offset, offset + length) of a blob.
  absl::StatusOr<std::string> ReadBlobRange(const Reference& repo, const Digest& digest,
                                            uint64_t offset, uint64_t length) const;

  // Uploads a blob unless present; tries a cross-repository mount from `mount_from`.
  absl::Status PushBlob(const Reference& repo, const Digest& digest, const std::string& bytes,
                        const std::optional<Reference>& mount_from = std::nullopt) const;
  // Uploads a manifest under `tag` (or its digest when empty); returns its digest.
  absl::StatusOr<Digest> PushManifest(const Reference& repo, const std::string& tag,
                                      const std::string& media_type,
                                      const std::string& bytes) const;
  // Manifests whose subject is `subject` (referrers API, else the sha256-<hex> tag).
  absl::StatusOr<std::vector<Descriptor>> Referrers(const Reference& repo, const Digest& subject,
                                                    const std::string& artifact_type = "") const;
  // Forgets every authorization kept from earlier requests (Basic headers hold the
  // credentials themselves): when credentials are withdrawn (PulledCredentials::Drop).
  void ForgetAuthorizations() const { tokens_.Clear(); }

 private:
  struct Call {
    std::string method = "GET";
    std::string path;  // after the endpoint's path prefix, e.g. "/<name>/manifests/<ref>"
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::function<absl::Status(absl::string_view)> sink;
    // SendTo retries transport errors and 429/5xx itself; false: one attempt, whose
    // failure (transport error or 429/5xx response) comes back to a caller that retries
    // with its own state (a sink that has seen bytes, a Range to resume from).
    bool retry = true;
    std::string absolute_url;  // when set, used instead of endpoint + path (upload URLs)
  };

  // Sends `call` to the endpoints EndpointsFor(cap) picks, in order: one that fails
  // (kUnavailable, 429/5xx) or lacks the content (404) hands over to the next; the
  // last one's answer is the answer. `used`: the endpoint that answered.
  absl::StatusOr<HttpResponse> Send(const Reference& repo, Capability cap,
                                    const std::string& actions, Call call,
                                    RegistryEndpoint* used = nullptr) const;
  absl::StatusOr<HttpResponse> SendTo(const RegistryEndpoint& ep, const Reference& repo,
                                      const std::string& actions, const Call& call) const;
  absl::StatusOr<std::string> Authorize(const RegistryEndpoint& ep, const Reference& repo,
                                        const std::string& actions,
                                        const HttpResponse& challenge) const;
  // One attempt's outcome for Retrying: `status` is the result (OK: done); `retry` asks
  // for another attempt after the backoff, or after `retry_after` (a Retry-After header).
  struct Step {
    absl::Status status;
    bool retry = false;
    std::optional<std::string> retry_after = {};
  };
  // The one retry loop: runs `step(attempt)` until it needs no retry, the policy's
  // attempts are spent (kUnavailable, "... (after N attempts)") or the client is
  // cancelled (kCancelled), sleeping the backoff between attempts.
  absl::Status Retrying(const std::function<Step(int attempt)>& step) const;
  absl::Duration Backoff(int attempt, const std::optional<std::string>& retry_after) const;
  // Sleeps `d` unless cancelled first (then wakes at once); false when cancelled.
  bool Sleep(absl::Duration d) const;
  bool cancelled() const { return options_.cancel && options_.cancel->cancelled(); }

  Options options_;
  HttpClient http_;
  mutable TokenCache tokens_;  // authorization header values by "host|scope"
};

// An image as a puller sees it: `text` parsed, resolved for `platform` ("os/arch[/variant]",
// empty: the host's; a multi-arch index resolves to that platform's manifest), parsed.
struct ResolvedImage {
  Reference ref;
  Platform platform;
  Manifest manifest;
  ImageManifest image;
  std::optional<Manifest> index;  // the image index `ref` names, if it names one
};
absl::StatusOr<ResolvedImage> ResolveImage(const RegistryClient& client, absl::string_view text,
                                           absl::string_view platform);

// A whole (small) blob in memory: manifests' configs, clip indexes. Verified like FetchBlob.
absl::StatusOr<std::string> FetchBlobToString(const RegistryClient& client, const Reference& repo,
                                              const Digest& digest);

// Maps a final HTTP response to a Status (2xx -> OK).
absl::Status StatusFromResponse(const HttpResponse& response, absl::string_view what);

}  // namespace clip

#endif  // CLIP_REGISTRY_REGISTRY_CLIENT_H_
