#include "lazy/background_fill.h"

#include "absl/time/clock.h"

namespace clip {

BackgroundFill::BackgroundFill(std::shared_ptr<const TieredSpanSource> spans, Options options)
    : spans_(std::move(spans)), options_(options) {}

BackgroundFill::~BackgroundFill() {
  Cancel();
  Wait();
}

void BackgroundFill::Start() {
  running_.store(std::max(1, options_.concurrency));
  for (int i = 0; i < std::max(1, options_.concurrency); ++i) {
    workers_.emplace_back([this] { Worker(); });
  }
}

void BackgroundFill::Cancel() { cancel_.Cancel(); }

void BackgroundFill::Wait() {
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
}

bool BackgroundFill::done() const { return running_.load() == 0; }

BackgroundFill::Progress BackgroundFill::progress() const {
  Progress p;
  p.spans_done = done_.load();
  p.spans_total = SpanCount(spans_->index());
  p.bytes_fetched = fetched_.load();
  p.failures = failures_.load();
  p.pauses = pauses_.load();
  return p;
}

void BackgroundFill::Throttle(uint64_t bytes) {
  if (options_.bytes_per_second == 0 || bytes == 0) return;
  absl::Duration wait;
  {
    absl::MutexLock lock(&bucket_mu_);
    absl::Time now = absl::Now();
    double rate = static_cast<double>(options_.bytes_per_second);
    // The bucket holds at most one second of budget.
    tokens_ = std::min(rate, tokens_ + absl::ToDoubleSeconds(now - refill_) * rate);
    refill_ = now;
    tokens_ -= static_cast<double>(bytes);
    wait = tokens_ < 0 ? absl::Seconds(-tokens_ / rate) : absl::ZeroDuration();
  }
  cancel_.WaitFor(wait);
}

void BackgroundFill::Worker() {
  const size_t total = SpanCount(spans_->index());
  std::vector<size_t> failed;
  for (;;) {
    if (cancel_.cancelled()) break;
    // Foreground reads first: wait while any is in flight.
    bool paused = false;
    while (spans_->foreground_waiting() > 0 && !cancel_.cancelled()) {
      if (!paused) pauses_.fetch_add(1);
      paused = true;
      cancel_.WaitFor(options_.pause_poll);
    }
    size_t span = next_.fetch_add(1);
    if (span >= total) break;
    absl::StatusOr<uint64_t> fetched = spans_->Prefetch(span);
    if (!fetched.ok()) {
      failed.push_back(span);
      continue;
    }
    fetched_.fetch_add(*fetched);
    done_.fetch_add(1);
    Throttle(*fetched);
  }
  for (size_t span : failed) {  // One more try for spans that failed (outage blips).
    if (cancel_.cancelled()) break;
    absl::StatusOr<uint64_t> fetched = spans_->Prefetch(span);
    if (fetched.ok()) {
      fetched_.fetch_add(*fetched);
      done_.fetch_add(1);
      Throttle(*fetched);
    } else {
      failures_.fetch_add(1);
    }
  }
  running_.fetch_sub(1);
}

}  // namespace clip
