#include "lazy/index_trust.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "registry/clip_media_types.h"
#include "registry/image_binding.h"
#include "registry/manifest.h"

namespace clip {

absl::StatusOr<IndexTrust> ParseIndexTrust(absl::string_view text) {
  if (text == "bound") return IndexTrust::kBound;
  if (text == "fleet") return IndexTrust::kFleet;
  if (text == "referrers") return IndexTrust::kReferrers;
  return absl::InvalidArgumentError(absl::StrCat(
      "index_trust must be \"bound\", \"fleet\" or \"referrers\", not \"", text, "\""));
}

const char* IndexTrustName(IndexTrust trust) {
  switch (trust) {
    case IndexTrust::kBound:
      return "bound";
    case IndexTrust::kFleet:
      return "fleet";
    case IndexTrust::kReferrers:
      return "referrers";
  }
  return "?";
}

bool TrustsOrigin(IndexTrust trust, absl::string_view origin) {
  if (origin == kOriginBuilt || origin == kOriginRecorded) return true;
  if (trust == IndexTrust::kFleet) return origin == kOriginFleet;
  // "referrers" believes what it believed before bindings: anything stored.
  return trust == IndexTrust::kReferrers;
}

namespace {

Binding NotBound(std::string why) { return Binding{std::nullopt, std::move(why), "", {}}; }

Binding Refused(std::string reason, std::string why, std::optional<Digest> offered) {
  return Binding{std::nullopt, std::move(why), std::move(reason), std::move(offered)};
}

}  // namespace

absl::StatusOr<Binding> ResolveBinding(const RegistryClient& registry, const Reference& image,
                                       const Digest& manifest) {
  if (image.digest() == manifest) {
    return NotBound(
        "the reference names the platform manifest itself, which no binding can reach "
        "(pin the bound image index's digest)");
  }
  // The reference again: by digest it is verified, by tag it is what the tag names now.
  CLIP_ASSIGN_OR_RETURN(Manifest root, registry.FetchManifest(image));
  if (!IsIndex(root.media_type)) return NotBound("the image is a single manifest, not bound");
  absl::StatusOr<ImageBinding> binding = ParseImageBinding(root.bytes);
  if (!binding.ok()) {
    return Refused("invalid_binding",
                   absl::StrCat("the image index ", root.digest.ToString(),
                                " is not a valid binding: ", binding.status().message()),
                   root.digest);
  }
  if (binding->artifacts.empty()) return NotBound("the image index binds no clip index");
  if (!binding->Lists(manifest)) {
    return Refused(
        "tag_moved",
        absl::StrCat(image.ToString(), " now names ", root.digest.ToString(),
                     ", which does not list the manifest being unpacked (", manifest.ToString(),
                     image.digest() ? ")" : "): the tag moved since containerd resolved it"),
        root.digest);
  }
  std::optional<Descriptor> bound = binding->ArtifactFor(manifest);
  if (!bound) return NotBound("the binding has no clip index for this manifest");
  return CheckBoundArtifact(registry, image, manifest, bound->digest);
}

absl::StatusOr<Binding> CheckBoundArtifact(const RegistryClient& registry, const Reference& image,
                                           const Digest& manifest, const Digest& bound) {
  CLIP_ASSIGN_OR_RETURN(Manifest artifact_manifest,
                        registry.FetchManifest(image.WithDigest(bound)));
  absl::StatusOr<IndexArtifact> artifact = ParseIndexArtifact(artifact_manifest.bytes);
  if (!artifact.ok() || artifact->artifact_type != kClipIndexArtifactType) {
    return Refused(
        "invalid_artifact",
        absl::StrCat("the bound artifact ", bound.ToString(), " is not a clip index artifact",
                     artifact.ok() ? "" : absl::StrCat(": ", artifact.status().message())),
        bound);
  }
  if (artifact->subject != manifest) {
    return Refused("subject_mismatch",
                   absl::StrCat("the bound artifact ", bound.ToString(), " indexes ",
                                artifact->subject ? artifact->subject->ToString() : "no manifest",
                                ", not ", manifest.ToString(), " (another image's index)"),
                   bound);
  }
  BoundDocs docs{bound, {}};
  for (PublishedIndex& p : artifact->indexes) docs.layers[p.layer.ToString()] = std::move(p);
  return Binding{std::move(docs), "", "", {}};
}

}  // namespace clip
