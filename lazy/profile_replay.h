// ProfileReplay: fetches the spans an access profile names ahead of the container that
// is about to read them (issue 17). The profile's spans are grouped into runs of
// adjacent span numbers (up to `max_run` spans: one Range request each) and queued, in
// the order the profile first names them, on a shared executor whose thread count
// bounds how many runs are fetched at once, across all layers. Each run goes through
// TieredSpanSource::Warm: cached spans are not fetched again, and a reader of a span in
// flight waits for it. Unmounting the layer cancels what is still queued: the owner
// calls Progress::Cancel (running jobs would otherwise keep the source alive for the
// next one), and jobs hold only a weak reference to the source besides.
//
//   ProfileReplay::Start(spans, profile_spans, &replay_executor, {.max_run = 4});
//
// Thread safety: Start and the counters are safe for concurrent use.
#ifndef CLIP_LAZY_PROFILE_REPLAY_H_
#define CLIP_LAZY_PROFILE_REPLAY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "lazy/tiered_span_source.h"

namespace clip {

class ProfileReplay {
 public:
  struct Options {
    size_t max_run = 4;  // spans per Range request (4 x ~2 MiB)
  };
  struct Progress {
    std::atomic<size_t> runs_queued{0};
    std::atomic<size_t> runs_done{0};
    std::atomic<size_t> spans_fetched{0};  // from the origin
    std::atomic<size_t> failed_runs{0};
    std::atomic<size_t> cancelled_runs{0};  // the layer was unmounted first
    std::atomic<bool> cancelled{false};
    void Cancel() { cancelled.store(true); }
  };

  // Runs of adjacent spans, in the order `order` first names one of their spans.
  static std::vector<std::pair<size_t, size_t>> Runs(const std::vector<uint32_t>& order,
                                                     size_t max_run);

  // Queues the replay of `order` for `spans`; returns its progress counters (kept alive
  // by the jobs and the caller).
  static std::shared_ptr<Progress> Start(const std::shared_ptr<const TieredSpanSource>& spans,
                                         const std::vector<uint32_t>& order, ThreadPool* executor,
                                         Options options);
};

}  // namespace clip

#endif  // CLIP_LAZY_PROFILE_REPLAY_H_
