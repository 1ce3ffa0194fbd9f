// RemoteCache: the fleet-shared tier, a plain HTTP content-addressed store:
// `GET/HEAD/PUT <endpoint>/cas/<hex>` (nginx with WebDAV PUT, bazel-remote, or an
// object-store gateway serve this). Layers' clip indexes and access profiles live there
// too, under their own sha256 (GetDoc/PutDoc), found through an image's binding or a
// node's local store: a poisoned cache can withhold them, never forge them. For fleets
// that trust each other's nodes (index_trust = "fleet"), `<endpoint>/index/<layer hex>`
// and `.../profile/<layer hex>` hold a pointer to a node-built one: the line
// `sha256:<hex>` (GetLayerDoc/PutLayerDoc). Every call is synchronous and every hit is
// verified; span writes reach it through the node's one write-back queue
// (cache/write_back.h), so a slow or dead remote never slows a read.
//
//   RemoteCache remote({.endpoint = "http://cache.internal:8080"});
//   write_back.Submit(&remote, digest, bytes);
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_CACHE_REMOTE_CACHE_H_
#define CLIP_CACHE_REMOTE_CACHE_H_

#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "cache/span_store.h"
#include "common/http_client.h"
#include "common/logging.h"

namespace clip {

class RemoteCache final : public SpanStore {
 public:
  struct Options {
    std::string endpoint;  // e.g. "http://127.0.0.1:8080/prefix"
    std::vector<std::pair<std::string, std::string>> headers;  // e.g. Authorization
    TlsOptions tls;
    MetricsRegistry* metrics = nullptr;  // counters (null: the cache's own; span_store.h)
    HttpOptions http = {absl::Seconds(5), absl::Seconds(10), absl::Minutes(2), "clip/0.1"};
  };

  explicit RemoteCache(Options options);

  const char* name() const override { return "remote"; }
  absl::StatusOr<std::optional<SpanBytes>> Get(const Digest& key) override;
  // HEAD, then PUT unless it is there (content-addressed: what is there is right, and
  // verified on read anyway).
  absl::Status Put(const Digest& key, const SpanBytes& bytes) override;

  // A document under its own digest (`cas/<hex>`): nullopt on 404; kDataLoss when the
  // bytes there hash to something else (counted as corrupt, never returned).
  absl::StatusOr<std::optional<std::string>> GetDoc(const Digest& digest);
  // Stores one under its own digest. Synchronous (documents are small); overwrites what
  // is there, so a node that found a wrong entry repairs it.
  absl::Status PutDoc(const std::string& bytes);

  // Per-layer pointers, shared by the fleet: to a layer's clip index
  // (`<endpoint>/index/<layer hex>`) and its access profile (`.../profile/<layer hex>`).
  enum class LayerDoc { kIndex, kProfile };
  // As stored by PutLayerDoc: nullopt on 404. Synchronous; the bytes are unverified.
  absl::StatusOr<std::optional<std::string>> GetLayerDoc(LayerDoc kind, const Digest& layer);
  // Stores one (synchronous: they are small and fetched rarely).
  absl::Status PutLayerDoc(LayerDoc kind, const Digest& layer, const std::string& encoded);

 private:
  std::string Url(const Digest& key) const;
  std::string LayerDocUrl(LayerDoc kind, const Digest& layer) const;

  const Options options_;
  HttpClient http_;
  RateLimitedLog log_{absl::Seconds(10)};
};

}  // namespace clip

#endif  // CLIP_CACHE_REMOTE_CACHE_H_
