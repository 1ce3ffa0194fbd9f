#include "common/cancellation.h"

#include <thread>

#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(CancellationTest, WaitEndsWhenCancelledNotAtTheTimeout) {
  Cancellation cancel;
  EXPECT_FALSE(cancel.cancelled());
  EXPECT_FALSE(cancel.WaitFor(absl::Milliseconds(1)));
  EXPECT_FALSE(cancel.WaitFor(absl::ZeroDuration()));
  std::thread canceller([&] { cancel.Cancel(); });
  // Far longer than any test may take: only Cancel can end this wait.
  EXPECT_TRUE(cancel.WaitFor(absl::Hours(1)));
  canceller.join();
  EXPECT_TRUE(cancel.cancelled());
  EXPECT_TRUE(cancel.flag()->load());
  cancel.Cancel();  // again: no effect
  EXPECT_TRUE(cancel.WaitFor(absl::Hours(1)));
}

}  // namespace
}  // namespace clip
