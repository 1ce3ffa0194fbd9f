// Where a registry domain is reached: the server itself or its mirrors, each an
// endpoint with its scheme, path prefix, capabilities and TLS settings. HostResolver
// says which endpoints serve a domain, in the order of the configuration; DefaultHosts
// is the resolver without configuration (hosts_config.h reads containerd's hosts.toml).
// EndpointsFor picks, for one operation, the endpoints a request goes to: the one
// place that filters them, with containerd's rules (remotes/docker, 1.6):
//
//   server = "http://reg:5000"            # [A(pull, resolve), server(all)]
//   [host."http://reg:5000"]
//     capabilities = ["pull", "resolve"]
//   EndpointsFor(eps, Capability::kPull)  -> A, server   (tried in order)
//   EndpointsFor(eps, Capability::kPush)  -> server      (one: no fallback)
//
// Thread safety: resolvers are safe for concurrent use.
#ifndef CLIP_REGISTRY_ENDPOINT_H_
#define CLIP_REGISTRY_ENDPOINT_H_

#include <set>
#include <string>
#include <vector>

#include "common/http_client.h"

namespace clip {

// What a request does, named as hosts.toml's `capabilities` name it.
enum class Capability {
  kPull,     // blobs, and manifests by digest
  kResolve,  // a tag to its manifest (containerd asks pull as well)
  kPush,     // uploads
};

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

// Which endpoints serve a registry domain, in the configuration's order (hosts.toml:
// the [host] tables in file order, then the server). Not filtered and not
// deduplicated: that is EndpointsFor's.
class HostResolver {
 public:
  virtual ~HostResolver() = default;
  virtual std::vector<RegistryEndpoint> Endpoints(const std::string& domain) const = 0;
};

// The endpoints a request for `op` goes to, in the order to try them, as containerd
// chooses hosts: for kPull, every endpoint with pull; for kResolve, every endpoint with
// both resolve and pull (containerd resolves a tag only where it may also pull); for
// kPush, the first endpoint with push alone (containerd pushes to one host and falls
// back to none: a blob is checked for and uploaded at the same registry). Empty: no
// endpoint can do it.
std::vector<RegistryEndpoint> EndpointsFor(const std::vector<RegistryEndpoint>& endpoints,
                                           Capability op);

// Capability's hosts.toml name ("pull", "resolve", "push").
const char* CapabilityName(Capability op);

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
