// LazyPull: the pull `ctr image pull` cannot do. Through containerd's own gRPC API on
// its socket (namespace from the caller) it
//   1. resolves the image in its registry (the platform's manifest, default the host's),
//   2. takes a lease (expiring by itself if the puller dies) so nothing is collected
//      half-way,
//   3. prepares the layer chain in the snapshotter with the remote-snapshot labels
//      (containerd.io/snapshot.ref = chain ID, cri.image-ref/layer-digest/
//      manifest-digest/image-layers): clip mounts every layer that has a clip index and
//      answers ALREADY_EXISTS; a layer without one is downloaded into the content store
//      and extracted with the diff service, as containerd's unpacker does,
//   4. stores the manifest and config in the content store with the garbage-collection
//      labels containerd's own pull sets (manifest -> config and layers, config -> the
//      top snapshot), and creates or updates the image record,
//   5. releases the lease.
// Afterwards `ctr run --snapshotter clip IMAGE ...` finds the image unpacked, and
// `ctr image ls/rm` behave as after an ordinary pull. The image record's target is the
// platform manifest (not a multi-arch index).
//
// Thread safety: a function; concurrent pulls of different images are fine.
#ifndef CLIP_CMD_LAZY_PULL_H_
#define CLIP_CMD_LAZY_PULL_H_

#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "registry/registry_client.h"

namespace clip {

struct LazyPullOptions {
  std::string image;
  std::string platform;  // empty: the host's
  std::string containerd_address = "/run/containerd/containerd.sock";
  std::string ns = "default";
  std::string snapshotter = "clip";
  absl::Duration timeout = absl::Minutes(30);  // for each containerd call
};

struct LazyPullReport {
  Digest manifest;
  int layers = 0;
  int lazy = 0;                   // mounted by clip from an index
  int extracted = 0;              // downloaded and unpacked (no index)
  int present = 0;                // already there from an earlier pull
  uint64_t downloaded_bytes = 0;  // layer bytes this client fetched
};

absl::StatusOr<LazyPullReport> LazyPull(const LazyPullOptions& options,
                                        const RegistryClient& registry, std::ostream& log);

}  // namespace clip

#endif  // CLIP_CMD_LAZY_PULL_H_
