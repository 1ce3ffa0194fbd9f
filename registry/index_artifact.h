// IndexArtifact: how clip indexes travel through a registry, next to the image they
// describe. One OCI artifact per image manifest:
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
// entry per layer still finds the index.
//
// Discovery is the OCI 1.1 referrers API; for registries without it (docker-registry),
// Publish also maintains the `sha256-<manifest hex>` tag: an OCI index listing the
// artifacts that refer to that manifest (appended to, never overwritten).
//
// Thread safety: free functions; safe to call concurrently.
#ifndef CLIP_REGISTRY_INDEX_ARTIFACT_H_
#define CLIP_REGISTRY_INDEX_ARTIFACT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/digest.h"
#include "registry/clip_media_types.h"
#include "registry/reference.h"
#include "registry/registry_client.h"

namespace clip {

struct LayerIndexBlob {
  Digest layer;              // the image layer the index describes
  std::string encoded;       // the encoded clip index (index/FORMAT.md)
  std::string profile = {};  // its encoded access profile; empty: none
};

// The artifact manifest's JSON for `indexes` of the manifest `subject`.
std::string IndexArtifactManifest(const Descriptor& subject,
                                  const std::vector<LayerIndexBlob>& indexes);

// Pushes the index blobs, the artifact and the fallback tag; returns the artifact's digest.
absl::StatusOr<Digest> PublishIndexArtifact(const RegistryClient& client, const Reference& repo,
                                            const Descriptor& subject,
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

// The indexes of every clip artifact that names `subject` (referrers API, else its tag
// fallback; the newest artifact wins for a layer listed twice). Fetches manifests only.
// Anyone with push rights can add a referrer: only index_trust = "referrers" believes them.
absl::StatusOr<std::vector<PublishedIndex>> ListPublishedIndexes(const RegistryClient& client,
                                                                 const Reference& repo,
                                                                 const Digest& subject);

// Every published index of `subject` by layer digest string, the blobs fetched
// `parallel` at a time, each verified against its descriptor's digest.
absl::StatusOr<std::map<std::string, std::string>> FetchPublishedIndexes(
    const RegistryClient& client, const Reference& repo, const Digest& subject, int parallel = 4);
// The index blobs of `which` (from ListPublishedIndexes), by layer digest string; with
// `profiles`, also their access profile blobs (same round of requests) into it.
absl::StatusOr<std::map<std::string, std::string>> FetchIndexBlobs(
    const RegistryClient& client, const Reference& repo, const std::vector<PublishedIndex>& which,
    int parallel = 4, std::map<std::string, std::string>* profiles = nullptr);

}  // namespace clip

#endif  // CLIP_REGISTRY_INDEX_ARTIFACT_H_
