// Cancellation: a one-way "stop" that long-running work checks and waits on. Cancel()
// sets it once and wakes every WaitFor at once, so a backoff or a throttle ends the
// moment its owner gives up, not at the next poll. flag() is the same state as an
// atomic for code that can only poll (curl's progress callback).
//
//   Cancellation cancel;
//   if (cancel.WaitFor(backoff)) return absl::CancelledError("request cancelled");
//   ...
//   cancel.Cancel();  // from any thread
//
// Thread safety: safe for concurrent use.
#ifndef CLIP_COMMON_CANCELLATION_H_
#define CLIP_COMMON_CANCELLATION_H_

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace clip {

class Cancellation {
 public:
  // Idempotent.
  void Cancel() {
    if (!flag_.exchange(true)) notification_.Notify();
  }
  bool cancelled() const { return flag_.load(); }
  // Waits up to `d`, less if cancelled meanwhile; returns whether it is cancelled.
  bool WaitFor(absl::Duration d) const {
    if (d > absl::ZeroDuration()) notification_.WaitForNotificationWithTimeout(d);
    return cancelled();
  }
  const std::atomic<bool>* flag() const { return &flag_; }

 private:
  std::atomic<bool> flag_{false};
  absl::Notification notification_;
};

}  // namespace clip

#endif  // CLIP_COMMON_CANCELLATION_H_
