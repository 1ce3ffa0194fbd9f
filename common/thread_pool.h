// ThreadPool: a few threads running fire-and-forget jobs from a bounded queue; and
// ParallelFor, for "do these N things, at most P at a time, and wait".
//
// The pool is for work that may be dropped: Submit refuses a job when the queue is
// full (cache fills, readahead, profile replay runs: never needed for correctness),
// and the caller decides what a refusal means. The daemon keeps one pool per kind of
// work (fills, readahead, replay) so one kind cannot starve another.
//
//   ThreadPool pool(4, 32);
//   if (!pool.Submit([=] { Prefetch(span); })) ...;  // full: skipped
//   ParallelFor(blobs.size(), 4, [&](size_t i) { got[i] = Fetch(blobs[i]); });
//
// Thread safety: safe for concurrent use. The destructor runs what is queued, then
// joins; jobs must not outlive what they capture.
#ifndef CLIP_COMMON_THREAD_POOL_H_
#define CLIP_COMMON_THREAD_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace clip {

class ThreadPool {
 public:
  explicit ThreadPool(int threads = 2, size_t max_queued = 64);
  ~ThreadPool();  // Runs what is queued, then stops.

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // False (and the job is dropped) when the queue holds max_queued jobs or the pool stops.
  bool Submit(std::function<void()> job);
  void Drain();  // Waits until the queue is empty and no job runs.

 private:
  const size_t max_queued_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Calls fn(0) .. fn(n - 1), each once, on up to `parallelism` threads (the caller's
// among them), and returns when every call has returned.
void ParallelFor(size_t n, int parallelism, const std::function<void(size_t)>& fn);

}  // namespace clip

#endif  // CLIP_COMMON_THREAD_POOL_H_
