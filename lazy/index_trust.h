// Index trust: what a node believes about a layer's clip index or access profile, and
// the chain of digests that proves one for a pull.
//
// An index decides every name, mode and byte a lazily mounted layer shows, and carries
// the very digests its spans are checked against. So a node uses one only when
//   - a chain of digests leads to it from what containerd resolved for this pull: the
//     pull's image reference (cri.image-ref, as CRI, clipctl and the transfer service
//     label it) resolves to a bound image index (registry/image_binding.h) that lists the
//     manifest being unpacked (cri.manifest-digest) and names a clip artifact for it,
//     whose `subject` is that manifest and whose layers name the index and profile blobs;
//   - or the node built it itself from a layer blob whose digest it verified (index on
//     first use, clipctl index --store), or recorded the profile itself;
//   - or the operator widened trust (`index_trust`):
//       "bound"      (default) only the above;
//       "fleet"      also what other nodes built, through the remote cache's pointers;
//       "referrers"  also any OCI referrer of the manifest (the behaviour before
//                    bindings), for registries whose every writer the operator trusts.
//
// ResolveBinding walks the chain. A reference by digest gives an exact chain; a tag is
// resolved again, and a tag that now names an index without the manifest containerd is
// unpacking moved in between: a refusal. A reference to a platform manifest's own digest
// cannot reach a binding (pin the bound index's digest instead).
//
// Thread safety: plain functions and value types.
#ifndef CLIP_LAZY_INDEX_TRUST_H_
#define CLIP_LAZY_INDEX_TRUST_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache/layer_doc_store.h"
#include "common/digest.h"
#include "registry/index_artifact.h"
#include "registry/reference.h"
#include "registry/registry_client.h"

namespace clip {

enum class IndexTrust { kBound, kFleet, kReferrers };
// "bound", "fleet", "referrers"; kInvalidArgument otherwise.
absl::StatusOr<IndexTrust> ParseIndexTrust(absl::string_view text);
const char* IndexTrustName(IndexTrust trust);

// Whether a node with `trust` believes a stored document of `origin` (LayerDocStore's
// origin record) without a chain that proves it for the pull at hand.
bool TrustsOrigin(IndexTrust trust, absl::string_view origin);

// What the chain from a pull's reference proves: the clip artifact bound to the
// manifest being unpacked and the index (and profile) blob of each layer it lists.
struct BoundDocs {
  Digest artifact;
  std::map<std::string, PublishedIndex> layers;  // by layer digest string
};

// The chain's answer. `docs` set: proven. Otherwise `why_not` says why; `refusal` (a
// clip_index_refused_total reason) is set when something was offered and failed a
// check, with the artifact it offered.
struct Binding {
  std::optional<BoundDocs> docs;
  std::string why_not;
  std::string refusal;
  std::optional<Digest> offered;
};

// Walks the chain from `image` (the pull's reference) to the artifact bound to
// `manifest` (the manifest being unpacked). Registry failures are errors; everything
// the registry says is an answer.
absl::StatusOr<Binding> ResolveBinding(const RegistryClient& registry, const Reference& image,
                                       const Digest& manifest);
// The chain's second half, for a puller that resolved the reference to its bound index
// itself and names the artifact it binds (kBoundArtifactLabel): the artifact, fetched by
// its digest, must be a clip index artifact whose subject is `manifest`.
absl::StatusOr<Binding> CheckBoundArtifact(const RegistryClient& registry, const Reference& image,
                                           const Digest& manifest, const Digest& artifact);

}  // namespace clip

#endif  // CLIP_LAZY_INDEX_TRUST_H_
