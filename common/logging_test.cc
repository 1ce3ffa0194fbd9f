#include "common/logging.h"

#include "gtest/gtest.h"

namespace clip {
namespace {

// A fake clock: the test decides when time passes, so no window can be missed on a
// slow or busy machine.
absl::Time g_now = absl::UnixEpoch();
absl::Time FakeNow() { return g_now; }

TEST(RateLimitedLogTest, LimitsAndCounts) {
  RateLimitedLog limited(absl::Milliseconds(200), &FakeNow);
  SetLogLevel(LogLevel::kError);  // Keep the test output quiet; limiting still applies.
  EXPECT_TRUE(limited.Log(LogLevel::kWarning, "test", "first"));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limited.Log(LogLevel::kWarning, "test", "again"));
  g_now += absl::Milliseconds(199);
  EXPECT_FALSE(limited.Log(LogLevel::kWarning, "test", "just inside the interval"));
  g_now += absl::Milliseconds(1);
  EXPECT_TRUE(limited.Log(LogLevel::kWarning, "test", "after the interval"));
  EXPECT_FALSE(limited.Log(LogLevel::kWarning, "test", "again"));
  EXPECT_EQ(GetLogLevel(), LogLevel::kError);
  SetLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace clip
