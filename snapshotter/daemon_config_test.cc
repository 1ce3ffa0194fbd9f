#include "snapshotter/daemon_config.h"

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

TEST(DaemonConfigTest, DefaultsAndOverrides) {
  auto c = ParseDaemonConfig("root = \"/r\"\nlog_level = \"debug\"\n", "t.toml");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->root, "/r");
  EXPECT_EQ(c->address, kDefaultAddress);
  EXPECT_EQ(c->log_level, "debug");
  auto d = LoadDaemonConfig("/nonexistent/config.toml", false);
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->root, kDefaultRoot);
  EXPECT_EQ(LoadDaemonConfig("/nonexistent/config.toml", true).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(DaemonConfigTest, RegistryAndCacheSettings) {
  auto c = ParseDaemonConfig(
      "hosts_dir = \"/etc/containerd/certs.d\"\nplain_http = [\"127.0.0.1:5000\"]\n"
      "cache_max_bytes = 1048576\ndocker_config = \"/etc/clip/auth.json\"\n",
      "t");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->hosts_dir, "/etc/containerd/certs.d");
  EXPECT_EQ(c->plain_http, std::vector<std::string>{"127.0.0.1:5000"});
  EXPECT_EQ(c->cache_max_bytes, 1048576);
  EXPECT_EQ(c->docker_config, "/etc/clip/auth.json");
  EXPECT_THAT(ParseDaemonConfig("plain_http = \"x\"", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDaemonConfig("cache_max_bytes = -1", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// The memory span cache and the FUSE worker count: today's values by default, checked.
TEST(DaemonConfigTest, MemoryCacheAndFuseWorkers) {
  auto d = ParseDaemonConfig("", "t");
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->memory_cache_bytes, int64_t{32} << 20);
  EXPECT_EQ(d->fuse_workers, 4);
  EXPECT_EQ(d->readahead_spans, 6);
  EXPECT_TRUE(d->access_profiles.enabled);
  EXPECT_EQ(d->access_profiles.replay_concurrency, 8);
  auto p = ParseDaemonConfig(
      "[access_profiles]\nenabled = false\nquiet_seconds = 2.5\nreplay_concurrency = 3\n"
      "max_run_spans = 2\nmax_seconds = 30",
      "t");
  ASSERT_THAT(p, IsOk());
  EXPECT_FALSE(p->access_profiles.enabled);
  EXPECT_EQ(p->access_profiles.quiet_seconds, 2.5);
  EXPECT_EQ(p->access_profiles.max_seconds, 30);
  EXPECT_EQ(p->access_profiles.replay_concurrency, 3);
  EXPECT_EQ(p->access_profiles.max_run_spans, 2);
  EXPECT_THAT(ParseDaemonConfig("[access_profiles]\nreplay_concurrency = 0", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDaemonConfig("[access_profiles]\nquiet_seconds = -1", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDaemonConfig("[access_profiles]\nenabled = 1", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDaemonConfig("[access_profiles]\ntypo = 1", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(ParseDaemonConfig("readahead_spans = 0", "t")->readahead_spans, 0);
  EXPECT_THAT(ParseDaemonConfig("readahead_spans = 17", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto c = ParseDaemonConfig("memory_cache_bytes = 0\nfuse_workers = 16\n", "t");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->memory_cache_bytes, 0);
  EXPECT_EQ(c->fuse_workers, 16);
  for (const char* bad :
       {"memory_cache_bytes = -1", "memory_cache_bytes = \"1G\"", "memory_cache_bytes = 1.5",
        "fuse_workers = 0", "fuse_workers = 257", "fuse_workers = true"}) {
    auto r = ParseDaemonConfig(bad, "t.toml");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("t.toml"), absl::string_view::npos) << bad;
  }
}

TEST(DaemonConfigTest, IndexTrust) {
  EXPECT_EQ(ParseDaemonConfig("", "t")->index_trust, "bound");
  for (const char* mode : {"bound", "fleet", "referrers"}) {
    auto c = ParseDaemonConfig(absl::StrCat("index_trust = \"", mode, "\""), "t");
    ASSERT_THAT(c, IsOk());
    EXPECT_EQ(c->index_trust, mode);
  }
  auto bad = ParseDaemonConfig("index_trust = \"all\"", "t.toml");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("index_trust"));
  EXPECT_EQ(ParseDaemonConfig("index_trust = true", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DaemonConfigTest, CriImageProxy) {
  auto d = ParseDaemonConfig("", "t");
  EXPECT_EQ(d->cri_image_proxy, "");
  EXPECT_EQ(d->cri_image_upstream, "/run/containerd/containerd.sock");
  auto c = ParseDaemonConfig(
      "cri_image_proxy = \"/run/clip/cri.sock\"\ncri_image_upstream = \"/run/k/c.sock\"", "t");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->cri_image_proxy, "/run/clip/cri.sock");
  EXPECT_EQ(c->cri_image_upstream, "/run/k/c.sock");
}

TEST(DaemonConfigTest, Takeover) {
  auto d = ParseDaemonConfig("", "t");
  ASSERT_THAT(d, IsOk());
  EXPECT_TRUE(d->takeover);
  EXPECT_EQ(d->fd_store, "auto");
  auto c = ParseDaemonConfig(
      "takeover = true\nfd_store = \"holder\"\nfd_holder_socket = \"/run/h.sock\"\n"
      "fd_holder_binary = \"/usr/local/bin/clip-fd-holder\"\n",
      "t");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->fd_store, "holder");
  EXPECT_EQ(c->fd_holder_socket, "/run/h.sock");
  EXPECT_EQ(ParseDaemonConfig("fd_store = \"disk\"", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseDaemonConfig("takeover = 1", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DaemonConfigTest, OperationsAndBackgroundFill) {
  auto c = ParseDaemonConfig(
      "metrics_address = \"127.0.0.1:9102\"\nremote_cache = \"http://c:8080\"\n"
      "[background_fill]\nenabled = true\nbytes_per_second = 1000\nconcurrency = 3\n"
      "delay_seconds = 0.5\n",
      "t");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->metrics_address, "127.0.0.1:9102");
  EXPECT_EQ(c->remote_cache, "http://c:8080");
  EXPECT_TRUE(c->background_fill.enabled);
  EXPECT_EQ(c->background_fill.bytes_per_second, 1000);
  EXPECT_EQ(c->background_fill.concurrency, 3);
  EXPECT_DOUBLE_EQ(c->background_fill.delay_seconds, 0.5);
  auto d = ParseDaemonConfig("", "t");
  ASSERT_THAT(d, IsOk());
  EXPECT_FALSE(d->background_fill.enabled);
  EXPECT_TRUE(d->metrics_address.empty());
  EXPECT_THAT(ParseDaemonConfig("[background_fill]\nenable = true\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDaemonConfig("[background_fill]\nconcurrency = 0\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDaemonConfig("[background_fill]\nenabled = 1\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDaemonConfig("background_fill = 1\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(d->index_on_first_use);
  EXPECT_TRUE(ParseDaemonConfig("index_on_first_use = true\n", "t")->index_on_first_use);
  EXPECT_TRUE(d->local_trees);
  EXPECT_FALSE(ParseDaemonConfig("local_trees = false\n", "t")->local_trees);
  EXPECT_TRUE(d->passthrough);
  EXPECT_FALSE(ParseDaemonConfig("passthrough = false\n", "t")->passthrough);
  EXPECT_EQ(d->passthrough_min_file_bytes, 256 << 10);
  EXPECT_EQ(ParseDaemonConfig("passthrough_min_file_bytes = 0\n", "t")->passthrough_min_file_bytes,
            0);
  EXPECT_THAT(ParseDaemonConfig("passthrough_min_file_bytes = -1\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDaemonConfig("local_trees = 1\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(d->index_small_file_interval, 0);
  EXPECT_EQ(
      ParseDaemonConfig("index_small_file_interval = 524288\n", "t")->index_small_file_interval,
      524288);
  for (const char* bad :
       {"index_small_file_interval = -1\n", "index_small_file_interval = 4194304\n",
        "index_small_file_interval = \"512K\"\n"}) {
    EXPECT_THAT(ParseDaemonConfig(bad, "t"), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(ParseDaemonConfig("index_on_first_use = \"yes\"\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
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
