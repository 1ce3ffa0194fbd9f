#include "lazy/index_finder.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "index/access_profile.h"
#include "index/index_format.h"
#include "registry/index_artifact.h"

namespace clip {

namespace {

using Note = std::function<void(absl::string_view)>;

constexpr char kLocal[] = "local_store";
constexpr char kRemote[] = "remote_cache";
constexpr char kBinding[] = "binding";
constexpr char kReferrers[] = "referrers";

// An index found for `layer`, decoded; the error says why it cannot be used.
absl::StatusOr<index::v1::LayerIndex> Verified(const std::string& bytes, const Digest& layer) {
  CLIP_ASSIGN_OR_RETURN(index::v1::LayerIndex index, DecodeIndex(bytes));
  if (index.layer_digest() != layer.ToString()) {
    return absl::DataLossError(absl::StrCat("it describes ", index.layer_digest()));
  }
  return index;
}

// Keeps a document in a local store; the stores are optimisations: a failed write is
// logged, and what was found is still used.
void Store(const LayerDocStore& store, const Digest& layer, const std::string& bytes,
           absl::string_view origin) {
  absl::Status saved = store.Put(layer, bytes, origin);
  if (!saved.ok()) Log(LogLevel::kWarning, "remote", saved.message());
}

std::string Pointer(const std::string& encoded) { return Digest::Of(encoded).ToString() + "\n"; }

absl::StatusOr<Digest> ParsePointer(absl::string_view bytes) {
  absl::string_view text = absl::StripSuffix(bytes, "\n");
  if (!absl::StartsWith(text, "sha256:") || text.size() != 71) {
    return absl::DataLossError("not a pointer to a document (sha256:<hex>)");
  }
  return Digest::Parse(text);
}

}  // namespace

IndexFinder::IndexFinder(Options options)
    : options_(std::move(options)),
      metrics_(options_.metrics != nullptr ? *options_.metrics : DefaultMetrics()),
      indexes_(options_.index_store),
      profiles_(options_.profile_store) {
  // A store that cannot be made fails each write, logged; what is found is still used.
  if (absl::Status made = indexes_.Create(); !made.ok()) {
    Log(LogLevel::kWarning, "remote", made.message());
  }
  if (!options_.profile_store.empty()) {
    if (absl::Status made = profiles_.Create(); !made.ok()) {
      Log(LogLevel::kWarning, "remote", made.message());
    }
  }
}

uint64_t IndexFinder::Refused(absl::string_view source, absl::string_view reason) const {
  return static_cast<uint64_t>(
      metrics_
          .GetCounter("clip_index_refused_total", "",
                      {{"source", std::string(source)}, {"reason", std::string(reason)}})
          .Value());
}

void IndexFinder::Refuse(absl::string_view what, const Digest& layer, absl::string_view source,
                         absl::string_view reason, absl::string_view offered, absl::string_view why,
                         const Note& note) const {
  metrics_
      .GetCounter("clip_index_refused_total",
                  "Clip indexes and access profiles offered and not believed, by where they "
                  "came from and why (index_trust)",
                  {{"source", std::string(source)}, {"reason", std::string(reason)}})
      .Increment();
  Log(LogLevel::kInfo, "trust",
      absl::StrCat("refused the ", what, " of ", layer.ToString(), " from ", source, " (", reason,
                   "): offered ", offered, "; ", why));
  note(absl::StrCat("refused the ", what, " from ", source, " (", reason, ")"));
}

void IndexFinder::Share(const std::string& encoded, std::optional<RemoteCache::LayerDoc> pointer,
                        const Digest& layer) const {
  if (options_.remote == nullptr) return;
  absl::Status shared = options_.remote->PutDoc(encoded);
  if (shared.ok() && pointer) {
    shared = options_.remote->PutLayerDoc(*pointer, layer, Pointer(encoded));
  }
  if (!shared.ok()) Log(LogLevel::kWarning, "remote", shared.message());
}

void IndexFinder::KeepBuilt(const Digest& layer, const std::string& encoded) {
  Store(indexes_, layer, encoded, kOriginBuilt);
  Share(encoded, RemoteCache::LayerDoc::kIndex, layer);
}

void IndexFinder::KeepRecorded(const Digest& layer, const std::string& encoded) {
  Store(profiles_, layer, encoded, kOriginRecorded);
  Share(encoded, RemoteCache::LayerDoc::kProfile, layer);
}

std::optional<BoundDocs> IndexFinder::Proof(const IndexQuery& query, const Note& note) {
  if (!query.manifest) {
    note("no binding looked for (no manifest digest label)");
    return std::nullopt;
  }
  const std::string key =
      absl::StrCat(query.image.ToString(), " ", query.manifest->ToString(), " ",
                   query.bound_artifact ? query.bound_artifact->ToString() : "");
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = bindings_.find(key);
    if (it != bindings_.end() &&
        (query.image.digest() || query.bound_artifact || now - it->second.at < options_.tag_ttl)) {
      const Binding& b = it->second.binding;
      note(b.docs ? absl::StrCat("bound to artifact ", b.docs->artifact.ToString()) : b.why_not);
      return b.docs;
    }
  }
  absl::StatusOr<Binding> resolved =
      query.bound_artifact ? CheckBoundArtifact(*options_.registry, query.image, *query.manifest,
                                                *query.bound_artifact)
                           : ResolveBinding(*options_.registry, query.image, *query.manifest);
  if (!resolved.ok()) {  // not remembered: the next layer asks again
    Log(LogLevel::kWarning, "trust",
        absl::StrCat("binding of ", query.image.ToString(), ": ", resolved.status().message()));
    note(absl::StrCat("binding not resolved (", resolved.status().message(), ")"));
    return std::nullopt;
  }
  if (!resolved->refusal.empty()) {
    Refuse("index", query.layer, kBinding, resolved->refusal,
           resolved->offered ? resolved->offered->ToString() : "?", resolved->why_not, note);
  } else if (!resolved->docs) {
    note(resolved->why_not);
  } else {
    note(absl::StrCat("bound to artifact ", resolved->docs->artifact.ToString()));
  }
  absl::MutexLock lock(&mu_);
  if (bindings_.size() >= 256) bindings_.clear();  // a node pulls few images at once
  Resolved& r = bindings_[key];
  r = Resolved{now, *std::move(resolved)};
  return r.binding.docs;
}

