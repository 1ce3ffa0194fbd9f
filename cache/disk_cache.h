// DiskCache: the local disk tier. One file per span, named by its digest under a
// sharded directory (`<root>/ab/cd/abcd...`), written to `<root>/tmp/` first and
// renamed into place, so a running reader never sees a partial file. Nothing is
// fsynced (a cache is refilled cheaply): after a power loss a file may be torn or
// empty, and what protects readers then is the trailer's checksum, below. A
// size budget is kept with least-recently-used eviction; recency is the file's mtime
// (updated on every hit), so the order survives restarts. Only verified spans are put
// here (the origin and the remote tier check sha256), and each file carries a 16-byte
// trailer, `CLIPSPAN` + CRC32C of the data (little-endian u32) + format version (u32,
// 1), checked on every hit: a corrupt or truncated file is dropped and reported as a
// miss, never served. CRC32C (ISA-L, ~20x sha256's speed) catches what happens to local
// files (torn writes, bit rot, truncation); a root-only directory is trusted against
// forgery, and `verify_digest` re-checks sha256 on every hit for those who want it.
//
// Files are written and read with direct I/O (O_DIRECT) where the filesystem allows it,
// buffered otherwise (tmpfs): a span read through a FUSE mount is then cached once, in
// the mount's pages, not a second time as a cache file, and a fill costs no page-cache
// copy. Direct I/O goes through one block-aligned scratch buffer per calling thread
// (as large as the largest span it moved, ~2 MiB), kept for the thread's life.
//
// Two processes may share a root: files appear atomically, a file evicted by one is a
// miss for the other, and each keeps its own size accounting (Rescan() re-reads it).
//
//   CLIP_ASSIGN_OR_RETURN(auto disk, DiskCache::Open({.root = "/var/lib/clip/cache",
//                                                     .max_bytes = 20ull << 30}));
//
// Thread safety: safe for concurrent use. Lock order: mu_ is a leaf lock; no file I/O
// happens while it is held.
#ifndef CLIP_CACHE_DISK_CACHE_H_
#define CLIP_CACHE_DISK_CACHE_H_

#include <list>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "cache/span_store.h"

namespace clip {

class DiskCache final : public SpanStore {
 public:
  struct Options {
    std::string root;
    uint64_t max_bytes = uint64_t{10} << 30;
    bool verify_digest = false;          // also re-hash (sha256) every hit
    MetricsRegistry* metrics = nullptr;  // counters (null: the cache's own; span_store.h)
  };
  static constexpr size_t kTrailerSize = 16;

  static absl::StatusOr<std::unique_ptr<DiskCache>> Open(const Options& options);

  const char* name() const override { return "disk"; }
  absl::StatusOr<std::optional<SpanBytes>> Get(const Digest& key) override;
  absl::Status Put(const Digest& key, const SpanBytes& bytes) override;

  // True if a file for `key` exists (no read, no verification).
  bool Contains(const Digest& key) const override;
  uint64_t size_bytes() const;
  // Removes the entry for `key` (missing: fine): spans a layer's tree made redundant.
  absl::Status Remove(const Digest& key) override;
  // Re-reads the directory: entries written or evicted by other processes.
  absl::Status Rescan();
  std::string PathFor(const Digest& key) const;
  // Where a cache rooted at `root` keeps `key` (for readers that do not open the cache).
  static std::string PathIn(const std::string& root, const Digest& key);

 private:
  explicit DiskCache(Options options)
      : SpanStore("disk", options.metrics), options_(std::move(options)) {}
  void Record(const Digest& key, uint64_t size);  // insert or move to front
  void Forget(const Digest& key);
  void EvictToBudget();

  const Options options_;
  mutable absl::Mutex mu_;
  std::list<Digest> lru_ ABSL_GUARDED_BY(mu_);  // front = most recently used
  absl::flat_hash_map<Digest, std::pair<std::list<Digest>::iterator, uint64_t>> entries_
      ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace clip

#endif  // CLIP_CACHE_DISK_CACHE_H_
