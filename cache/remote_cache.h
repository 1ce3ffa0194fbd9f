// RemoteCache: the fleet-shared tier, a plain HTTP content-addressed store:
// `GET/HEAD/PUT <endpoint>/cas/<hex>` (nginx with WebDAV PUT, bazel-remote, or an
// object-store gateway serve this). Layers' clip indexes and access profiles live there
// too, under their own sha256 (GetDoc/PutDoc), found through an image's binding or a
// node's local store: a poisoned cache can withhold them, never forge them. For fleets
// that trust each other's nodes (index_trust = "fleet"), `<endpoint>/index/<layer hex>`
// and `.../profile/<layer hex>` hold a pointer to a node-built one: the line
// `sha256:<hex>` (GetLayerDoc/PutLayerDoc). Reads are synchronous and every hit is verified;
// writes are asynchronous through a bounded queue drained by background writers, so
// a slow or dead remote never slows a read: when the queue is full, writes are shed
// (counted in dropped_writes). Failures are logged at most once per 10 s.
//
//   RemoteCache remote({.endpoint = "http://cache.internal:8080"});
//   remote.Put(digest, bytes);  // queued
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
    uint64_t max_queued_bytes = 256 << 20;
    int writers = 2;
    MetricsRegistry* metrics = nullptr;  // counters (null: the cache's own; span_store.h)
    HttpOptions http = {absl::Seconds(5), absl::Seconds(10), absl::Minutes(2), "clip/0.1"};
  };

  explicit RemoteCache(Options options);
  ~RemoteCache() override;  // Drains nothing: queued writes are dropped on shutdown.

  const char* name() const override { return "remote"; }
  absl::StatusOr<std::optional<SpanBytes>> Get(const Digest& key) override;
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

  // Waits until every queued write is done (tests, orderly shutdown).
  void Flush();
  // Writes queued or in flight (the clip_remote_cache_pending_writes gauge).
  size_t PendingWrites();

 private:
  std::string Url(const Digest& key) const;
  std::string LayerDocUrl(LayerDoc kind, const Digest& layer) const;
  void WriterLoop();
  bool Write(const Digest& key, const SpanBytes& bytes);

  const Options options_;
  HttpClient http_;
  RateLimitedLog log_{absl::Seconds(10)};
  absl::Mutex mu_;
  std::deque<std::pair<Digest, SpanBytes>> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> writers_;
};

}  // namespace clip

#endif  // CLIP_CACHE_REMOTE_CACHE_H_