absl::StatusOr<std::optional<std::string>> IndexFinder::FetchBound(const IndexQuery& query,
                                                                   const BoundDocs& docs,
                                                                   const Note& note) {
  // The image's other layers come next (containerd prepares them one after another):
  // their proven indexes not stored yet come in the same round, with the profiles.
  std::vector<PublishedIndex> wanted;
  for (const auto& [layer, p] : docs.layers) {
    if (p.layer == query.layer) {
      wanted.push_back(p);
      continue;
    }
    std::optional<LayerDocStore::Record> have = indexes_.RecordOf(p.layer);
    if (!have || have->digest != p.blob) wanted.push_back(p);
  }
  std::map<std::string, std::string> profiles;
  CLIP_ASSIGN_OR_RETURN(auto blobs,
                        FetchIndexBlobs(*options_.registry, query.image, wanted, 4,
                                        options_.profile_store.empty() ? nullptr : &profiles));
  std::optional<std::string> mine;
  for (auto& [layer_text, encoded] : blobs) {
    absl::StatusOr<Digest> layer = Digest::Parse(layer_text);
    if (!layer.ok()) continue;
    absl::StatusOr<index::v1::LayerIndex> index = Verified(encoded, *layer);
    if (!index.ok()) {
      Refuse(
          "index", *layer, kBinding, "invalid", docs.layers.at(layer_text).blob.ToString(),
          absl::StrCat("the bound blob is not its index: ", index.status().message()),
          *layer == query.layer ? note : [](absl::string_view) {});
      continue;
    }
    Store(indexes_, *layer, encoded, kOriginBound);
    Share(encoded, std::nullopt, *layer);
    if (*layer == query.layer) mine = std::move(encoded);
  }
  for (auto& [layer_text, encoded] : profiles) {
    absl::StatusOr<Digest> layer = Digest::Parse(layer_text);
    if (!layer.ok()) continue;
    std::optional<LayerDocStore::Record> have = profiles_.RecordOf(*layer);
    if (have && have->origin == kOriginRecorded) continue;  // this node's own is kept
    Store(profiles_, *layer, encoded, kOriginBound);
    Share(encoded, std::nullopt, *layer);
  }
  note(mine ? "found in the registry (bound)" : "the registry's bound index is unusable");
  return mine;
}

