#include "common/thread_pool.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(ThreadPoolTest, RunsJobsAndDropsPastTheBound) {
  ThreadPool pool(2, 3);
  absl::Notification release;
  std::atomic<int> ran{0}, started{0};
  // Two jobs hold both threads; three more fill the queue; the sixth is refused.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(pool.Submit([&] {
      ++started;
      release.WaitForNotification();
      ++ran;
    }));
  }
  while (started.load() < 2) std::this_thread::yield();
  ASSERT_TRUE(pool.Submit([&] { ++ran; }));
  ASSERT_TRUE(pool.Submit([&] { ++ran; }));
  ASSERT_TRUE(pool.Submit([&] { ++ran; }));
  EXPECT_FALSE(pool.Submit([&] { ++ran; }));
  release.Notify();
  pool.Drain();
  EXPECT_EQ(ran.load(), 5);
}

TEST(ThreadPoolTest, DestructorRunsWhatIsQueued) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(1, 100);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.Submit([&] { ++ran; }));
  }
  EXPECT_EQ(ran.load(), 50);
}

TEST(ParallelForTest, EachIndexOnceAtMostPAtATime) {
  for (size_t n : {0, 1, 7, 100}) {
    for (int p : {1, 3, 16}) {
      std::vector<std::atomic<int>> calls(n);
      std::atomic<int> now{0}, peak{0};
      absl::Mutex mu;
      std::set<std::thread::id> threads;
      ParallelFor(n, p, [&](size_t i) {
        int running = ++now;
        int seen = peak.load();
        while (running > seen && !peak.compare_exchange_weak(seen, running)) {
        }
        ++calls[i];
        {
          absl::MutexLock lock(&mu);
          threads.insert(std::this_thread::get_id());
        }
        std::this_thread::yield();
        --now;
      });
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(calls[i].load(), 1) << n << " " << p << " " << i;
      EXPECT_LE(peak.load(), p);
      EXPECT_LE(threads.size(), static_cast<size_t>(p));
    }
  }
}

}  // namespace
}  // namespace clip
