#include "registry/endpoint.h"

#include "registry/reference.h"

namespace clip {

std::vector<RegistryEndpoint> DefaultHosts::Endpoints(const std::string& domain) const {
  RegistryEndpoint ep;
  ep.host = domain == Reference::kDockerHub ? "registry-1.docker.io" : domain;
  if (plain_http_.count(domain)) ep.scheme = "http";
  return {ep};
}

}  // namespace clip
