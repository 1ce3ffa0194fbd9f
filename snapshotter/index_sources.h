// Index discovery as a chain: where the daemon looks for a layer's clip index, in
// order, each place behind one interface, with one verify step for whatever is found.
//
//   local store     <root>/indexes (LayerDocStore)           errors are fatal
//   remote cache    the fleet's shared copy (RemoteCache)     errors are logged, skipped
//   registry        the image's index artifact (OCI referrers or its tag fallback):
//                   the image's other layers' indexes and access profiles come in the
//                   same round and are kept for the Prepares that follow
//
// FindIndex asks each source until one has the index, then checks it once (it decodes
// and describes the layer asked for: anything else is kDataLoss, never mounted), keeps
// it locally when it came from elsewhere (and shares it with the remote cache when it
// came from the registry), and writes what each source answered into `trail`, for the
// log line that says why a layer is or is not lazy.
//
//   std::vector<std::unique_ptr<IndexSource>> chain;
//   chain.push_back(std::make_unique<LocalStoreIndexSource>(store));
//   ...
//   CLIP_ASSIGN_OR_RETURN(auto index, FindIndex(chain, query, keep, &trail));
//
// Thread safety: sources are safe for concurrent use (they hold no lookup state);
// FindIndex may run concurrently for different layers.
#ifndef CLIP_SNAPSHOTTER_INDEX_SOURCES_H_
#define CLIP_SNAPSHOTTER_INDEX_SOURCES_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache/layer_doc_store.h"
#include "cache/remote_cache.h"
#include "clip/index/v1/index.pb.h"
#include "common/digest.h"
#include "registry/reference.h"
#include "registry/registry_client.h"

namespace clip {

struct IndexQuery {
  Reference image;
  Digest layer;
  std::optional<Digest> manifest;  // the image manifest (CRI label); the registry needs it
};

// Receives what a source says, one short phrase at a time ("not in the remote cache").
using IndexNote = std::function<void(absl::string_view)>;

class IndexSource {
 public:
  enum class Kind { kLocal, kRemoteCache, kRegistry };
  virtual ~IndexSource() = default;
  virtual Kind kind() const = 0;
  // The layer's encoded index as this source has it (not verified yet); nullopt when it
  // has none. Says what it found (or why it did not look) through `note`.
  virtual absl::StatusOr<std::optional<std::string>> Find(const IndexQuery& query,
                                                          const IndexNote& note) const = 0;
};

class LocalStoreIndexSource final : public IndexSource {
 public:
  explicit LocalStoreIndexSource(const LayerDocStore& store) : store_(store) {}
  Kind kind() const override { return Kind::kLocal; }
  absl::StatusOr<std::optional<std::string>> Find(const IndexQuery& query,
                                                  const IndexNote& note) const override;

 private:
  const LayerDocStore& store_;
};

// `cache` null: not configured (noted as such).
class RemoteCacheIndexSource final : public IndexSource {
 public:
  explicit RemoteCacheIndexSource(RemoteCache* cache) : cache_(cache) {}
  Kind kind() const override { return Kind::kRemoteCache; }
  absl::StatusOr<std::optional<std::string>> Find(const IndexQuery& query,
                                                  const IndexNote& note) const override;

 private:
  RemoteCache* const cache_;
};

// The image's published index artifact. Indexes of the image's other layers that the
// local store lacks come in the same round and go to `keep_other` once they decode as
// what they claim to be; published access profiles go to `profiles` (if given) unless
// one is there already (a profile recorded on this node is kept).
class RegistryIndexSource final : public IndexSource {
 public:
  using KeepOther = std::function<void(const Digest& layer, const std::string& encoded)>;
  RegistryIndexSource(const RegistryClient& registry, const LayerDocStore& indexes,
                      const LayerDocStore* profiles, KeepOther keep_other)
      : registry_(registry),
        indexes_(indexes),
        profiles_(profiles),
        keep_other_(std::move(keep_other)) {}
  Kind kind() const override { return Kind::kRegistry; }
  absl::StatusOr<std::optional<std::string>> Find(const IndexQuery& query,
                                                  const IndexNote& note) const override;

 private:
  const RegistryClient& registry_;
  const LayerDocStore& indexes_;
  const LayerDocStore* const profiles_;
  const KeepOther keep_other_;
};

// Called with a verified index found outside the local store; `share` when it came from
// the registry (the remote cache should have it too).
using KeepIndex = std::function<void(const Digest& layer, const std::string& encoded, bool share)>;

// The layer's verified index from the first source that has one; nullopt when none does.
absl::StatusOr<std::optional<std::shared_ptr<const index::v1::LayerIndex>>> FindIndex(
    const std::vector<std::unique_ptr<IndexSource>>& chain, const IndexQuery& query,
    const KeepIndex& keep, std::string* trail);

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_INDEX_SOURCES_H_
