// DockerConfigCredentials: registry credentials the way docker and containerd's CRI
// users keep them in ~/.docker/config.json: `auths` (base64 user:password, or an
// identity token), a default `credsStore`, and per-host `credHelpers`, the latter two
// answered by running `docker-credential-<name> get` (the docker credential-helper
// protocol: server URL on stdin, JSON {Username, Secret} on stdout).
//
//   DockerConfigCredentials creds(DockerConfigCredentials::DefaultPath());
//   CLIP_ASSIGN_OR_RETURN(std::optional<Credential> c, creds.Get("ghcr.io"));
//
// Lookup order for a host: credHelpers[host], then auths[host] (keys may be URLs like
// "https://index.docker.io/v1/"), then credsStore. The file is re-read when it
// changes, so `docker login` takes effect without a restart. Secrets never appear in
// errors or logs.
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_REGISTRY_DOCKER_CONFIG_H_
#define CLIP_REGISTRY_DOCKER_CONFIG_H_

#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "registry/auth.h"

namespace clip {

class DockerConfigCredentials final : public CredentialStore {
 public:
  // $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json.
  static std::string DefaultPath();

  // `helper_dir`, when set, is where docker-credential-* helpers are looked up
  // (default: $PATH).
  explicit DockerConfigCredentials(std::string path, std::string helper_dir = "")
      : path_(std::move(path)), helper_dir_(std::move(helper_dir)) {}

  absl::StatusOr<std::optional<Credential>> Get(const std::string& host) const override;

 private:
  absl::StatusOr<std::optional<Credential>> FromHelper(const std::string& helper,
                                                       const std::string& host) const;
  std::string path_;
  std::string helper_dir_;
};

}  // namespace clip

#endif  // CLIP_REGISTRY_DOCKER_CONFIG_H_
