// Image binding: an OCI image index that ties each of an image's manifests to the clip
// index artifact made for it, so a chain of digests from the reference a user pulls
// reaches every clip index (in the spirit of SOCI's index manifest v2).
//
//   {"schemaVersion":2, "mediaType":"application/vnd.oci.image.index.v1+json",
//    "manifests":[
//      {"mediaType":"application/vnd.oci.image.manifest.v1+json",
//       "artifactType":"application/vnd.clip.index.v1",          <- no "platform"
//       "digest":<clip index artifact manifest>, "size":N,
//       "annotations":{"dev.clip.index.manifest":<the image manifest it indexes>}},
//      ... one per indexed platform manifest, listed first ...,
//      <the image's own manifests, unchanged (same digests, platforms, annotations)>],
//    ...the image index's other fields, unchanged}
//
// Runtimes without clip pull and run it exactly like the image: an entry without a
// `platform` is never selected as an image (verified with containerd 1.6.20 and 2.1.9;
// given a platform, both pick the artifact and fail). A clip node trusts the artifact
// an entry names only for the manifest its annotation names, only when this index also
// lists that manifest, and only when the artifact's own `subject` is that manifest.
//
// ParseImageBinding refuses (kDataLoss) a binding that is not self-consistent: an
// artifact entry with a platform, without the annotation, naming a manifest the index
// does not list, or a second artifact for one manifest. An image index without clip
// entries parses as a binding with no artifacts.
//
//   CLIP_ASSIGN_OR_RETURN(std::string bound, BindImageIndex(index_json, {{m, artifact}}));
//   CLIP_ASSIGN_OR_RETURN(ImageBinding b, ParseImageBinding(bound));
//   std::optional<Descriptor> a = b.ArtifactFor(manifest_digest);
//
// Thread safety: plain functions and a value type.
#ifndef CLIP_REGISTRY_IMAGE_BINDING_H_
#define CLIP_REGISTRY_IMAGE_BINDING_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/digest.h"
#include "registry/manifest.h"

namespace clip {

// On an artifact entry of a bound index: the digest of the image manifest it indexes.
inline constexpr char kClipIndexedManifestAnnotation[] = "dev.clip.index.manifest";

struct BoundArtifact {
  Digest manifest;      // the image manifest the artifact indexes
  Descriptor artifact;  // the clip index artifact manifest (its size and digest)
};

struct ImageBinding {
  std::vector<Descriptor> manifests;            // the image's own, in index order
  std::map<std::string, Descriptor> artifacts;  // by the indexed manifest's digest

  // The artifact bound to `manifest`; nullopt when this binding has none for it.
  std::optional<Descriptor> ArtifactFor(const Digest& manifest) const;
  // Whether the index lists `manifest` as one of the image's own.
  bool Lists(const Digest& manifest) const;
};

// The bound index for an image whose reference resolves to the image index
// `image_index` (its JSON, kept as it is but for the added entries; an earlier
// binding's entry is replaced for the manifests bound now and kept for the others, so
// each platform can be indexed and bound on its own). kInvalidArgument when an artifact
// is for a manifest the index does not list.
absl::StatusOr<std::string> BindImageIndex(absl::string_view image_index,
                                           const std::vector<BoundArtifact>& artifacts);

// The bound index for a single-manifest image: a new index listing `manifest` (its
// descriptor, with the platform of its config) and the artifacts.
absl::StatusOr<std::string> BindSingleManifest(const Descriptor& manifest,
                                               const std::vector<BoundArtifact>& artifacts);

absl::StatusOr<ImageBinding> ParseImageBinding(absl::string_view bytes);

}  // namespace clip

#endif  // CLIP_REGISTRY_IMAGE_BINDING_H_
