#include "lazy/profile_replay.h"

#include "absl/container/flat_hash_set.h"

namespace clip {

std::vector<std::pair<size_t, size_t>> ProfileReplay::Runs(const std::vector<uint32_t>& order,
                                                           size_t max_run) {
  const absl::flat_hash_set<uint32_t> wanted(order.begin(), order.end());
  absl::flat_hash_set<uint32_t> queued;
  std::vector<std::pair<size_t, size_t>> runs;
  for (uint32_t span : order) {
    if (queued.contains(span)) continue;
    // The run grows around `span` through wanted spans not queued yet: backwards first
    // (a profile often names a file's later span before an earlier one), then forwards.
    uint32_t first = span;
    while (first > 0 && span - first + 1 < max_run && wanted.contains(first - 1) &&
           !queued.contains(first - 1)) {
      --first;
    }
    uint32_t last = span;
    while (last - first + 1 < max_run && wanted.contains(last + 1) && !queued.contains(last + 1)) {
      ++last;
    }
    for (uint32_t s = first; s <= last; ++s) queued.insert(s);
    runs.emplace_back(first, last - first + 1);
  }
  return runs;
}

std::shared_ptr<ProfileReplay::Progress> ProfileReplay::Start(
    const std::shared_ptr<const TieredSpanSource>& spans, const std::vector<uint32_t>& order,
    ThreadPool* executor, Options options) {
  auto progress = std::make_shared<Progress>();
  std::weak_ptr<const TieredSpanSource> weak = spans;
  for (const auto& [first, count] : Runs(order, std::max<size_t>(1, options.max_run))) {
    progress->runs_queued.fetch_add(1);
    bool queued = executor->Submit([weak, progress, first = first, count = count] {
      std::shared_ptr<const TieredSpanSource> self =
          progress->cancelled.load() ? nullptr : weak.lock();
      if (self == nullptr) {
        progress->cancelled_runs.fetch_add(1);
      } else {
        absl::StatusOr<size_t> fetched = self->Warm(first, count);
        if (fetched.ok()) {
          progress->spans_fetched.fetch_add(*fetched);
        } else {
          progress->failed_runs.fetch_add(1);
        }
      }
      progress->runs_done.fetch_add(1);
    });
    if (!queued) {  // the executor is full or stopping: the rest is left to the readers
      progress->runs_queued.fetch_sub(1);
      break;
    }
  }
  return progress;
}

}  // namespace clip
