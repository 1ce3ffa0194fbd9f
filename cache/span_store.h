// SpanStore: one tier of clip's content-addressed span cache (memory, disk, remote).
//
// Keys are span sha256 digests; every tier verifies what it returns against the key,
// so a hit is proof of correct bytes. A miss is not an error: Get returns nullopt,
// also for an entry found corrupt (which the tier drops). An error means the tier
// itself is broken (disk full, remote down); the tiered reader logs it and skips the
// tier.
//
// Thread safety: implementations are safe for concurrent use.
#ifndef CLIP_CACHE_SPAN_STORE_H_
#define CLIP_CACHE_SPAN_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/digest.h"
#include "common/metrics.h"

namespace clip {

using SpanBytes = std::shared_ptr<const std::string>;

// A tier's counters are its metrics: the children labelled tier=<name> of the
// clip_cache_*_total families of a MetricsRegistry (the daemon's DefaultMetrics), not
// a second set of numbers sampled into it. A store given no registry keeps one of its
// own, so stores count apart unless they are told to share.
struct TierCounters {
  TierCounters(MetricsRegistry& registry, const std::string& tier);

  Counter& hits;
  Counter& misses;
  Counter& bytes_read;
  Counter& bytes_written;
  Counter& errors;
  Counter& evictions;
  Counter& corrupt;         // entries found bad, dropped
  Counter& dropped_writes;  // writes shed under back-pressure

  void Hit(uint64_t bytes) {
    hits.Increment();
    bytes_read.Increment(static_cast<double>(bytes));
  }
  void Miss() { misses.Increment(); }
};

class SpanStore {
 public:
  // Counts into `metrics` under tier label `tier`; null: into a registry of its own.
  SpanStore(const std::string& tier, MetricsRegistry* metrics);
  virtual ~SpanStore() = default;
  virtual const char* name() const = 0;
  virtual absl::StatusOr<std::optional<SpanBytes>> Get(const Digest& key) = 0;
  // Stores `bytes`, which must hash to `key` (callers have verified them).
  virtual absl::Status Put(const Digest& key, const SpanBytes& bytes) = 0;
  // Cheap presence check without reading or verifying (false when unknown).
  virtual bool Contains(const Digest& key) const {
    (void)key;
    return false;
  }
  // Drops the entry for `key` if this store can (a local copy made redundant, e.g. by
  // a layer's tree); stores that cannot, or must keep it (a fleet's), do nothing.
  virtual absl::Status Remove(const Digest& key) {
    (void)key;
    return absl::OkStatus();
  }
  TierCounters& counters() { return counters_; }

 private:
  std::unique_ptr<MetricsRegistry> own_metrics_;  // when none is given; before counters_

 protected:
  TierCounters counters_;
};

}  // namespace clip

#endif  // CLIP_CACHE_SPAN_STORE_H_