absl::StatusOr<std::optional<PublishedIndex>> IndexFinder::Referrer(const IndexQuery& query) {
  const std::string key = absl::StrCat(query.image.Name(), " ", query.manifest->ToString());
  std::vector<PublishedIndex> listed;
  bool cached = false;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = referrers_.find(key); it != referrers_.end()) {
      listed = it->second;
      cached = true;
    }
  }
  if (!cached) {
    CLIP_ASSIGN_OR_RETURN(listed,
                          ListPublishedIndexes(*options_.registry, query.image, *query.manifest));
    absl::MutexLock lock(&mu_);
    if (referrers_.size() >= 256) referrers_.clear();
    referrers_[key] = listed;
  }
  for (const PublishedIndex& p : listed) {
    if (p.layer == query.layer) return p;
  }
  return std::nullopt;
}

absl::StatusOr<std::optional<std::shared_ptr<const index::v1::LayerIndex>>> IndexFinder::FindIndex(
    const IndexQuery& query, std::string* trail, Digest* digest) {
  const Digest& layer = query.layer;
  const IndexTrust trust = options_.trust;
  Note note = [&](absl::string_view what) {
    Log(LogLevel::kDebug, "remote", absl::StrCat("index of ", layer.ToString(), ": ", what));
    if (trail != nullptr) absl::StrAppend(trail, trail->empty() ? "" : "; ", what);
  };
  using Found = std::optional<std::shared_ptr<const index::v1::LayerIndex>>;
  auto use = [digest](index::v1::LayerIndex index, const std::string& bytes) -> Found {
    if (digest != nullptr) *digest = Digest::Of(bytes);
    return std::make_shared<const index::v1::LayerIndex>(std::move(index));
  };
  const std::optional<Digest>& pinned = query.pinned;
  // The chain is resolved when first needed: a restored snapshot's local copy needs none.
  bool resolved = false;
  std::optional<BoundDocs> proof;
  auto bound = [&]() -> std::optional<PublishedIndex> {
    if (!resolved) {
      proof = Proof(query, note);
      resolved = true;
    }
    if (!proof) return std::nullopt;
    auto it = proof->layers.find(layer.ToString());
    if (it == proof->layers.end()) {
      note("the bound artifact has no index for this layer");
      return std::nullopt;
    }
    return it->second;
  };

  // 1. The local store.
  CLIP_ASSIGN_OR_RETURN(std::optional<std::string> stored, indexes_.Get(layer));
  if (stored) {
    const Digest actual = Digest::Of(*stored);
    std::optional<LayerDocStore::Record> record = indexes_.RecordOf(layer);
    if (record && record->digest != actual) {
      Refuse("index", layer, kLocal, "modified_on_disk", actual.ToString(),
             absl::StrCat(indexes_.PathOf(layer), " changed on disk since it was stored as ",
                          record->digest.ToString(), " (", record->origin, "); removed"),
             note);
      indexes_.Remove(layer);
    } else {
      bool believed = record && TrustsOrigin(trust, record->origin);
      if (!record && trust == IndexTrust::kReferrers) believed = true;
      // Restoring: the index the container runs on (a snapshot mounted before pins were
      // kept runs on the local copy, whatever its origin).
      if (query.restoring) believed = pinned ? actual == *pinned : true;
      std::optional<PublishedIndex> proven;
      if (!believed && !query.restoring) {
        proven = bound();
        believed = proven && proven->blob == actual;
      }
      if (believed) {
        absl::StatusOr<index::v1::LayerIndex> index = Verified(*stored, layer);
        if (index.ok()) {
          note("found in the local store");
          return use(*std::move(index), *stored);
        }
        Refuse("index", layer, kLocal, "invalid", actual.ToString(),
               absl::StrCat(index.status().message(), "; removed"), note);
        indexes_.Remove(layer);
      } else if (proven) {
        note("the local copy is not the bound one");
      } else if (query.restoring) {
        note("the local copy is not the one the snapshot was mounted with");
      } else {
        Refuse("index", layer, kLocal, "unproven", actual.ToString(),
               absl::StrCat("stored ",
                            record ? absl::StrCat("as ", record->origin) : "without an origin",
                            ", which index_trust \"", IndexTrustName(trust),
                            "\" does not believe, and no binding proves it"),
               note);
      }
    }
  } else {
    note("not in the local store");
  }

  // 2. Restoring: the index the snapshot was mounted with, under its digest.
  if (pinned && options_.remote != nullptr) {
    absl::StatusOr<std::optional<std::string>> shared = options_.remote->GetDoc(*pinned);
    absl::StatusOr<index::v1::LayerIndex> index =
        shared.ok() && *shared ? Verified(**shared, layer)
                               : absl::NotFoundError("not in the remote cache");
    if (index.ok()) {
      Store(indexes_, layer, **shared, kOriginBound);
      note("found in the remote cache (the snapshot's own)");
      return use(*std::move(index), **shared);
    }
    note(absl::StrCat("the snapshot's index ", pinned->ToString(), ": ", index.status().message()));
  }

  // 3. What the pull's chain proves: the remote cache under its digest, else the registry.
  std::optional<PublishedIndex> proven = bound();
  if (proven && pinned && proven->blob != *pinned) {
    note(absl::StrCat("the binding now names ", proven->blob.ToString(),
                      ", not the index the snapshot was mounted with"));
    proven.reset();
  }
  if (proven) {
    if (options_.remote != nullptr) {
      absl::StatusOr<std::optional<std::string>> shared = options_.remote->GetDoc(proven->blob);
      if (shared.ok() && *shared) {
        absl::StatusOr<index::v1::LayerIndex> index = Verified(**shared, layer);
        if (index.ok()) {
          Store(indexes_, layer, **shared, kOriginBound);
          note("found in the remote cache (bound)");
          return use(*std::move(index), **shared);
        }
        Refuse("index", layer, kRemote, "invalid", proven->blob.ToString(),
               index.status().message(), note);
      } else if (shared.status().code() == absl::StatusCode::kDataLoss) {
        Refuse("index", layer, kRemote, "digest_mismatch", proven->blob.ToString(),
               shared.status().message(), note);
      } else if (!shared.ok()) {
        note(absl::StrCat("remote cache failed (", shared.status().message(), ")"));
      } else {
        note("not in the remote cache");
      }
    }
    absl::StatusOr<std::optional<std::string>> fetched = FetchBound(query, *proof, note);
    if (!fetched.ok()) {
      Log(LogLevel::kWarning, "remote",
          absl::StrCat("bound index of ", layer.ToString(), ": ", fetched.status().message()));
      note(absl::StrCat("registry failed (", fetched.status().message(), ")"));
    } else if (*fetched) {
      return use(*Verified(**fetched, layer), **fetched);  // FetchBound verified it
    }
  }
  if (pinned) return std::nullopt;  // nothing but the snapshot's own index

  // 4. Another node's index, through the fleet's pointer.
  if (options_.remote != nullptr) {
    absl::StatusOr<std::optional<std::string>> pointer =
        options_.remote->GetLayerDoc(RemoteCache::LayerDoc::kIndex, layer);
    if (!pointer.ok()) {
      note(absl::StrCat("remote cache failed (", pointer.status().message(), ")"));
    } else if (*pointer) {
      absl::StatusOr<Digest> target = ParsePointer(**pointer);
      if (!target.ok()) {
        Refuse("index", layer, kRemote, "invalid", absl::StrCat((*pointer)->size(), " bytes"),
               absl::StrCat("index/", layer.Hex(), " is ", target.status().message()), note);
      } else if (trust == IndexTrust::kBound) {
        Refuse("index", layer, kRemote, "unbound", target->ToString(),
               "another node's index, and index_trust is \"bound\"", note);
      } else {
        absl::StatusOr<std::optional<std::string>> doc = options_.remote->GetDoc(*target);
        absl::StatusOr<index::v1::LayerIndex> index =
            !doc.ok() ? doc.status()
            : !*doc   ? absl::NotFoundError("the document it points to is missing")
                      : Verified(**doc, layer);
        if (index.ok()) {
          Store(indexes_, layer, **doc, kOriginFleet);
          note("found in the remote cache (another node's)");
          return use(*std::move(index), **doc);
        }
        if (doc.status().code() == absl::StatusCode::kDataLoss) {
          Refuse("index", layer, kRemote, "digest_mismatch", target->ToString(),
                 doc.status().message(), note);
        } else if (doc.ok() && *doc) {
          Refuse("index", layer, kRemote, "invalid", target->ToString(), index.status().message(),
                 note);
        } else {
          note(absl::StrCat("remote cache: ", index.status().message()));
        }
      }
    } else {
      note("not in the remote cache");
    }
  } else {
    note("no remote cache configured");
  }

  // 5. Referrers of the manifest: believed under "referrers", else refused.
  if (query.manifest) {
    absl::StatusOr<std::optional<PublishedIndex>> referrer = Referrer(query);
    if (!referrer.ok()) {
      Log(LogLevel::kWarning, "remote",
          absl::StrCat("referrers of ", query.manifest->ToString(), ": ",
                       referrer.status().message()));
      note(absl::StrCat("referrers failed (", referrer.status().message(), ")"));
    } else if (!*referrer) {
      note("no referrer indexes this layer");
    } else if (trust != IndexTrust::kReferrers) {
      Refuse("index", layer, kReferrers, "unbound", (*referrer)->blob.ToString(),
             absl::StrCat("a referrer of ", query.manifest->ToString(),
                          " that no binding names, and index_trust is \"", IndexTrustName(trust),
                          "\""),
             note);
    } else {
      absl::StatusOr<std::string> blob =
          FetchBlobToString(*options_.registry, query.image, (*referrer)->blob);
      absl::StatusOr<index::v1::LayerIndex> index =
          blob.ok() ? Verified(*blob, layer) : blob.status();
      if (index.ok()) {
        Store(indexes_, layer, *blob, kOriginReferrer);
        Share(*blob, RemoteCache::LayerDoc::kIndex, layer);
        note("found in the registry (a referrer)");
        return use(*std::move(index), *blob);
      }
      if (blob.ok()) {
        Refuse("index", layer, kReferrers, "invalid", (*referrer)->blob.ToString(),
               index.status().message(), note);
      } else {
        note(absl::StrCat("referrer's index not fetched (", blob.status().message(), ")"));
      }
    }
  }
  return std::nullopt;
}

