// IndexFinder: where the daemon finds a layer's clip index and access profile, and
// what it believes of them (lazy/index_trust.h says what a node trusts and why).
//
//   local store    <root>/indexes, <root>/profiles (LayerDocStore with origin records):
//                  a document that no longer hashes to its record is refused; one is
//                  believed when the pull's chain proves its digest, or its origin is
//                  trusted (built or recorded here; fleet or referrer, when index_trust
//                  says so), or it is the one a restored snapshot was mounted with
//   binding        the pull's chain (ResolveBinding) names each layer's blobs; they are
//                  read from the remote cache under their own digest, else from the
//                  registry (every proven layer's index and profile in one round, kept
//                  for the Prepares that follow, and shared with the remote cache)
//   fleet pointer  the remote cache's `index/<layer hex>` (index_trust "fleet" or
//                  "referrers"): another node's index, under its own digest
//   referrers      OCI referrers of the manifest (index_trust "referrers" only)
//
// What is offered and not believed is refused: an info log line (source, what it
// offered, why), `clip_index_refused_total{source,reason}` and a note in the trail; the
// search goes on, and a layer without a believed index takes the ordinary pull. Under
// "bound", an untrusted fleet pointer or referrer is looked at (and refused) only when
// nothing believed was found, so the lazy path never pays for it. A believed index is
// checked once more before it is used: it decodes and describes the layer asked for.
//
//   IndexFinder finder({.registry = &client, .index_store = root + "/indexes"});
//   CLIP_ASSIGN_OR_RETURN(auto index, finder.FindIndex(query, &trail));
//
// Thread safety: safe for concurrent use; FindIndex may run for several layers at once.
#ifndef CLIP_LAZY_INDEX_FINDER_H_
#define CLIP_LAZY_INDEX_FINDER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache/layer_doc_store.h"
#include "cache/remote_cache.h"
#include "clip/index/v1/index.pb.h"
#include "common/digest.h"
#include "common/metrics.h"
#include "index/access_profile.h"
#include "lazy/index_trust.h"
#include "registry/reference.h"
#include "registry/registry_client.h"

namespace clip {

struct IndexQuery {
  Reference image;                 // the pull's reference (cri.image-ref)
  Digest layer;                    // cri.layer-digest
  std::optional<Digest> manifest;  // the manifest being unpacked (cri.manifest-digest)
  // Mounting again a snapshot that was mounted lazily (after a restart): its container
  // already runs on the index it was mounted with, `pinned` (its digest; unset for a
  // snapshot mounted before pins were kept, whose local copy is then taken as it is).
  // Only that index is believed, from whichever store has it: a tag that moved or
  // another image's binding of the same layer changes nothing under a running container.
  bool restoring = false;
  std::optional<Digest> pinned = std::nullopt;
  // The artifact the puller found bound to `manifest` (clip.bound-artifact label): the
  // reference need not be resolved again.
  std::optional<Digest> bound_artifact = std::nullopt;
};

class IndexFinder {
 public:
  struct Options {
    IndexTrust trust = IndexTrust::kBound;
    const RegistryClient* registry = nullptr;  // required
    std::string index_store;                   // directory of indexes by layer hex
    std::string profile_store;                 // directory of profiles; empty: none
    RemoteCache* remote = nullptr;             // the fleet's cache; null: none
    MetricsRegistry* metrics = nullptr;        // null: DefaultMetrics()
    // How long a tag's chain is reused for the pull's other layers before it is
    // resolved again (a digest's never changes).
    absl::Duration tag_ttl = absl::Seconds(30);
  };
  explicit IndexFinder(Options options);

  // The layer's believed index; nullopt when none is. `trail` (optional) receives what
  // each place answered, for the log line that says why a layer is or is not lazy.
  // Errors: a local store that cannot be read.
  // `digest` (optional) receives the digest of the index's encoded bytes (a snapshot's pin).
  absl::StatusOr<std::optional<std::shared_ptr<const index::v1::LayerIndex>>> FindIndex(
      const IndexQuery& query, std::string* trail = nullptr, Digest* digest = nullptr);
  // The layer's believed access profile that fits `index`; nullopt when none does.
  std::optional<index::v1::AccessProfile> FindProfile(const IndexQuery& query,
                                                      const index::v1::LayerIndex& index);

  // An index this node built from the verified blob: kept (origin "built") and shared
  // with the fleet (its own digest, and the layer's pointer).
  void KeepBuilt(const Digest& layer, const std::string& encoded);
  // A profile recorded here: kept (origin "recorded") and shared the same way.
  void KeepRecorded(const Digest& layer, const std::string& encoded);

  const LayerDocStore& indexes() const { return indexes_; }
  const LayerDocStore& profiles() const { return profiles_; }
  // clip_index_refused_total{source,reason} (tests).
  uint64_t Refused(absl::string_view source, absl::string_view reason) const;

 private:
  // The pull's chain, resolved once per reference and manifest (a tag's for tag_ttl);
  // a refusal on the way is reported when first found. nullopt: nothing proven (why in
  // the trail).
  std::optional<BoundDocs> Proof(const IndexQuery& query,
                                 const std::function<void(absl::string_view)>& note);
  // Logs, counts and notes an offer that is not believed.
  void Refuse(absl::string_view what, const Digest& layer, absl::string_view source,
              absl::string_view reason, absl::string_view offered, absl::string_view why,
              const std::function<void(absl::string_view)>& note) const;
  // Shares a document with the fleet under its own digest (and, with `pointer`, the
  // layer's pointer to it); failures are logged.
  void Share(const std::string& encoded, std::optional<RemoteCache::LayerDoc> pointer,
             const Digest& layer) const;
  // Fetches the proven blobs of `layer` and of the other layers not stored yet, in one
  // round, keeps them (origin "bound"), and returns `layer`'s index bytes.
  absl::StatusOr<std::optional<std::string>> FetchBound(
      const IndexQuery& query, const BoundDocs& docs,
      const std::function<void(absl::string_view)>& note);
  // The referrers' index blob for the layer (listed once per manifest), if any.
  absl::StatusOr<std::optional<PublishedIndex>> Referrer(const IndexQuery& query);

  const Options options_;
  MetricsRegistry& metrics_;
  const LayerDocStore indexes_;
  const LayerDocStore profiles_;

  struct Resolved {
    absl::Time at;
    Binding binding;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Resolved> bindings_ ABSL_GUARDED_BY(mu_);  // by "<ref> <manifest>"
  std::map<std::string, std::vector<PublishedIndex>> referrers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clip

#endif  // CLIP_LAZY_INDEX_FINDER_H_
