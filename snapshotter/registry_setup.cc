#include "snapshotter/registry_setup.h"

#include <set>

#include "registry/docker_config.h"
#include "registry/hosts_config.h"

namespace clip {

RegistryClient::Options RegistryOptionsFrom(const DaemonConfig& config) {
  RegistryClient::Options ro;
  if (!config.hosts_dir.empty()) {
    ro.hosts = std::make_shared<HostsDirectory>(config.hosts_dir);
  } else {
    ro.hosts = std::make_shared<DefaultHosts>(
        std::set<std::string>(config.plain_http.begin(), config.plain_http.end()));
  }
  ro.credentials = std::make_shared<DockerConfigCredentials>(
      config.docker_config.empty() ? DockerConfigCredentials::DefaultPath() : config.docker_config);
  return ro;
}

}  // namespace clip