std::optional<index::v1::AccessProfile> IndexFinder::FindProfile(
    const IndexQuery& query, const index::v1::LayerIndex& index) {
  if (options_.profile_store.empty()) return std::nullopt;
  const Digest& layer = query.layer;
  const IndexTrust trust = options_.trust;
  Note note = [&](absl::string_view what) {
    Log(LogLevel::kDebug, "remote", absl::StrCat("profile of ", layer.ToString(), ": ", what));
  };
  auto fits = [&](absl::string_view from,
                  const std::string& bytes) -> std::optional<index::v1::AccessProfile> {
    absl::StatusOr<index::v1::AccessProfile> p = DecodeProfile(bytes);
    absl::Status st = p.ok() ? CheckProfileFor(*p, index) : p.status();
    if (st.ok()) return *std::move(p);
    Log(LogLevel::kWarning, "remote",
        absl::StrCat("ignored the access profile of ", layer.ToString(), " from ", from, ": ",
                     st.message()));
    return std::nullopt;
  };
  std::optional<Digest> proven;
  if (!query.restoring && query.manifest) {
    if (std::optional<BoundDocs> docs = Proof(query, note)) {
      auto it = docs->layers.find(layer.ToString());
      if (it != docs->layers.end()) proven = it->second.profile;
    }
  }
  // The local store.
  if (absl::StatusOr<std::optional<std::string>> local = profiles_.Get(layer);
      local.ok() && local->has_value()) {
    const Digest actual = Digest::Of(**local);
    std::optional<LayerDocStore::Record> record = profiles_.RecordOf(layer);
    if (record && record->digest != actual) {
      Refuse("access profile", layer, kLocal, "modified_on_disk", actual.ToString(),
             absl::StrCat(profiles_.PathOf(layer), " changed on disk since it was stored as ",
                          record->digest.ToString(), "; removed"),
             note);
      profiles_.Remove(layer);
    } else if ((record && TrustsOrigin(trust, record->origin)) ||
               (!record && trust == IndexTrust::kReferrers) || proven == actual) {
      if (auto p = fits("the local store", **local)) return p;
      profiles_.Remove(layer);  // recorded again on this mount
    } else if (!proven) {
      Refuse("access profile", layer, kLocal, "unproven", actual.ToString(),
             absl::StrCat("stored ",
                          record ? absl::StrCat("as ", record->origin) : "without an origin",
                          ", which index_trust \"", IndexTrustName(trust), "\" does not believe"),
             note);
    }
  }
  if (proven) {  // the bound profile: the remote cache under its digest, else the registry
    absl::StatusOr<std::optional<std::string>> doc =
        options_.remote != nullptr ? options_.remote->GetDoc(*proven)
                                   : absl::StatusOr<std::optional<std::string>>(std::nullopt);
    if (doc.status().code() == absl::StatusCode::kDataLoss) {
      Refuse("access profile", layer, kRemote, "digest_mismatch", proven->ToString(),
             doc.status().message(), note);
    }
    std::optional<std::string> bytes = doc.ok() ? *doc : std::nullopt;
    if (!bytes) {
      absl::StatusOr<std::string> fetched =
          FetchBlobToString(*options_.registry, query.image, *proven);
      if (fetched.ok()) bytes = *std::move(fetched);
    }
    if (bytes) {
      if (auto p = fits("the binding", *bytes)) {
        Store(profiles_, layer, *bytes, kOriginBound);
        return p;
      }
    }
  }
  if (options_.remote == nullptr) return std::nullopt;
  absl::StatusOr<std::optional<std::string>> pointer =
      options_.remote->GetLayerDoc(RemoteCache::LayerDoc::kProfile, layer);
  if (!pointer.ok() || !*pointer) return std::nullopt;
  absl::StatusOr<Digest> target = ParsePointer(**pointer);
  if (!target.ok()) {
    Refuse("access profile", layer, kRemote, "invalid", absl::StrCat((*pointer)->size(), " bytes"),
           absl::StrCat("profile/", layer.Hex(), " is ", target.status().message()), note);
    return std::nullopt;
  }
  if (trust == IndexTrust::kBound) {
    Refuse("access profile", layer, kRemote, "unbound", target->ToString(),
           "another node's profile, and index_trust is \"bound\"", note);
    return std::nullopt;
  }
  absl::StatusOr<std::optional<std::string>> doc = options_.remote->GetDoc(*target);
  if (doc.status().code() == absl::StatusCode::kDataLoss) {
    Refuse("access profile", layer, kRemote, "digest_mismatch", target->ToString(),
           doc.status().message(), note);
    return std::nullopt;
  }
  if (!doc.ok() || !*doc) return std::nullopt;
  std::optional<index::v1::AccessProfile> p = fits("the remote cache", **doc);
  if (p) {
    Store(profiles_, layer, **doc, kOriginFleet);
  }
  return p;
}

}  // namespace clip
