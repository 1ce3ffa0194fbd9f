#include "common/logging.h"

#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(RateLimitedLogTest, LimitsAndCounts) {
  RateLimitedLog limited(absl::Milliseconds(200));
  SetLogLevel(LogLevel::kError);  // Keep the test output quiet; limiting still applies.
  EXPECT_TRUE(limited.Log(LogLevel::kWarning, "test", "first"));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limited.Log(LogLevel::kWarning, "test", "again"));
  absl::SleepFor(absl::Milliseconds(250));
  EXPECT_TRUE(limited.Log(LogLevel::kWarning, "test", "after the interval"));
  EXPECT_EQ(GetLogLevel(), LogLevel::kError);
  SetLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace clip
