// BackgroundFill: makes a whole layer local after it is mounted, so a hot image stops
// depending on the network. It walks the layer's spans with bounded concurrency and a
// bandwidth limit (token bucket over the bytes it had to fetch), puts each on disk
// through TieredSpanSource::Prefetch (single-flight shared with foreground reads, the
// memory tier untouched), and pauses while foreground reads are waiting so it never
// delays a container's own reads. Failures are counted; a failed span is retried at
// the end once.
//
//   BackgroundFill fill(spans, {.concurrency = 2, .bytes_per_second = 50 << 20});
//   fill.Start();
//   ...
//   fill.Cancel();  // or Wait()
//
// Thread safety: Start/Cancel/Wait/progress are safe to call from any thread.
#ifndef CLIP_LAZY_BACKGROUND_FILL_H_
#define CLIP_LAZY_BACKGROUND_FILL_H_

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/cancellation.h"
#include "lazy/tiered_span_source.h"

namespace clip {

class BackgroundFill {
 public:
  struct Options {
    int concurrency = 2;
    uint64_t bytes_per_second = 0;  // 0: unlimited
    absl::Duration pause_poll = absl::Milliseconds(20);
  };
  struct Progress {
    uint64_t spans_done = 0;  // filled or already local
    uint64_t spans_total = 0;
    uint64_t bytes_fetched = 0;
    uint64_t failures = 0;
    uint64_t pauses = 0;
  };

  BackgroundFill(std::shared_ptr<const TieredSpanSource> spans, Options options);
  ~BackgroundFill();  // Cancels and joins.

  void Start();
  void Cancel();
  void Wait();
  bool done() const;
  Progress progress() const;

 private:
  void Worker();
  void Throttle(uint64_t bytes);

  std::shared_ptr<const TieredSpanSource> spans_;
  const Options options_;
  std::atomic<size_t> next_{0};
  Cancellation cancel_;
  std::atomic<uint64_t> done_{0}, fetched_{0}, failures_{0}, pauses_{0};
  absl::Mutex bucket_mu_;
  double tokens_ ABSL_GUARDED_BY(bucket_mu_) = 0;
  absl::Time refill_ ABSL_GUARDED_BY(bucket_mu_) = absl::Now();
  std::vector<std::thread> workers_;
  std::atomic<int> running_{0};
};

}  // namespace clip

#endif  // CLIP_LAZY_BACKGROUND_FILL_H_
