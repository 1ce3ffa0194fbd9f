#include "snapshotter/daemon_config.h"

#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(DaemonConfigTest, DefaultsAndOverrides) {
  auto c = ParseDaemonConfig("root = \"/r\"\nlog_level = \"debug\"\n", "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->root, "/r");
  EXPECT_EQ(c->address, kDefaultAddress);
  EXPECT_EQ(c->log_level, "debug");
  auto d = LoadDaemonConfig("/nonexistent/config.toml", false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->root, kDefaultRoot);
  EXPECT_EQ(LoadDaemonConfig("/nonexistent/config.toml", true).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DaemonConfigTest, RejectsTyposAndBadValues) {
  EXPECT_EQ(ParseDaemonConfig("roots = \"/r\"", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDaemonConfig("root = 5", "t").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDaemonConfig("log_level = \"loud\"", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDaemonConfig("root = ", "t").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace clip
