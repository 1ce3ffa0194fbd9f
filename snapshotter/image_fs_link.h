// The image filesystem path containerd 1.6's CRI plugin reports for clip.
//
// kubelet asks CRI's ImageFsInfo for the image filesystem and hands its mountpoint to
// cAdvisor, which stats it for image garbage collection and eviction. containerd 1.7+
// reports `proxy_plugins.clip.exports.root`; 1.6 ignores `exports` and reports
// `<containerd root>/io.containerd.snapshotter.v1.clip`, a path nothing creates. clip
// keeps a symlink there to its own root, so the stat lands on the filesystem that holds
// clip's snapshots and caches.
//
//   CLIP_RETURN_IF_ERROR(EnsureImageFsLink("/var/lib/containerd",
//   "/var/lib/containerd-clip-grpc"));
//
// What is there already: the right symlink is kept; a symlink elsewhere (an older
// root) is replaced; a real directory is left alone (containerd or an operator made
// it; it stats fine). A missing containerd root is created (0711, as containerd does).
//
// Thread safety: a plain function over the filesystem; not for concurrent calls on the
// same paths.
#ifndef CLIP_SNAPSHOTTER_IMAGE_FS_LINK_H_
#define CLIP_SNAPSHOTTER_IMAGE_FS_LINK_H_

#include <string>

#include "absl/status/statusor.h"

namespace clip {

inline constexpr char kImageFsDirName[] = "io.containerd.snapshotter.v1.clip";

// Makes `<containerd_root>/io.containerd.snapshotter.v1.clip` resolve to `root` (an
// absolute path). Returns the path it maintains.
absl::StatusOr<std::string> EnsureImageFsLink(const std::string& containerd_root,
                                              const std::string& root);

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_IMAGE_FS_LINK_H_
