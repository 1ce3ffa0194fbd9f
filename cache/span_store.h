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

namespace clip {

using SpanBytes = std::shared_ptr<const std::string>;

// Per-tier counters for the daemon's metrics.
struct TierCounters {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> corrupt{0};         // entries found bad, dropped
  std::atomic<uint64_t> dropped_writes{0};  // writes shed under back-pressure

  void Hit(uint64_t bytes) {
    hits.fetch_add(1, std::memory_order_relaxed);
    bytes_read.fetch_add(bytes, std::memory_order_relaxed);
  }
  void Miss() { misses.fetch_add(1, std::memory_order_relaxed); }
};

class SpanStore {
 public:
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
  TierCounters& counters() { return counters_; }

 protected:
  TierCounters counters_;
};

}  // namespace clip

#endif  // CLIP_CACHE_SPAN_STORE_H_
