// HostsDirectory: registry endpoints from containerd's hosts configuration
// (`<config_path>/<host>/hosts.toml`, as `ctr --hosts-dir` and the CRI plugin read it),
// so clip pulls and pushes through the same mirrors, CAs and client certificates as
// containerd.
//
//   # /etc/containerd/certs.d/docker.io/hosts.toml
//   server = "https://registry-1.docker.io"
//   [host."https://mirror.internal:5000"]
//     capabilities = ["pull", "resolve"]
//     ca = "/etc/certs/mirror-ca.pem"
//
// The semantics are containerd's (remotes/docker/config/hosts.go, 1.6): the endpoints
// are the [host] tables in file order, then the server, always, as the last one. Nothing
// is merged or deduplicated: a [host] equal to the server is two endpoints, each with
// its own capabilities, so `capabilities = ["pull", "resolve"]` on it still leaves the
// server to push to. The server's settings are the file's top-level keys (capabilities,
// ca, client, skip_verify, override_path). Without `server` it is the registry itself:
// https://<host> (registry-1.docker.io for docker.io), or for localhost and loopback
// addresses http with skip_verify, all capabilities. Capabilities absent or empty mean
// all three; an unknown one makes the file invalid. A URL without a scheme is https;
// /v2 is appended to its path unless override_path. Relative ca and client paths are in
// the file's directory. Which endpoints serve an operation is endpoint.h's
// EndpointsFor. Not supported: `header`, a ca list beyond its first file, Docker's
// *.crt/*.cert files in a directory without hosts.toml.
//
// The directory for a domain is the first that exists of <host>_<port>_ (for
// host:port), <host:port>, _default; a domain with none (or a directory without
// hosts.toml) gets the server alone.
//
// Thread safety: safe for concurrent use (files are read on each call).
#ifndef CLIP_REGISTRY_HOSTS_CONFIG_H_
#define CLIP_REGISTRY_HOSTS_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "registry/registry_client.h"

namespace clip {

// Parses one hosts.toml for registry `domain`. `path` names the file in errors, and
// relative ca and client paths are taken from its directory (none: left relative).
absl::StatusOr<std::vector<RegistryEndpoint>> ParseHostsToml(const std::string& domain,
                                                             const std::string& toml_text,
                                                             const std::string& path);

class HostsDirectory final : public HostResolver {
 public:
  explicit HostsDirectory(std::string config_path) : config_path_(std::move(config_path)) {}
  // Falls back to the default server when there is no file; a malformed file is
  // reported on stderr once per call and ignored (the default server is used, as
  // containerd does).
  std::vector<RegistryEndpoint> Endpoints(const std::string& domain) const override;
  absl::StatusOr<std::vector<RegistryEndpoint>> Load(const std::string& domain) const;

 private:
  std::string config_path_;
};

}  // namespace clip

#endif  // CLIP_REGISTRY_HOSTS_CONFIG_H_
