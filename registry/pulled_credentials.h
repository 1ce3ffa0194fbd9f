// PulledCredentials: registry credentials that arrived with an image pull (kubelet hands
// the credentials of imagePullSecrets and credential-provider plugins to each CRI
// PullImage; snapshotter/cri_image_proxy.h takes them from there), kept in memory only,
// by registry host, for the lazy reads of the images pulled with them, and dropped when
// the last of those images is removed. They are never written anywhere, and never
// logged. Get falls back to `fallback` (the node's docker config) for other hosts.
//
//   auto pulled = std::make_shared<PulledCredentials>(docker_config);
//   pulled->Keep("registry.example.com", "registry.example.com/app:v1", "sha256:...", cred);
//   pulled->Drop("sha256:...");  // RemoveImage by id or name
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_REGISTRY_PULLED_CREDENTIALS_H_
#define CLIP_REGISTRY_PULLED_CREDENTIALS_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "registry/auth.h"

namespace clip {

class PulledCredentials final : public CredentialStore {
 public:
  explicit PulledCredentials(std::shared_ptr<const CredentialStore> fallback = nullptr)
      : fallback_(std::move(fallback)) {}

  // The credential `image` (its name, and the id the pull answered) was pulled with from
  // `host`. The newest pull's credential wins for a host.
  void Keep(const std::string& host, const std::string& image, const std::string& image_id,
            Credential credential);
  // Forgets the image `image` names (its name or its id); a host's credential goes with
  // its last image.
  void Drop(const std::string& image);
  // Hosts with a kept credential (tests, metrics).
  size_t hosts() const;

  absl::StatusOr<std::optional<Credential>> Get(const std::string& host) const override;

 private:
  struct Image {
    std::string host;
    std::set<std::string> names;  // its name and its id
  };
  const std::shared_ptr<const CredentialStore> fallback_;
  mutable absl::Mutex mu_;
  std::map<std::string, Credential> by_host_ ABSL_GUARDED_BY(mu_);
  std::vector<Image> images_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clip

#endif  // CLIP_REGISTRY_PULLED_CREDENTIALS_H_
