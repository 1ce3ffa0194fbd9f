#include "common/thread_pool.h"

#include <algorithm>
#include <atomic>

namespace clip {

ThreadPool::ThreadPool(int threads, size_t max_queued) : max_queued_(max_queued) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.emplace_back([this] {
      for (;;) {
        std::function<void()> job;
        {
          absl::MutexLock lock(&mu_);
          mu_.Await(absl::Condition(
              +[](ThreadPool* p)
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->stop_ || !p->jobs_.empty(); },
              this));
          if (jobs_.empty()) return;  // stop_ and nothing left
          job = std::move(jobs_.front());
          jobs_.pop_front();
          ++running_;
        }
        job();
        absl::MutexLock lock(&mu_);
        --running_;
      }
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (auto& t : threads_) t.join();
}

bool ThreadPool::Submit(std::function<void()> job) {
  absl::MutexLock lock(&mu_);
  if (stop_ || jobs_.size() >= max_queued_) return false;
  jobs_.push_back(std::move(job));
  return true;
}

void ThreadPool::Drain() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](ThreadPool* p)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->jobs_.empty() && p->running_ == 0; },
      this));
}

void ParallelFor(size_t n, int parallelism, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
  };
  const size_t helpers =
      std::min<size_t>(n, static_cast<size_t>(std::max(1, parallelism))) - (n > 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < helpers; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
}

}  // namespace clip
