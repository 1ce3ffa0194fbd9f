// TieredSpanSource: the verified read path of a layer's spans through the cache
// tiers: memory -> disk -> remote -> origin (the caller's SpanSource; in practice the
// index's SpanInflater over the registry).
//
// A remote hit back-fills the disk; an origin fetch fills disk and remote (disk and
// remote writes go through the node's write-back queue so the reader does not wait for
// them). Concurrent misses of one span fetch it once (single flight): later callers
// wait for the first one's result. A miss is not an error; a failing tier is logged
// (rate-limited), counted and skipped, so a broken disk or remote only costs speed.
// The memory, disk and remote stores are shared by every layer (keys are content
// digests, so identical spans of different layers and images are stored once).
//
//   TieredSpanSource spans(index, origin, {.memory = &mem, .disk = disk.get()});
//   LayerReader reader(index, shared_spans);
//
// Thread safety: safe for concurrent use. Lock order: flights_mu_ is a leaf; it is
// never held across a tier call.
#ifndef CLIP_LAZY_TIERED_SPAN_SOURCE_H_
#define CLIP_LAZY_TIERED_SPAN_SOURCE_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "cache/span_store.h"
#include "cache/write_back.h"
#include "clip/index/v1/index.pb.h"
#include "common/logging.h"
#include "common/thread_pool.h"
#include "index/span_source.h"

namespace clip {

// The spans a layer's readers asked for, each once, in first-read order, with the time
// of the first and of the latest new span: what an access profile is made of
// (index/access_profile.h). Safe for concurrent use.
class SpanAccessLog {
 public:
  SpanAccessLog() : started_(absl::Now()) {}
  void Note(size_t span);
  std::vector<uint32_t> spans() const;
  absl::Time started() const { return started_; }
  absl::Time last_new() const;  // started() while empty

 private:
  const absl::Time started_;
  mutable absl::Mutex mu_;
  std::vector<uint32_t> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint32_t> seen_ ABSL_GUARDED_BY(mu_);
  absl::Time last_new_ ABSL_GUARDED_BY(mu_) = started_;
};

struct CacheTiers {
  SpanStore* memory = nullptr;  // each optional; must outlive the source
  SpanStore* disk = nullptr;
  SpanStore* remote = nullptr;
  WriteBack* write_back = nullptr;  // disk and remote writes (null: inline)
  // Readahead: when a layer's spans are read in order, the next `readahead_spans` are
  // fetched, inflated and verified into memory on this executor (the other core) while
  // the reader consumes the current one. Null or 0: none.
  ThreadPool* readahead = nullptr;
  int readahead_spans = 0;
};

// Readahead: after a read of span s, up to readahead_spans spans after s are fetched
// when the reader goes on: it read s - 1 before (in order), or its read starts a file
// that goes on past s (ReadHint.file_start). A file read never reads ahead past the
// file's last span; at that last span an in-order reader (files read in archive order)
// gets one span ahead. Reads without a file (GetSpan) are bounded by the layer only.
// Readahead jobs hold only a weak reference: a layer unmounted (its source freed) ends
// its readahead; a failed readahead stops it until the reader is sequential again. At
// most 2 * readahead_spans spans of one layer are in flight, and what they fill is the
// memory tier, bounded by its own budget.
class TieredSpanSource final : public SpanSource,
                               public std::enable_shared_from_this<TieredSpanSource> {
 public:
  TieredSpanSource(std::shared_ptr<const index::v1::LayerIndex> index,
                   std::shared_ptr<const SpanSource> origin, CacheTiers tiers);

  absl::StatusOr<std::shared_ptr<const std::string>> GetSpan(size_t span) const override;
  absl::StatusOr<std::shared_ptr<const std::string>> GetSpanForRead(
      size_t span, const ReadHint& hint) const override;

  // Makes span `span` durable locally (disk, else memory) without returning it; for
  // the background fill. Returns the bytes that had to be fetched (0 if cached).
  absl::StatusOr<uint64_t> Prefetch(size_t span) const;

  // Makes spans [first, first + count) present in memory (and on disk) ahead of their
  // readers, for an access profile's replay: spans on disk or in the remote tier come
  // from there, the rest from the origin in one GetSpans call per adjacent run (one
  // Range request). Spans another fetch already has in flight are left to it; a reader
  // of a span this call has in flight waits for it (single flight). Returns the spans
  // fetched from the origin.
  absl::StatusOr<size_t> Warm(size_t first, size_t count) const;

  // Recording: while a log is set, every span a reader asks for (GetSpan,
  // GetSpanForRead; not readahead, prefetch or Warm) is noted in it.
  void SetAccessLog(std::shared_ptr<SpanAccessLog> log) const;

  // Foreground GetSpan calls in progress (the background fill yields to them).
  int foreground_waiting() const { return foreground_.load(std::memory_order_relaxed); }
  uint64_t origin_fetches() const { return origin_fetches_.load(std::memory_order_relaxed); }
  // Spans asked for by readers (any tier; not prefetches): how busy the layer is.
  uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }
  // Spans fetched ahead of the reader (tests, metrics).
  uint64_t readaheads() const { return readaheads_.load(std::memory_order_relaxed); }
  const index::v1::LayerIndex& index() const { return *index_; }

 private:
  struct Flight {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::StatusOr<SpanBytes> result ABSL_GUARDED_BY(mu) = absl::UnknownError("pending");
  };

  // Below the memory tier: disk -> remote -> origin, with fills.
  absl::StatusOr<SpanBytes> FetchBelowMemory(size_t span, const Digest& key,
                                             bool fill_memory) const;
  absl::StatusOr<SpanBytes> SingleFlight(size_t span, const Digest& key, bool fill_memory) const;
  std::optional<SpanBytes> TryTier(SpanStore* tier, const Digest& key) const;
  void Fill(SpanStore* tier, const Digest& key, const SpanBytes& bytes) const;
  // After a read of `span`: fetch the next ones if the reader goes on (see the class
  // comment).
  void MaybeReadAhead(size_t span, const ReadHint& hint) const;

  std::shared_ptr<const index::v1::LayerIndex> index_;
  std::shared_ptr<const SpanSource> origin_;
  CacheTiers tiers_;
  mutable RateLimitedLog log_{absl::Seconds(10)};
  mutable std::atomic<int> foreground_{0};
  mutable std::atomic<uint64_t> origin_fetches_{0};
  mutable std::atomic<uint64_t> reads_{0};
  mutable std::atomic<int64_t> last_span_{-2};
  mutable std::atomic<int> readahead_inflight_{0};
  mutable std::atomic<uint64_t> readaheads_{0};
  // Becomes the leader of `key`'s flight if none is in flight (then returns it).
  std::shared_ptr<Flight> Lead(const Digest& key) const;
  void Land(const Digest& key, const std::shared_ptr<Flight>& flight,
            absl::StatusOr<SpanBytes> result) const;

  mutable absl::Mutex log_mu_;
  mutable std::shared_ptr<SpanAccessLog> access_log_ ABSL_GUARDED_BY(log_mu_);
  mutable absl::Mutex flights_mu_;
  mutable absl::flat_hash_map<Digest, std::shared_ptr<Flight>> flights_
      ABSL_GUARDED_BY(flights_mu_);
};

}  // namespace clip

#endif  // CLIP_LAZY_TIERED_SPAN_SOURCE_H_
