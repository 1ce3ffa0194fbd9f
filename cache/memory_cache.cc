#include "cache/memory_cache.h"

namespace clip {

absl::StatusOr<std::optional<SpanBytes>> MemoryCache::Get(const Digest& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    counters_.Miss();
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  counters_.Hit(it->second->second->size());
  return it->second->second;
}

absl::Status MemoryCache::Put(const Digest& key, const SpanBytes& bytes) {
  if (bytes->size() > max_bytes_) return absl::OkStatus();  // Would evict everything.
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return absl::OkStatus();
  }
  lru_.emplace_front(key, bytes);
  index_[key] = lru_.begin();
  bytes_ += bytes->size();
  counters_.bytes_written.Increment(static_cast<double>(bytes->size()));
  while (bytes_ > max_bytes_) {
    const Entry& victim = lru_.back();
    bytes_ -= victim.second->size();
    index_.erase(victim.first);
    lru_.pop_back();
    counters_.evictions.Increment();
  }
  return absl::OkStatus();
}

uint64_t MemoryCache::size_bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

absl::Status MemoryCache::Remove(const Digest& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return absl::OkStatus();
  bytes_ -= it->second->second->size();
  lru_.erase(it->second);
  index_.erase(it);
  return absl::OkStatus();
}

bool MemoryCache::Contains(const Digest& key) const {
  absl::MutexLock lock(&mu_);
  return index_.contains(key);
}

}  // namespace clip
