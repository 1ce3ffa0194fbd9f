// RemoteLayers: the lazy path of the snapshotter (RemoteLayerHook) - containerd's side
// of lazy/lazy_layers.h. It reads the layer a snapshot is from containerd's labels
// (as its CRI plugin and `clipctl pull` set them: containerd.io/snapshot/cri.image-ref,
// cri.layer-digest, cri.manifest-digest; clip's own mark of a snapshot mounted lazily
// before; the pull's binding) and hands it to LazyLayers, whose other calls it offers
// as they are (tests, metrics).
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_SNAPSHOTTER_REMOTE_LAYERS_H_
#define CLIP_SNAPSHOTTER_REMOTE_LAYERS_H_

#include <optional>
#include <string>

#include "lazy/lazy_layers.h"
#include "snapshotter/overlay_snapshotter.h"

namespace clip {

class RemoteLayers final : public LazyLayers, public RemoteLayerHook {
 public:
  using LazyLayers::LazyLayers;

  // false (with a log line) when containerd sent no image/layer labels.
  absl::StatusOr<bool> Mount(const Labels& labels, const std::string& mountpoint) override;
  absl::Status Unmount(const std::string& mountpoint) override {
    return LazyLayers::Unmount(mountpoint);
  }
  // size = the index file + the layer's spans in the disk cache, or its tree on disk.
  std::optional<SnapshotUsage> Usage(const std::string& mountpoint) const override;
  std::optional<std::string> LocalTree(const std::string& mountpoint) const override {
    return LazyLayers::LocalTree(mountpoint);
  }
};

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_REMOTE_LAYERS_H_
