#include "cache/write_back.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace clip {

WriteBack::WriteBack(Options options) : options_(options) {
  for (int i = 0; i < std::max(1, options_.writers); ++i) {
    writers_.emplace_back([this] { WriterLoop(); });
  }
}

WriteBack::~WriteBack() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    queue_.clear();
    queued_bytes_ = 0;
  }
  for (auto& t : writers_) t.join();
}

bool WriteBack::Submit(SpanStore* tier, const Digest& key, SpanBytes bytes) {
  absl::MutexLock lock(&mu_);
  if (stop_ || queued_bytes_ + bytes->size() > options_.max_queued_bytes) {
    tier->counters().dropped_writes.Increment();
    return false;
  }
  queued_bytes_ += bytes->size();
  queue_.push_back({tier, key, std::move(bytes)});
  return true;
}

size_t WriteBack::Pending() const {
  absl::MutexLock lock(&mu_);
  return queue_.size() + static_cast<size_t>(busy_);
}

void WriteBack::Flush() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](WriteBack* w)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->queue_.empty() && w->busy_ == 0; },
      this));
}

void WriteBack::WriterLoop() {
  for (;;) {
    Item item;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WriteBack* w)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->stop_ || !w->queue_.empty(); },
          this));
      if (stop_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= item.bytes->size();
      ++busy_;
    }
    absl::Status st = item.tier->Put(item.key, item.bytes);
    if (!st.ok()) {
      log_.Log(LogLevel::kWarning, "cache",
               absl::StrCat(item.tier->name(), " tier write failed: ", st.message()));
    }
    absl::MutexLock lock(&mu_);
    --busy_;
  }
}

}  // namespace clip
