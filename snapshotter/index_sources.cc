#include "snapshotter/index_sources.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "index/access_profile.h"
#include "index/index_format.h"
#include "registry/index_artifact.h"

namespace clip {

absl::StatusOr<std::optional<std::string>> LocalStoreIndexSource::Find(
    const IndexQuery& query, const IndexNote& note) const {
  CLIP_ASSIGN_OR_RETURN(std::optional<std::string> stored, store_.Get(query.layer));
  note(stored ? "found in the local store" : "not in the local store");
  return stored;
}

absl::StatusOr<std::optional<std::string>> RemoteCacheIndexSource::Find(
    const IndexQuery& query, const IndexNote& note) const {
  if (cache_ == nullptr) {
    note("no remote cache configured");
    return std::nullopt;
  }
  // The fleet's copy; a broken remote cache is logged and skipped, never fatal.
  absl::StatusOr<std::optional<std::string>> shared =
      cache_->GetLayerDoc(RemoteCache::LayerDoc::kIndex, query.layer);
  if (!shared.ok()) {
    Log(LogLevel::kWarning, "remote",
        absl::StrCat("remote cache index lookup for ", query.layer.ToString(), ": ",
                     shared.status().message()));
    note(absl::StrCat("remote cache failed (", shared.status().message(), ")"));
    return std::nullopt;
  }
  note(*shared ? "found in the remote cache" : "not in the remote cache");
  return *std::move(shared);
}

absl::StatusOr<std::optional<std::string>> RegistryIndexSource::Find(const IndexQuery& query,
                                                                     const IndexNote& note) const {
  if (!query.manifest) {
    note("registry not asked (no manifest digest label)");
    return std::nullopt;
  }
  // The image's other layers come next (containerd prepares them one after another):
  // fetch the published indexes not stored yet all at once and keep them, one round of
  // requests instead of one per layer. A layer without one costs only the listing.
  CLIP_ASSIGN_OR_RETURN(std::vector<PublishedIndex> listed,
                        ListPublishedIndexes(registry_, query.image, *query.manifest));
  std::vector<PublishedIndex> wanted;
  bool published = false;
  for (const PublishedIndex& p : listed) {
    if (p.layer == query.layer) {
      published = true;
      wanted.push_back(p);
    } else if (!indexes_.Contains(p.layer)) {
      wanted.push_back(p);
    }
  }
  note(absl::StrCat("registry: ", listed.size(), " index(es) published for manifest ",
                    query.manifest->ToString(),
                    published ? ", this layer's among them" : ", none for this layer"));
  if (!published) return std::nullopt;
  // Access profiles published with the indexes come in the same round.
  std::map<std::string, std::string> profiles;
  CLIP_ASSIGN_OR_RETURN(auto all, FetchIndexBlobs(registry_, query.image, wanted, 4,
                                                  profiles_ == nullptr ? nullptr : &profiles));
  for (const auto& [other, encoded] : profiles) {
    absl::StatusOr<Digest> d = Digest::Parse(other);
    if (!d.ok() || profiles_->Contains(*d)) continue;
    if (absl::Status ok = DecodeProfile(encoded).status(); !ok.ok()) {
      Log(LogLevel::kWarning, "remote",
          absl::StrCat("published access profile of ", other, " ignored: ", ok.message()));
      continue;
    }
    absl::Status saved = profiles_->Put(*d, encoded);
    if (!saved.ok()) Log(LogLevel::kWarning, "remote", saved.message());
  }
  std::optional<std::string> mine;
  for (auto& [other, encoded] : all) {
    if (other == query.layer.ToString()) {
      mine = std::move(encoded);
      note("found in the registry");
      continue;
    }
    absl::StatusOr<Digest> d = Digest::Parse(other);
    absl::StatusOr<index::v1::LayerIndex> decoded = DecodeIndex(encoded);
    if (!d.ok() || !decoded.ok() || decoded->layer_digest() != other) {
      Log(LogLevel::kWarning, "remote",
          absl::StrCat("published index of ", other, " is invalid; ignored: ",
                       decoded.ok() ? "describes another layer" : decoded.status().message()));
      continue;
    }
    keep_other_(*d, encoded);
  }
  return mine;
}

absl::StatusOr<std::optional<std::shared_ptr<const index::v1::LayerIndex>>> FindIndex(
    const std::vector<std::unique_ptr<IndexSource>>& chain, const IndexQuery& query,
    const KeepIndex& keep, std::string* trail) {
  const std::string layer = query.layer.ToString();
  IndexNote note = [&](absl::string_view what) {
    Log(LogLevel::kDebug, "remote", absl::StrCat("index of ", layer, ": ", what));
    if (trail != nullptr) absl::StrAppend(trail, trail->empty() ? "" : "; ", what);
  };
  for (const auto& source : chain) {
    CLIP_ASSIGN_OR_RETURN(std::optional<std::string> bytes, source->Find(query, note));
    if (!bytes) continue;
    absl::StatusOr<index::v1::LayerIndex> decoded = DecodeIndex(*bytes);
    if (!decoded.ok()) {
      return WithContext(decoded.status(), absl::StrCat("index of ", layer));
    }
    if (decoded->layer_digest() != layer) {
      return absl::DataLossError(
          absl::StrCat("index found for ", layer, " describes ", decoded->layer_digest()));
    }
    if (source->kind() != IndexSource::Kind::kLocal) {
      keep(query.layer, *bytes, source->kind() == IndexSource::Kind::kRegistry);
    }
    return std::make_shared<const index::v1::LayerIndex>(*std::move(decoded));
  }
  return std::nullopt;
}

}  // namespace clip
