// MemoryCache: the hot tier, an LRU of decompressed spans bounded in bytes. Entries
// are shared immutable buffers, so a hit is a reference count, not a copy.
//
//   MemoryCache mem(256 << 20);
//   mem.Put(digest, bytes);
//   if (auto hit = *mem.Get(digest)) Serve(**hit);
//
// Only verified bytes are put here (the tiers below verify), so Get does not re-hash.
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_CACHE_MEMORY_CACHE_H_
#define CLIP_CACHE_MEMORY_CACHE_H_

#include <list>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "cache/span_store.h"

namespace clip {

class MemoryCache final : public SpanStore {
 public:
  // Counters go to `metrics` (null: the cache's own registry; see span_store.h).
  explicit MemoryCache(uint64_t max_bytes, MetricsRegistry* metrics = nullptr)
      : SpanStore("memory", metrics), max_bytes_(max_bytes) {}
  const char* name() const override { return "memory"; }
  absl::StatusOr<std::optional<SpanBytes>> Get(const Digest& key) override;
  absl::Status Put(const Digest& key, const SpanBytes& bytes) override;
  bool Contains(const Digest& key) const override;
  // Drops the entry (a layer's tree made it redundant: its data is the tree's now).
  absl::Status Remove(const Digest& key) override;
  uint64_t size_bytes() const;

 private:
  using Entry = std::pair<Digest, SpanBytes>;
  const uint64_t max_bytes_;
  mutable absl::Mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // front = most recently used
  absl::flat_hash_map<Digest, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace clip

#endif  // CLIP_CACHE_MEMORY_CACHE_H_
