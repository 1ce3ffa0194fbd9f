// The clip index artifact manifest: how clip indexes of an image manifest's layers are
// described in a registry (written by IndexArtifactManifest, read back by
// ParseIndexArtifact; publishing and discovery are in index_artifact.h):
//
//   {"schemaVersion":2, "mediaType":"application/vnd.oci.image.manifest.v1+json",
//    "artifactType":"application/vnd.clip.index.v1",
//    "config": <the OCI empty descriptor, "{}">,
//    "layers": [ {"mediaType":"application/vnd.clip.index.v1", "digest":<index blob>,
//                 "size":N, "annotations":{"dev.clip.layer.digest":<layer digest>}}, ...,
//                then, optionally, one per layer with an access profile (index/FORMAT.md):
//                {"mediaType":"application/vnd.clip.profile.v1", ... the same annotation}],
//    "subject": <the image manifest's descriptor>}
//
// Profiles come after every index: a reader that predates them and takes the first
// entry per layer still finds the index. What a registry returns is untrusted input:
// ParseIndexArtifact takes any bytes (fuzzed with the binding parser).
//
// Thread safety: plain functions and value types.
#ifndef CLIP_REGISTRY_INDEX_ARTIFACT_MANIFEST_H_
#define CLIP_REGISTRY_INDEX_ARTIFACT_MANIFEST_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/digest.h"
#include "registry/manifest.h"

namespace clip {

struct LayerIndexBlob {
  Digest layer;              // the image layer the index describes
  std::string encoded;       // the encoded clip index (index/FORMAT.md)
  std::string profile = {};  // its encoded access profile; empty: none
};

// The artifact manifest's JSON for `indexes` of the manifest `subject`.
std::string IndexArtifactManifest(const Descriptor& subject,
                                  const std::vector<LayerIndexBlob>& indexes);

// A layer's published index blob (and access profile blob).
struct PublishedIndex {
  Digest layer;
  Digest blob;
  std::optional<Digest> profile = {};  // the layer's access profile blob, if published with it
};

// A clip index artifact manifest read back: its type, subject and indexes (the first
// per layer, with the profile published beside it). kDataLoss when it has no layers.
struct IndexArtifact {
  std::string artifact_type;
  std::optional<Digest> subject;
  std::vector<PublishedIndex> indexes;
};
absl::StatusOr<IndexArtifact> ParseIndexArtifact(absl::string_view bytes);

}  // namespace clip

#endif  // CLIP_REGISTRY_INDEX_ARTIFACT_MANIFEST_H_
