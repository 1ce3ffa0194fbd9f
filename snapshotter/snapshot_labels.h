// The snapshot labels clip reads and writes, in one place: containerd's target
// reference, the CRI plugin's remote-snapshot labels (containerd forwards every
// `containerd.io/snapshot/` label to a proxy snapshotter and back), and clip's own
// marker of a lazily mounted layer. `clipctl pull` sets the CRI ones itself, so a
// pull through ctr or clipctl looks to the snapshotter like a pull by the CRI plugin.
//
// Thread safety: constants only.
#ifndef CLIP_SNAPSHOTTER_SNAPSHOT_LABELS_H_
#define CLIP_SNAPSHOTTER_SNAPSHOT_LABELS_H_

#include <cstddef>

namespace clip {

// The committed name a Prepare asks for: present when a layer may be remote.
inline constexpr char kSnapshotRefLabel[] = "containerd.io/snapshot.ref";
// Set by the CRI plugin (and clipctl pull) on each layer's Prepare.
inline constexpr char kImageRefLabel[] = "containerd.io/snapshot/cri.image-ref";
inline constexpr char kLayerDigestLabel[] = "containerd.io/snapshot/cri.layer-digest";
inline constexpr char kManifestDigestLabel[] = "containerd.io/snapshot/cri.manifest-digest";
inline constexpr char kImageLayersLabel[] = "containerd.io/snapshot/cri.image-layers";
// Set by `clipctl pull` from the bound image index it resolved the reference to: the
// clip index artifact that index binds to the manifest being unpacked. The daemon then
// skips fetching the index again (one round trip less) and still checks the artifact's
// subject; a puller is node-local and trusted like its cri.image-ref label.
inline constexpr char kBoundArtifactLabel[] = "containerd.io/snapshot/clip.bound-artifact";
// clip's mark on a snapshot mounted lazily (forwarded back by containerd).
inline constexpr char kRemoteLabel[] = "containerd.io/snapshot/clip.remote";
// containerd limits a label to 4096 bytes; the CRI plugin trims the layer list to this.
inline constexpr size_t kMaxLabelBytes = 4000;

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_SNAPSHOT_LABELS_H_
