// WriteBack: the one queue of cache writes below memory - the disk tier and the remote
// cache - so that a slow disk or a dead remote never slows a read. Bounded by the bytes
// it holds and drained by a few writer threads; over the bound a write is shed (counted
// in its tier's dropped_writes: a cache write is an optimisation). Every store's Put is
// synchronous; this is the only place writes wait.
//
//   WriteBack write_back({.max_queued_bytes = 256 << 20, .writers = 2});
//   write_back.Submit(disk, digest, bytes);  // false: shed
//   write_back.Flush();                      // tests, orderly shutdown
//
// Thread safety: safe for concurrent use. The destructor finishes the writes in flight
// and drops what is queued; stores must outlive it (or be done before they go: Flush).
#ifndef CLIP_CACHE_WRITE_BACK_H_
#define CLIP_CACHE_WRITE_BACK_H_

#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "cache/span_store.h"
#include "common/digest.h"
#include "common/logging.h"

namespace clip {

class WriteBack {
 public:
  struct Options {
    uint64_t max_queued_bytes = 256 << 20;
    int writers = 2;
  };
  explicit WriteBack(Options options);
  ~WriteBack();
  WriteBack(const WriteBack&) = delete;
  WriteBack& operator=(const WriteBack&) = delete;

  // Queues `tier->Put(key, bytes)`; false (and counted) when shed.
  bool Submit(SpanStore* tier, const Digest& key, SpanBytes bytes);
  // Waits until every queued write is done.
  void Flush();
  // Writes queued or in flight (the clip_cache_pending_writes gauge).
  size_t Pending() const;

 private:
  struct Item {
    SpanStore* tier;
    Digest key;
    SpanBytes bytes;
  };
  void WriterLoop();

  const Options options_;
  RateLimitedLog log_{absl::Seconds(10)};
  mutable absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> writers_;
};

}  // namespace clip

#endif  // CLIP_CACHE_WRITE_BACK_H_
