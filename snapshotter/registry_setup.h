// RegistryOptionsFrom: the registry client settings of a DaemonConfig - containerd's
// hosts.toml directory (mirrors, CAs, client certificates) or the plain-HTTP host list,
// and docker's config.json credentials (auths, credsStore, credHelpers). The daemon and
// `clipctl index/pull` both use it, so they reach registries the same way.
//
// Thread safety: a pure function.
#ifndef CLIP_SNAPSHOTTER_REGISTRY_SETUP_H_
#define CLIP_SNAPSHOTTER_REGISTRY_SETUP_H_

#include "registry/registry_client.h"
#include "snapshotter/daemon_config.h"

namespace clip {

RegistryClient::Options RegistryOptionsFrom(const DaemonConfig& config);

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_REGISTRY_SETUP_H_
