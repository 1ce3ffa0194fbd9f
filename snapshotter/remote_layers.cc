#include "snapshotter/remote_layers.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "snapshotter/snapshot_labels.h"

namespace clip {

absl::StatusOr<bool> RemoteLayers::Mount(const Labels& labels, const std::string& mountpoint) {
  auto image_it = labels.find(kImageRefLabel);
  auto layer_it = labels.find(kLayerDigestLabel);
  if (image_it == labels.end() || layer_it == labels.end()) {
    auto ref = labels.find(kSnapshotRefLabel);
    Log(LogLevel::kInfo, "remote",
        absl::StrCat(
            "layer ", ref == labels.end() ? "?" : ref->second,
            " is not lazy: containerd sent no image/layer labels (", kImageRefLabel, ", ",
            kLayerDigestLabel,
            "; containerd 1.6/1.7: CRI needs disable_snapshot_annotations = false, ctr needs "
            "clipctl pull; 2.x: the proxy plugin needs exports."
            "enable_remote_snapshot_annotations = \"true\" - deploy/"
            "containerd-config-v3.toml)"));
    return false;
  }
  LayerRef ref;
  CLIP_ASSIGN_OR_RETURN(ref.image, Reference::Parse(image_it->second));
  CLIP_ASSIGN_OR_RETURN(ref.layer, Digest::Parse(layer_it->second));
  if (auto m = labels.find(kManifestDigestLabel); m != labels.end()) {
    CLIP_ASSIGN_OR_RETURN(ref.manifest, Digest::Parse(m->second));
  }
  // A snapshot mounted lazily before comes back with clip's mark among its labels.
  ref.restoring = labels.count(kRemoteLabel) > 0;
  if (auto a = labels.find(kBoundArtifactLabel); a != labels.end() && ref.manifest) {
    CLIP_ASSIGN_OR_RETURN(ref.bound_artifact, Digest::Parse(a->second));
  }
  return LazyLayers::Mount(ref, mountpoint);
}

std::optional<SnapshotUsage> RemoteLayers::Usage(const std::string& mountpoint) const {
  std::optional<LayerUsage> layer = LazyLayers::Usage(mountpoint);
  if (!layer) return std::nullopt;
  SnapshotUsage usage;
  usage.inodes = layer->inodes;
  usage.size = layer->index_bytes + layer->span_bytes;
  if (!layer->tree.empty()) {  // the layer's files, as overlayfs's unpack would hold them
    if (absl::StatusOr<SnapshotUsage> t = DiskUsage(layer->tree); t.ok()) usage.size += t->size;
  }
  return usage;
}

}  // namespace clip
