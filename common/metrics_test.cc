#include "common/metrics.h"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using Sample = MetricsRegistry::Sample;

TEST(CounterTest, IncrementsAndIgnoresNegative) {
  Counter c;
  c.Increment();
  c.Increment(2.5);
  c.Increment(-7);
  EXPECT_EQ(c.Value(), 3.5);
}

TEST(GaugeTest, SetAndAdd) {
  Gauge g;
  g.Set(10);
  g.Increment(-3);
  g.Increment(0.5);
  EXPECT_EQ(g.Value(), 7.5);
}

// Cumulative bucket counts of `h`, the +Inf bucket last.
std::vector<uint64_t> CumulativeCounts(const Histogram& h) {
  std::vector<uint64_t> out;
  for (const auto& b : h.Collect().histogram.bucket) out.push_back(b.cumulative_count);
  return out;
}

TEST(HistogramTest, BucketsAreCumulative) {
  std::vector<double> bounds =
      NormalizeBuckets({1, 0.1, 10, 1, std::numeric_limits<double>::infinity()});
  EXPECT_EQ(bounds, (std::vector<double>{0.1, 1, 10}));
  Histogram h(bounds);
  h.Observe(0.05);
  h.Observe(0.1);  // le is inclusive
  h.Observe(0.5);
  h.Observe(5);
  h.Observe(100);
  EXPECT_EQ(CumulativeCounts(h), (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(h.Collect().histogram.sample_count, 5u);
  EXPECT_DOUBLE_EQ(h.Collect().histogram.sample_sum, 105.65);
}

TEST(MetricsRegistryTest, RendersExactText) {
  MetricsRegistry r;
  r.GetCounter("clip_requests_total", "Requests served.", {{"method", "get"}}).Increment(3);
  r.GetCounter("clip_requests_total", "ignored", {{"method", "del"}}).Increment();
  r.GetGauge("clip_open_files", "Open files.").Set(-2.5);
  Histogram& h = r.GetHistogram("clip_latency_seconds", "Latency.", {{"op", "read"}}, {0.5, 0.1});
  h.Observe(0.05);
  h.Observe(0.3);
  h.Observe(2);
  EXPECT_EQ(r.Render(),
            "# HELP clip_latency_seconds Latency.\n"
            "# TYPE clip_latency_seconds histogram\n"
            "clip_latency_seconds_count{op=\"read\"} 3\n"
            "clip_latency_seconds_sum{op=\"read\"} 2.35\n"
            "clip_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 1\n"
            "clip_latency_seconds_bucket{op=\"read\",le=\"0.5\"} 2\n"
            "clip_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 3\n"
            "# HELP clip_open_files Open files.\n"
            "# TYPE clip_open_files gauge\n"
            "clip_open_files -2.5\n"
            "# HELP clip_requests_total Requests served.\n"
            "# TYPE clip_requests_total counter\n"
            "clip_requests_total{method=\"del\"} 1\n"
            "clip_requests_total{method=\"get\"} 3\n");
}

TEST(MetricsRegistryTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry r;
  r.GetGauge("g", "line one\nback\\slash \"quoted\"", {{"path", "a\\b\"c\"\nd"}, {"z", ""}}).Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP g line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE g gauge\n"
            "g{path=\"a\\\\b\\\"c\\\"\\nd\",z=\"\"} 1\n");
}

TEST(MetricsRegistryTest, FormatsSpecialValues) {
  MetricsRegistry r;
  r.GetGauge("g", "h", {{"v", "inf"}}).Set(std::numeric_limits<double>::infinity());
  r.GetGauge("g", "h", {{"v", "ninf"}}).Set(-std::numeric_limits<double>::infinity());
  r.GetGauge("g", "h", {{"v", "nan"}}).Set(std::nan(""));
  r.GetGauge("g", "h", {{"v", "big"}}).Set(12345678901234.0);
  r.GetGauge("g", "h", {{"v", "small"}}).Set(1e-9);
  EXPECT_EQ(r.Render(),
            "# HELP g h\n# TYPE g gauge\n"
            "g{v=\"big\"} 12345678901234\n"
            "g{v=\"inf\"} +Inf\n"
            "g{v=\"nan\"} Nan\n"  // Prometheus parses NaN in any case
            "g{v=\"ninf\"} -Inf\n"
            "g{v=\"small\"} 1e-09\n");
}

TEST(MetricsRegistryTest, SameLabelsReturnSameChild) {
  MetricsRegistry r;
  Counter& a = r.GetCounter("c", "h", {{"k", "v"}});
  Counter& b = r.GetCounter("c", "h", {{"k", "v"}});
  Counter& other = r.GetCounter("c", "h", {{"k", "w"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &other);
}

TEST(MetricsRegistryTest, DefaultLatencyBucketsAreSortedSeconds) {
  std::vector<double> b = MetricsRegistry::DefaultLatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 0.0001);
  EXPECT_EQ(b.back(), 10);
  EXPECT_EQ(NormalizeBuckets(b), b);
}

TEST(MetricsRegistryTest, ConcurrentIncrementsSumExactly) {
  MetricsRegistry r;
  constexpr int kThreads = 16;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, t] {
      // Half the threads look the child up every time, to race registration too.
      Counter& c = r.GetCounter("c_total", "h");
      Histogram& h = r.GetHistogram("h_seconds", "h", {}, {1});
      for (int i = 0; i < kPerThread; ++i) {
        (t % 2 == 0 ? c : r.GetCounter("c_total", "h")).Increment();
        r.GetGauge("g", "h").Increment(1);
        h.Observe(i % 2 == 0 ? 0.5 : 2);
        if (i % 1000 == 0) r.Render();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.GetCounter("c_total", "h").Value(), kThreads * kPerThread);
  EXPECT_EQ(r.GetGauge("g", "h").Value(), kThreads * kPerThread);
  Histogram& h = r.GetHistogram("h_seconds", "h", {}, {1});
  EXPECT_EQ(CumulativeCounts(h),
            (std::vector<uint64_t>{kThreads * kPerThread / 2, kThreads * kPerThread}));
  EXPECT_EQ(h.Collect().histogram.sample_sum, 1.25 * kThreads * kPerThread);
}

TEST(MetricsRegistryTest, CollectorSamplesAtRenderAndUnregisters) {
  MetricsRegistry r;
  int entries = 4;
  auto handle = r.AddCollector("cache_entries", "Entries.", MetricsRegistry::Type::kGauge,
                               [&entries](std::vector<Sample>* out) {
                                 out->push_back({{{"tier", "disk"}}, double(entries)});
                               });
  auto second = r.AddCollector("cache_entries", "Entries.", MetricsRegistry::Type::kGauge,
                               [](std::vector<Sample>* out) {
                                 out->push_back({{{"tier", "mem"}}, 1});
                                 out->push_back({{{"bad-name", "x"}}, 2});  // skipped
                               });
  EXPECT_EQ(r.Render(),
            "# HELP cache_entries Entries.\n# TYPE cache_entries gauge\n"
            "cache_entries{tier=\"disk\"} 4\ncache_entries{tier=\"mem\"} 1\n");
  entries = 5;
  second.Reset();
  EXPECT_EQ(r.Render(),
            "# HELP cache_entries Entries.\n# TYPE cache_entries gauge\n"
            "cache_entries{tier=\"disk\"} 5\n");
  {
    MetricsRegistry::CollectorHandle moved = std::move(handle);
    EXPECT_EQ(r.Render(),
              "# HELP cache_entries Entries.\n# TYPE cache_entries gauge\n"
              "cache_entries{tier=\"disk\"} 5\n");
  }
  EXPECT_EQ(r.Render(), "");
  // The family is gone, so the name may come back with another type.
  r.GetCounter("cache_entries", "Now a counter.").Increment();
  EXPECT_EQ(r.Render(),
            "# HELP cache_entries Now a counter.\n# TYPE cache_entries counter\n"
            "cache_entries 1\n");
}

TEST(MetricsRegistryTest, CollectorSharesFamilyWithChildren) {
  MetricsRegistry r;
  r.GetCounter("ops_total", "Ops.", {{"op", "a"}}).Increment(2);
  auto handle = r.AddCollector("ops_total", "Ops.", MetricsRegistry::Type::kCounter,
                               [](std::vector<Sample>* out) {
                                 out->push_back({{{"op", "b"}}, 7});
                               });
  EXPECT_EQ(r.Render(),
            "# HELP ops_total Ops.\n# TYPE ops_total counter\n"
            "ops_total{op=\"a\"} 2\nops_total{op=\"b\"} 7\n");
}

TEST(MetricsRegistryTest, CallbackMayUseRegistry) {
  MetricsRegistry r;
  auto handle =
      r.AddCollector("a", "h", MetricsRegistry::Type::kGauge, [&r](std::vector<Sample>* out) {
        r.GetCounter("b_total", "h").Increment();
        out->push_back({{}, 1});
      });
  r.Render();
  EXPECT_EQ(r.GetCounter("b_total", "h").Value(), 1);
}

TEST(MetricsRegistryTest, HandleDestructionWaitsForInFlightCallback) {
  MetricsRegistry r;
  absl::Notification in_callback;
  absl::Notification release;
  std::atomic<bool> owner_alive{true};
  auto handle = std::make_unique<MetricsRegistry::CollectorHandle>(
      r.AddCollector("slow", "h", MetricsRegistry::Type::kGauge, [&](std::vector<Sample>* out) {
        in_callback.Notify();
        release.WaitForNotification();
        EXPECT_TRUE(owner_alive.load());
        out->push_back({{}, 1});
      }));
  std::thread scrape([&r] { r.Render(); });
  in_callback.WaitForNotification();
  std::atomic<bool> destroyed{false};
  std::thread owner([&] {
    handle.reset();  // must block until the callback returns
    destroyed = true;
    owner_alive = false;
  });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(destroyed.load());
  release.Notify();
  owner.join();
  scrape.join();
  EXPECT_TRUE(destroyed.load());
  EXPECT_EQ(r.Render(), "");
}

TEST(MetricsRegistryTest, HandleMayOutliveRegistry) {
  MetricsRegistry::CollectorHandle handle;
  {
    MetricsRegistry r;
    handle = r.AddCollector("x", "h", MetricsRegistry::Type::kGauge, [](std::vector<Sample>*) {});
  }
  handle.Reset();
}

TEST(MetricsRegistryDeathTest, TypeMismatchAborts) {
  MetricsRegistry r;
  r.GetCounter("m", "h");
  EXPECT_DEATH(r.GetGauge("m", "h"), "metric \"m\" registered as counter and as gauge");
}

TEST(MetricsRegistryDeathTest, InvalidNamesAbort) {
  MetricsRegistry r;
  EXPECT_DEATH(r.GetCounter("1bad", "h"), "invalid metric name");
  EXPECT_DEATH(r.GetCounter("ok", "h", {{"__reserved", "v"}}), "label name");
  EXPECT_DEATH(r.GetCounter("ok", "h", {{"a", "1"}, {"a", "2"}}), "label name");
  EXPECT_DEATH(r.GetHistogram("hist", "h", {{"le", "1"}}), "label name");
}

TEST(MetricsRegistryDeathTest, HistogramBoundsMismatchAborts) {
  MetricsRegistry r;
  r.GetHistogram("hist", "h", {}, {1, 2});
  r.GetHistogram("hist", "h", {{"a", "b"}}, {2, 1});  // same once normalized
  EXPECT_DEATH(r.GetHistogram("hist", "h", {}, {1, 3}), "different bucket bounds");
}

TEST(DefaultMetricsTest, IsOneRegistry) { EXPECT_EQ(&DefaultMetrics(), &DefaultMetrics()); }

}  // namespace
}  // namespace clip
