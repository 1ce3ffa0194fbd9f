// PulledCredentials: registry credentials that arrived with an image pull (kubelet hands
// the credentials of imagePullSecrets and credential-provider plugins to each CRI
// PullImage; snapshotter/cri_image_proxy.h takes them from there), kept in memory only,
// by registry host, for the lazy reads of the images pulled with them, and dropped when
// the last of those images is removed. They are never written to a file, and never
// logged. Get falls back to `fallback` (the node's docker config) for other hosts.
//
// A pull's credential counts from the moment the pull starts (containerd mounts the
// image's layers, lazily, while it pulls), is forgotten if the pull fails, and otherwise
// stays with the image (its name and the id the pull answered) until RemoveImage. For a
// host, the newest pull's credential wins (rotated secrets replace old ones); while a
// pull with wrong credentials is in flight, it is the newest.
//
//   auto pulled = std::make_shared<PulledCredentials>(docker_config);
//   uint64_t pull = pulled->Pulling("registry.example.com", "registry.example.com/app:v1", c);
//   pulled->Pulled(pull, /*ok=*/true, "sha256:...");  // its image id
//   pulled->Drop("sha256:...");                        // RemoveImage by id or name
//
// A daemon restart keeps them only through Serialize/Restore, handed over in memory (a
// sealed memfd in the fd store; snapshotter/daemon.cc). Serialized form, version 1:
// `clip-pulled-credentials 1\n`, the number of images, then per image `host`, `username`,
// `password`, `identity_token`, `registry_token`, then its names, each a netstring (`<decimal
// length>:<bytes>,`), the names preceded by their count as a netstring; images oldest first.
//
// Thread safety: safe for concurrent use. `on_change` (set once, before use) is called
// after every change with the lock released, possibly concurrently.
#ifndef CLIP_REGISTRY_PULLED_CREDENTIALS_H_
#define CLIP_REGISTRY_PULLED_CREDENTIALS_H_

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "registry/auth.h"

namespace clip {

class PulledCredentials final : public CredentialStore {
 public:
  explicit PulledCredentials(std::shared_ptr<const CredentialStore> fallback = nullptr)
      : fallback_(std::move(fallback)) {}

  // Called after each change (a pull started, ended, an image dropped, a restore);
  // `forgot`: a credential may be gone (a failed pull, a drop), so whatever was derived
  // from it (cached authorizations) should go too.
  void set_on_change(std::function<void(bool forgot)> on_change) {
    on_change_ = std::move(on_change);
  }

  // A pull of `image` from `host` with `credential` starts; the returned number ends it.
  uint64_t Pulling(const std::string& host, const std::string& image, Credential credential);
  // The pull ended: kept for `image_id` too when `ok`, forgotten otherwise.
  void Pulled(uint64_t pull, bool ok, const std::string& image_id);
  // Forgets the image `image` names (its name or its id); a host's credential goes with
  // its last image. True when something was forgotten.
  bool Drop(const std::string& image);
  // Hosts with a kept credential (tests, metrics).
  size_t hosts() const;

  absl::StatusOr<std::optional<Credential>> Get(const std::string& host) const override;

  // The images whose pull succeeded (one in flight ends with this process).
  std::string Serialize() const;
  // Takes what Serialize wrote (another process's) in addition to what is kept;
  // kDataLoss on anything else.
  absl::Status Restore(const std::string& serialized);

 private:
  struct Image {
    uint64_t pull = 0;  // 0 once the pull succeeded
    std::string host;
    Credential credential;
    std::set<std::string> names;  // its name and its id
  };
  void Changed(bool forgot) const {
    if (on_change_) on_change_(forgot);
  }

  const std::shared_ptr<const CredentialStore> fallback_;
  std::function<void(bool)> on_change_;
  mutable absl::Mutex mu_;
  uint64_t next_pull_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Image> images_ ABSL_GUARDED_BY(mu_);  // oldest first
};

}  // namespace clip

#endif  // CLIP_REGISTRY_PULLED_CREDENTIALS_H_
