// RemoteLayers: the lazy path of the snapshotter (RemoteLayerHook). For a layer that
// containerd asks for, it finds the layer's clip index - the local index store first
// (`<store>/<layer hex>`), then the registry: the OCI artifact whose subject is the
// image manifest (referrers API, or the `sha256-<hex>` tag fallback), artifactType
// kClipIndexArtifactType, one blob per layer annotated with kClipLayerAnnotation - and
// mounts the layer through FUSE, its bytes read lazily from the registry through the
// cache tiers. A fetched index is verified (its blob digest, then the index's own
// checksum and its layer digest) and kept in the local store.
//
// Labels read (as containerd's CRI plugin and `clipctl pull` set them):
// containerd.io/snapshot/cri.image-ref, cri.layer-digest, cri.manifest-digest.
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_SNAPSHOTTER_REMOTE_LAYERS_H_
#define CLIP_SNAPSHOTTER_REMOTE_LAYERS_H_

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "cache/span_store.h"
#include "cache/tiered_span_source.h"
#include "fs/fuse_server.h"
#include "registry/registry_blob_reader.h"
#include "registry/registry_client.h"
#include "snapshotter/overlay_snapshotter.h"

namespace clip {

inline constexpr char kClipIndexArtifactType[] = "application/vnd.clip.index.v1";
inline constexpr char kClipIndexMediaType[] = "application/vnd.clip.index.v1";
inline constexpr char kClipLayerAnnotation[] = "dev.clip.layer.digest";
inline constexpr char kImageRefLabel[] = "containerd.io/snapshot/cri.image-ref";
inline constexpr char kLayerDigestLabel[] = "containerd.io/snapshot/cri.layer-digest";
inline constexpr char kManifestDigestLabel[] = "containerd.io/snapshot/cri.manifest-digest";

class RemoteLayers final : public RemoteLayerHook {
 public:
  struct Options {
    std::string index_store;           // directory of indexes by layer digest hex
    const RegistryClient* registry = nullptr;
    FuseServer* fuse = nullptr;
    CacheTiers tiers;                  // memory/disk/remote caches, shared by all layers
  };
  explicit RemoteLayers(Options options);
  ~RemoteLayers() override;  // unmounts what it mounted

  absl::StatusOr<bool> Mount(const Labels& labels, const std::string& mountpoint) override;
  absl::Status Unmount(const std::string& mountpoint) override;
  size_t mounted() const;

  // The index of `layer`, from the store or the registry; nullopt when there is none.
  absl::StatusOr<std::optional<std::shared_ptr<const index::v1::LayerIndex>>> FindIndex(
      const Reference& image, const Digest& layer, const std::optional<Digest>& manifest);

 private:
  struct Layer {
    FuseServer::MountId id;
    std::unique_ptr<RegistryBlobReader> blob;
  };
  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Layer> layers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_REMOTE_LAYERS_H_
