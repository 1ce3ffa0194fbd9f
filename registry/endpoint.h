// Where a registry domain is reached: the server itself or its mirrors, each an
// endpoint with its scheme, path prefix, capabilities and TLS settings. HostResolver
// says which endpoints serve a domain, in the order to try them; DefaultHosts is the
// resolver without configuration (hosts_config.h reads containerd's hosts.toml).
//
// Thread safety: resolvers are safe for concurrent use.
#ifndef CLIP_REGISTRY_ENDPOINT_H_
#define CLIP_REGISTRY_ENDPOINT_H_

#include <set>
#include <string>
#include <vector>

#include "common/http_client.h"

namespace clip {

// One way to reach a registry: the server itself or a mirror.
struct RegistryEndpoint {
  std::string scheme = "https";
  std::string host;                 // host[:port]
  std::string path_prefix = "/v2";  // containerd's override_path puts the full path here
  bool pull = true;
  bool resolve = true;
  bool push = true;
  TlsOptions tls;
};

// Which endpoints serve a registry domain, in the order to try them.
class HostResolver {
 public:
  virtual ~HostResolver() = default;
  virtual std::vector<RegistryEndpoint> Endpoints(const std::string& domain) const = 0;
};

// The default: https://<domain> (docker.io is registry-1.docker.io); plain HTTP only
// for the domains listed.
class DefaultHosts final : public HostResolver {
 public:
  explicit DefaultHosts(std::set<std::string> plain_http = {})
      : plain_http_(std::move(plain_http)) {}
  std::vector<RegistryEndpoint> Endpoints(const std::string& domain) const override;

 private:
  std::set<std::string> plain_http_;
};

}  // namespace clip

#endif  // CLIP_REGISTRY_ENDPOINT_H_
