// HostsDirectory: registry endpoints from containerd's hosts configuration
// (`<config_path>/<host>/hosts.toml`, as `ctr --hosts-dir` and the CRI plugin read it),
// so clip pulls through the same mirrors, CAs and client certificates as containerd.
//
//   # /etc/containerd/certs.d/docker.io/hosts.toml
//   server = "https://registry-1.docker.io"
//   [host."https://mirror.internal:5000"]
//     capabilities = ["pull", "resolve"]
//     ca = "/etc/certs/mirror-ca.pem"
//
// Endpoints come in file order (the [host] tables), then `server` (default
// https://<host>, or registry-1.docker.io for docker.io). A `server` or host URL with
// the http scheme means plain HTTP. Keys read: server, ca (string or list; the first
// file is used), skip_verify, client (a path, or [cert, key] pairs), capabilities,
// override_path. A directory `_default` applies to hosts without their own.
//
// Thread safety: safe for concurrent use (files are read on each call).
#ifndef CLIP_REGISTRY_HOSTS_CONFIG_H_
#define CLIP_REGISTRY_HOSTS_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "registry/registry_client.h"

namespace clip {

// Parses one hosts.toml for registry `domain`.
absl::StatusOr<std::vector<RegistryEndpoint>> ParseHostsToml(const std::string& domain,
                                                             const std::string& toml_text,
                                                             const std::string& source_name);

class HostsDirectory final : public HostResolver {
 public:
  explicit HostsDirectory(std::string config_path) : config_path_(std::move(config_path)) {}
  // Falls back to the default endpoint when the file is missing; a malformed file is
  // reported on stderr once per call and ignored (the default endpoint is used).
  std::vector<RegistryEndpoint> Endpoints(const std::string& domain) const override;
  absl::StatusOr<std::vector<RegistryEndpoint>> Load(const std::string& domain) const;

 private:
  std::string config_path_;
};

}  // namespace clip

#endif  // CLIP_REGISTRY_HOSTS_CONFIG_H_
