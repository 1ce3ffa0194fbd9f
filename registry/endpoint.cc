#include "registry/endpoint.h"

#include "registry/reference.h"

namespace clip {

std::vector<RegistryEndpoint> EndpointsFor(const std::vector<RegistryEndpoint>& endpoints,
                                           Capability op) {
  std::vector<RegistryEndpoint> out;
  for (const RegistryEndpoint& ep : endpoints) {
    const bool capable = op == Capability::kPull      ? ep.pull
                         : op == Capability::kResolve ? ep.resolve && ep.pull
                                                      : ep.push;
    if (!capable) continue;
    out.push_back(ep);
    if (op == Capability::kPush) break;
  }
  return out;
}

const char* CapabilityName(Capability op) {
  switch (op) {
    case Capability::kPull:
      return "pull";
    case Capability::kResolve:
      return "resolve";
    case Capability::kPush:
      return "push";
  }
  return "?";
}

std::vector<RegistryEndpoint> DefaultHosts::Endpoints(const std::string& domain) const {
  RegistryEndpoint ep;
  ep.host = domain == Reference::kDockerHub ? "registry-1.docker.io" : domain;
  if (plain_http_.count(domain)) ep.scheme = "http";
  return {ep};
}

}  // namespace clip
