// The tiered read path with fakes for every tier and the origin, plus real nginx as
// the remote tier shared by two "nodes" with separate disk caches.
#include "lazy/tiered_span_source.h"

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/disk_cache.h"
#include "cache/memory_cache.h"
#include "cache/remote_cache.h"
#include "cache/testing/nginx_server.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "lazy/background_fill.h"
#include "lazy/profile_replay.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

// A layer of `n` spans of `size` random bytes: an index with their digests, and an
// origin that serves them (counting calls, optionally slow or failing).
struct FakeLayer {
  std::shared_ptr<index::v1::LayerIndex> index = std::make_shared<index::v1::LayerIndex>();
  std::vector<std::string> spans;
};

FakeLayer MakeLayer(int n, size_t size, uint64_t seed) {
  FakeLayer l;
  std::mt19937_64 rng(seed);
  for (int i = 0; i < n; ++i) {
    std::string s(size, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    auto* cp = l.index->add_checkpoints();
    cp->set_uncompressed_offset(static_cast<uint64_t>(i) * size);
    Digest d = Digest::Of(s);
    cp->set_span_sha256(reinterpret_cast<const char*>(d.bytes().data()), Digest::kSize);
    l.spans.push_back(std::move(s));
  }
  l.index->set_uncompressed_size(static_cast<uint64_t>(n) * size);
  return l;
}

RemoteCache::Options RemoteAt(const std::string& endpoint) {
  RemoteCache::Options o;
  o.endpoint = endpoint;
  return o;
}

BackgroundFill::Options FillOptions(int concurrency, uint64_t rate,
                                    absl::Duration poll = absl::Milliseconds(20)) {
  BackgroundFill::Options o;
  o.concurrency = concurrency;
  o.bytes_per_second = rate;
  o.pause_poll = poll;
  return o;
}

class FakeOrigin : public SpanSource {
 public:
  explicit FakeOrigin(const FakeLayer& l) : layer_(l) {}
  absl::StatusOr<std::shared_ptr<const std::string>> GetSpan(size_t span) const override {
    calls.fetch_add(1);
    if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
    if (fail.load() || static_cast<int>(span) == fail_span.load()) {
      return absl::UnavailableError("origin down");
    }
    return std::make_shared<const std::string>(layer_.spans[span]);
  }
  absl::StatusOr<std::vector<std::shared_ptr<const std::string>>> GetSpans(
      size_t first, size_t count) const override {
    runs.fetch_add(1);
    const int now = concurrent.fetch_add(1) + 1;
    int seen = max_concurrent.load();
    while (now > seen && !max_concurrent.compare_exchange_weak(seen, now)) {
    }
    auto got = SpanSource::GetSpans(first, count);
    concurrent.fetch_sub(1);
    return got;
  }
  mutable std::atomic<int> calls{0};
  mutable std::atomic<int> runs{0};  // GetSpans calls (one Range request each)
  mutable std::atomic<int> concurrent{0};
  mutable std::atomic<int> max_concurrent{0};
  absl::Duration delay = absl::ZeroDuration();
  std::atomic<bool> fail{false};
  std::atomic<int> fail_span{-1};

 private:
  const FakeLayer& layer_;
};

// A tier that is broken: every call fails.
class BrokenStore : public SpanStore {
 public:
  BrokenStore() : SpanStore("broken", nullptr) {}
  const char* name() const override { return "broken"; }
  absl::StatusOr<std::optional<SpanBytes>> Get(const Digest&) override {
    counters_.errors.Increment();
    return absl::InternalError("disk on fire");
  }
  absl::Status Put(const Digest&, const SpanBytes&) override {
    counters_.errors.Increment();
    return absl::InternalError("disk on fire");
  }
};

TEST(TieredSpanSourceTest, OriginFillsTiersAndHitsComeFromTheTop) {
  FakeLayer layer = MakeLayer(4, 100000, 1);
  auto origin = std::make_shared<FakeOrigin>(layer);
  MemoryCache mem(1 << 20);
  auto disk = DiskCache::Open({testing::MakeTempDir("d"), 1 << 30}).value();
  TieredSpanSource spans(layer.index, origin, {&mem, disk.get(), nullptr, nullptr});
  auto s = spans.GetSpan(2);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(**s, layer.spans[2]);
  EXPECT_EQ(origin->calls.load(), 1);
  EXPECT_TRUE(disk->Contains(Digest::Of(layer.spans[2])));
  ASSERT_THAT(spans.GetSpan(2), IsOk());  // memory hit
  EXPECT_EQ(mem.counters().hits.Value(), 1u);
  // A fresh memory tier: the disk serves it, the origin is not asked again.
  MemoryCache mem2(1 << 20);
  TieredSpanSource again(layer.index, origin, {&mem2, disk.get(), nullptr, nullptr});
  ASSERT_THAT(again.GetSpan(2), IsOk());
  EXPECT_EQ(origin->calls.load(), 1);
  EXPECT_EQ(disk->counters().hits.Value(), 1u);
  EXPECT_EQ(again.GetSpan(9).status().code(), absl::StatusCode::kOutOfRange);
}

CacheTiers WithReadahead(SpanStore* mem, ThreadPool* readahead, int spans) {
  CacheTiers t{mem, nullptr, nullptr, nullptr};
  t.readahead = readahead;
  t.readahead_spans = spans;
  return t;
}

// Reading in order fetches the next spans into memory ahead of the reader; the reader
// then finds them there. Reading out of order fetches nothing ahead.
TEST(TieredSpanSourceTest, ReadaheadFollowsAnInOrderReader) {
  FakeLayer layer = MakeLayer(8, 50000, 2);
  auto origin = std::make_shared<FakeOrigin>(layer);
  MemoryCache mem(1 << 20);
  ThreadPool readahead(2, 16);
  auto spans =
      std::make_shared<TieredSpanSource>(layer.index, origin, WithReadahead(&mem, &readahead, 2));
  ASSERT_THAT(spans->GetSpan(5), IsOk());
  ASSERT_THAT(spans->GetSpan(1), IsOk());  // out of order: nothing ahead
  readahead.Drain();
  EXPECT_EQ(spans->readaheads(), 0u);
  EXPECT_EQ(origin->calls.load(), 2);
  ASSERT_THAT(spans->GetSpan(2), IsOk());  // 1, 2: in order, so 3 and 4 come ahead
  readahead.Drain();
  EXPECT_EQ(spans->readaheads(), 2u);
  EXPECT_EQ(origin->calls.load(), 5);
  EXPECT_TRUE(mem.Contains(Digest::Of(layer.spans[3])));
  EXPECT_TRUE(mem.Contains(Digest::Of(layer.spans[4])));
  auto s3 = spans->GetSpan(3);  // from memory; 4 is there, 5 too (read before)
  ASSERT_THAT(s3, IsOk());
  EXPECT_EQ(**s3, layer.spans[3]);
  readahead.Drain();
  EXPECT_EQ(origin->calls.load(), 5);
  ASSERT_THAT(spans->GetSpan(4), IsOk());  // ahead again: 6 (5 is in memory)
  readahead.Drain();
  EXPECT_EQ(origin->calls.load(), 6);
  ASSERT_THAT(spans->GetSpan(6), IsOk());
  ASSERT_THAT(spans->GetSpan(7), IsOk());  // the last span: nothing past the end
  readahead.Drain();
  EXPECT_EQ(origin->calls.load(), 7);
  // A source not owned by a shared_ptr never reads ahead (nothing could keep it alive).
  MemoryCache mem2(1 << 20);
  TieredSpanSource plain(layer.index, origin, WithReadahead(&mem2, &readahead, 2));
  ASSERT_THAT(plain.GetSpan(0), IsOk());
  ASSERT_THAT(plain.GetSpan(1), IsOk());
  readahead.Drain();
  EXPECT_EQ(plain.readaheads(), 0u);
}

// Readahead fetches nothing twice and nothing past what the reader's order names; a
// layer unmounted meanwhile (its source freed) ends its queued readahead; a failed
// readahead stops it until the reader is in order again.
TEST(TieredSpanSourceTest, ReadaheadIsBoundedCancelledAndStopsOnErrors) {
  FakeLayer layer = MakeLayer(40, 20000, 3);
  auto origin = std::make_shared<FakeOrigin>(layer);
  origin->delay = absl::Milliseconds(100);
  MemoryCache mem(8 << 20);
  ThreadPool readahead(1, 64);
  auto spans =
      std::make_shared<TieredSpanSource>(layer.index, origin, WithReadahead(&mem, &readahead, 2));
  for (size_t i = 0; i < 10; ++i) ASSERT_THAT(spans->GetSpan(i), IsOk());
  spans.reset();  // "unmounted" while readahead jobs wait in the queue (ASan: no use)
  readahead.Drain();
  // Each span fetched once (single flight, kept in memory): the ten read and at most
  // two ahead of the last one, never the 20 that ten triggers would name.
  EXPECT_LE(origin->calls.load(), 12);

  origin->delay = absl::ZeroDuration();
  origin->calls = 0;
  MemoryCache mem2(8 << 20);
  auto again =
      std::make_shared<TieredSpanSource>(layer.index, origin, WithReadahead(&mem2, &readahead, 2));
  ASSERT_THAT(again->GetSpan(0), IsOk());
  origin->fail = true;
  EXPECT_THAT(again->GetSpan(1),
              StatusIs(absl::StatusCode::kUnavailable));  // a failed read starts no readahead
  readahead.Drain();
  EXPECT_EQ(again->readaheads(), 0u);
  origin->fail = false;
  MemoryCache mem3(8 << 20);
  auto one =
      std::make_shared<TieredSpanSource>(layer.index, origin, WithReadahead(&mem3, &readahead, 1));
  origin->fail_span = 4;
  ASSERT_THAT(one->GetSpan(2), IsOk());
  ASSERT_THAT(one->GetSpan(3), IsOk());  // in order: 4 ahead, which fails
  readahead.Drain();
  EXPECT_EQ(one->readaheads(), 0u);
  const int calls = origin->calls.load();
  ASSERT_THAT(one->GetSpan(10), IsOk());  // the failure reset the order: nothing ahead
  readahead.Drain();
  EXPECT_EQ(origin->calls.load(), calls + 1);
  ASSERT_THAT(one->GetSpan(11), IsOk());  // in order again: 12 ahead
  readahead.Drain();
  EXPECT_EQ(one->readaheads(), 1u);
}

// File reads (ReadHint): a read that starts a file reads ahead at once, never past the
// file's last span; an in-order reader at a file's last span gets one span more; a file
// inside one span, or a read in the middle of a file out of order, reads nothing ahead.
TEST(TieredSpanSourceTest, ReadaheadStaysInsideTheFileBeingRead) {
  FakeLayer layer = MakeLayer(40, 20000, 4);
  auto origin = std::make_shared<FakeOrigin>(layer);
  MemoryCache mem(8 << 20);
  ThreadPool readahead(2, 64);
  auto spans =
      std::make_shared<TieredSpanSource>(layer.index, origin, WithReadahead(&mem, &readahead, 6));
  auto in_memory = [&](size_t i) { return mem.Contains(Digest::Of(layer.spans[i])); };
  ReadHint file;  // a file in spans 5..8
  file.last_span = 8;
  file.file_start = true;
  ASSERT_THAT(spans->GetSpanForRead(5, file), IsOk());
  readahead.Drain();
  EXPECT_EQ(spans->readaheads(), 3u);  // 6, 7, 8: not 9..11
  EXPECT_TRUE(in_memory(8));
  EXPECT_FALSE(in_memory(9));
  file.file_start = false;
  for (size_t i = 6; i <= 8; ++i) ASSERT_THAT(spans->GetSpanForRead(i, file), IsOk());
  readahead.Drain();
  EXPECT_EQ(spans->readaheads(), 4u);  // in order at the file's end: 9, one more
  EXPECT_TRUE(in_memory(9));
  EXPECT_FALSE(in_memory(10));
  const int calls = origin->calls.load();
  ReadHint small;  // a file inside span 20, and the middle of a file read out of order
  small.last_span = 20;
  small.file_start = true;
  ASSERT_THAT(spans->GetSpanForRead(20, small), IsOk());
  ReadHint middle;
  middle.last_span = 35;
  ASSERT_THAT(spans->GetSpanForRead(30, middle), IsOk());
  readahead.Drain();
  EXPECT_EQ(origin->calls.load(), calls + 2);
  EXPECT_EQ(spans->readaheads(), 4u);
}

// Recording notes what readers ask for, each span once in first-read order; readahead
// and Warm are not readers.
TEST(TieredSpanSourceTest, AccessLogRecordsReadersOnly) {
  FakeLayer layer = MakeLayer(12, 10000, 5);
  auto origin = std::make_shared<FakeOrigin>(layer);
  MemoryCache mem(8 << 20);
  ThreadPool readahead(2, 16);
  auto spans =
      std::make_shared<TieredSpanSource>(layer.index, origin, WithReadahead(&mem, &readahead, 2));
  auto log = std::make_shared<SpanAccessLog>();
  spans->SetAccessLog(log);
  ASSERT_THAT(spans->GetSpan(5), IsOk());
  ASSERT_THAT(spans->GetSpan(6), IsOk());  // in order: 7, 8 ahead, not recorded
  ASSERT_THAT(spans->Warm(10, 2), IsOk());
  ASSERT_THAT(spans->GetSpan(1), IsOk());
  ASSERT_THAT(spans->GetSpan(5), IsOk());  // again: once
  readahead.Drain();
  EXPECT_EQ(log->spans(), (std::vector<uint32_t>{5, 6, 1}));
  EXPECT_GE(log->last_new(), log->started());
  spans->SetAccessLog(nullptr);
  ASSERT_THAT(spans->GetSpan(3), IsOk());
  EXPECT_EQ(log->spans().size(), 3u);
}

// Warm: adjacent missing spans come from the origin in one run each; spans in memory or
// on disk are not fetched again; a reader of a span being warmed waits for it rather
// than fetching it; a failed run is an error and leaves nothing cached.
TEST(TieredSpanSourceTest, WarmFetchesAdjacentRunsOnceAndReadersWait) {
  FakeLayer layer = MakeLayer(10, 30000, 6);
  auto origin = std::make_shared<FakeOrigin>(layer);
  MemoryCache mem(8 << 20);
  auto disk = DiskCache::Open({testing::MakeTempDir("w"), 1 << 30}).value();
  WriteBack fills({});
  auto spans = std::make_shared<TieredSpanSource>(layer.index, origin,
                                                  CacheTiers{&mem, disk.get(), nullptr, &fills});
  ASSERT_THAT(spans->GetSpan(3), IsOk());  // in memory (and on disk) already
  origin->runs = 0;
  origin->calls = 0;
  auto warmed = spans->Warm(2, 4);  // 2 | 3 cached | 4, 5
  ASSERT_THAT(warmed, IsOk());
  EXPECT_EQ(*warmed, 3u);
  EXPECT_EQ(origin->runs.load(), 2);
  EXPECT_EQ(origin->calls.load(), 3);
  for (size_t i = 2; i < 6; ++i) EXPECT_TRUE(mem.Contains(Digest::Of(layer.spans[i]))) << i;
  fills.Flush();
  EXPECT_TRUE(disk->Contains(Digest::Of(layer.spans[5])));

  origin->delay = absl::Milliseconds(200);
  origin->calls = 0;
  std::thread warm([&] { EXPECT_THAT(spans->Warm(6, 3), IsOk()); });
  absl::SleepFor(absl::Milliseconds(50));
  auto s7 = spans->GetSpan(7);  // in flight in the warm run: waits, no fetch of its own
  warm.join();
  ASSERT_THAT(s7, IsOk());
  EXPECT_EQ(**s7, layer.spans[7]);
  EXPECT_EQ(origin->calls.load(), 3);

  origin->delay = absl::ZeroDuration();
  origin->fail = true;
  EXPECT_THAT(spans->Warm(9, 1), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(mem.Contains(Digest::Of(layer.spans[9])));
  origin->fail = false;
  EXPECT_THAT(spans->GetSpan(9), IsOk());  // nothing left in flight
  EXPECT_EQ(spans->Warm(9, 2).status().code(), absl::StatusCode::kOutOfRange);
}

// Runs: adjacent wanted spans, up to max_run, in the order the profile first names them.
TEST(ProfileReplayTest, RunsCoalesceAdjacentSpansInProfileOrder) {
  using Runs = std::vector<std::pair<size_t, size_t>>;
  EXPECT_EQ(ProfileReplay::Runs({7, 3, 4, 5, 6, 20, 2, 9}, 4),
            (Runs{{4, 4}, {2, 2}, {20, 1}, {9, 1}}));  // 7 grows back to 4
  EXPECT_EQ(ProfileReplay::Runs({0, 1, 2, 3, 4, 5, 6, 7, 8}, 4), (Runs{{0, 4}, {4, 4}, {8, 1}}));
  EXPECT_EQ(ProfileReplay::Runs({5, 4, 3}, 1), (Runs{{5, 1}, {4, 1}, {3, 1}}));
  EXPECT_TRUE(ProfileReplay::Runs({}, 4).empty());
}

// A replay fetches every profiled span once, no more runs at once than the executor
// has threads; a layer unmounted before its queued runs start cancels them; a failing
// origin is counted, not fatal.
TEST(ProfileReplayTest, BoundedCancelledOnUnmountAndFailuresCounted) {
  FakeLayer layer = MakeLayer(64, 20000, 7);
  auto origin = std::make_shared<FakeOrigin>(layer);
  origin->delay = absl::Milliseconds(20);
  MemoryCache mem(16 << 20);
  ThreadPool replay(3, 256);
  auto spans = std::make_shared<TieredSpanSource>(layer.index, origin,
                                                  CacheTiers{&mem, nullptr, nullptr, nullptr});
  std::vector<uint32_t> order;
  for (uint32_t s = 0; s < 64; s += 2) order.push_back(s);  // 32 runs of one span
  auto progress = ProfileReplay::Start(spans, order, &replay, {});
  replay.Drain();
  EXPECT_EQ(progress->runs_done.load(), 32u);
  EXPECT_EQ(progress->spans_fetched.load(), 32u);
  EXPECT_EQ(origin->calls.load(), 32);
  EXPECT_LE(origin->max_concurrent.load(), 3);
  EXPECT_GE(origin->max_concurrent.load(), 2);  // it did run in parallel
  for (uint32_t s : order) EXPECT_TRUE(mem.Contains(Digest::Of(layer.spans[s]))) << s;

  origin->calls = 0;
  origin->delay = absl::Milliseconds(100);
  MemoryCache mem2(16 << 20);
  auto doomed = std::make_shared<TieredSpanSource>(layer.index, origin,
                                                   CacheTiers{&mem2, nullptr, nullptr, nullptr});
  auto cancelled = ProfileReplay::Start(doomed, order, &replay, {});
  absl::SleepFor(absl::Milliseconds(30));
  cancelled->Cancel();  // unmounted: queued runs must not run
  doomed.reset();
  replay.Drain();
  EXPECT_EQ(cancelled->runs_done.load(), 32u);
  EXPECT_GE(cancelled->cancelled_runs.load(), 20u);
  EXPECT_LE(origin->calls.load(), 12);

  origin->delay = absl::ZeroDuration();
  origin->fail = true;
  MemoryCache mem3(16 << 20);
  auto failing = std::make_shared<TieredSpanSource>(layer.index, origin,
                                                    CacheTiers{&mem3, nullptr, nullptr, nullptr});
  auto failed = ProfileReplay::Start(failing, {1, 2, 9}, &replay, {});
  replay.Drain();
  EXPECT_EQ(failed->failed_runs.load(), 2u);
  EXPECT_EQ(failed->spans_fetched.load(), 0u);
}

TEST(TieredSpanSourceTest, SingleFlightUnder16Readers) {
  FakeLayer layer = MakeLayer(2, 50000, 2);
  auto origin = std::make_shared<FakeOrigin>(layer);
  origin->delay = absl::Milliseconds(200);
  MemoryCache mem(1 << 20);
  TieredSpanSource spans(layer.index, origin, {&mem, nullptr, nullptr, nullptr});
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      auto s = spans.GetSpan(1);
      if (!s.ok() || **s != layer.spans[1]) ++bad;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(origin->calls.load(), 1);
}

TEST(TieredSpanSourceTest, BrokenTiersAreSkippedAndCorruptDiskIsRefetched) {
  FakeLayer layer = MakeLayer(3, 30000, 3);
  auto origin = std::make_shared<FakeOrigin>(layer);
  BrokenStore broken_disk, broken_remote;
  TieredSpanSource spans(layer.index, origin, {nullptr, &broken_disk, &broken_remote, nullptr});
  auto s = spans.GetSpan(0);
  ASSERT_THAT(s, IsOk());  // Served from the origin despite both tiers.
  EXPECT_EQ(**s, layer.spans[0]);
  EXPECT_GE(broken_disk.counters().errors.Value(), 2u);

  auto disk = DiskCache::Open({testing::MakeTempDir("d"), 1 << 30}).value();
  TieredSpanSource with_disk(layer.index, origin, {nullptr, disk.get(), nullptr, nullptr});
  ASSERT_THAT(with_disk.GetSpan(1), IsOk());
  ASSERT_EQ(truncate(disk->PathFor(Digest::Of(layer.spans[1])).c_str(), 10), 0);
  int before = origin->calls.load();
  auto again = with_disk.GetSpan(1);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(**again, layer.spans[1]);
  EXPECT_EQ(origin->calls.load(), before + 1);

  origin->fail = true;
  EXPECT_EQ(with_disk.GetSpan(2).status().code(), absl::StatusCode::kUnavailable);
}

// Two nodes with separate disk caches share one nginx remote: the second node's reads
// never reach the origin. A dead remote only costs speed.
TEST(TieredSpanSourceTest, RemoteNginxSharedByTwoNodes) {
  auto nginx = testing::NginxCas::Start();
  ASSERT_THAT(nginx, IsOk());
  FakeLayer layer = MakeLayer(6, 200000, 4);
  auto origin = std::make_shared<FakeOrigin>(layer);
  RemoteCache remote(RemoteAt((*nginx)->endpoint()));
  WriteBack executor({});
  auto disk1 = DiskCache::Open({testing::MakeTempDir("n1"), 1 << 30}).value();
  TieredSpanSource node1(layer.index, origin, {nullptr, disk1.get(), &remote, &executor});
  for (size_t i = 0; i < 6; ++i) ASSERT_THAT(node1.GetSpan(i), IsOk());
  executor.Flush();
  EXPECT_EQ(executor.Pending(), 0u);
  EXPECT_EQ(origin->calls.load(), 6);
  EXPECT_EQ(remote.counters().bytes_written.Value(), 6u * 200000);

  auto disk2 = DiskCache::Open({testing::MakeTempDir("n2"), 1 << 30}).value();
  TieredSpanSource node2(layer.index, origin, {nullptr, disk2.get(), &remote, &executor});
  for (size_t i = 0; i < 6; ++i) {
    auto s = node2.GetSpan(i);
    ASSERT_THAT(s, IsOk());
    EXPECT_EQ(**s, layer.spans[i]);
  }
  executor.Flush();
  EXPECT_EQ(origin->calls.load(), 6);  // Nothing new from the origin.
  EXPECT_EQ(remote.counters().hits.Value(), 6u);
  EXPECT_TRUE(disk2->Contains(Digest::Of(layer.spans[5])));  // Back-filled.

  // A corrupted remote entry is never served: the origin is asked instead.
  std::string hex = Digest::Of(layer.spans[0]).Hex();
  ASSERT_THAT(testing::RunCommand("printf garbage > " + (*nginx)->PathFor(hex)), IsOk());
  auto disk3 = DiskCache::Open({testing::MakeTempDir("n3"), 1 << 30}).value();
  TieredSpanSource node3(layer.index, origin, {nullptr, disk3.get(), &remote, &executor});
  auto s0 = node3.GetSpan(0);
  ASSERT_THAT(s0, IsOk());
  EXPECT_EQ(**s0, layer.spans[0]);
  EXPECT_EQ(remote.counters().corrupt.Value(), 1u);
  EXPECT_EQ(origin->calls.load(), 7);
  executor.Flush();

  // Dead remote: reads still work; writes are shed without blocking.
  RemoteCache dead(RemoteAt("http://127.0.0.1:" + std::to_string(testing::PickFreePort().value())));
  auto disk4 = DiskCache::Open({testing::MakeTempDir("n4"), 1 << 30}).value();
  TieredSpanSource node4(layer.index, origin, {nullptr, disk4.get(), &dead, &executor});
  absl::Time start = absl::Now();
  for (size_t i = 0; i < 6; ++i) ASSERT_THAT(node4.GetSpan(i), IsOk());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_GE(dead.counters().errors.Value(), 6u);
  executor.Flush();
}

TEST(BackgroundFillTest, FillsEverySpanWithinTheBandwidthLimit) {
  FakeLayer layer = MakeLayer(10, 100000, 5);
  auto origin = std::make_shared<FakeOrigin>(layer);
  auto disk = DiskCache::Open({testing::MakeTempDir("bf"), 1 << 30}).value();
  MemoryCache mem(1 << 20);
  auto spans = std::make_shared<TieredSpanSource>(layer.index, origin,
                                                  CacheTiers{&mem, disk.get(), nullptr, nullptr});
  absl::Time start = absl::Now();
  BackgroundFill fill(spans, FillOptions(2, 400000));  // 1 MB at 400 kB/s: >= ~1.5 s
  fill.Start();
  fill.Wait();
  absl::Duration took = absl::Now() - start;
  auto p = fill.progress();
  EXPECT_EQ(p.spans_done, 10u);
  EXPECT_EQ(p.bytes_fetched, 1000000u);
  EXPECT_EQ(p.failures, 0u);
  EXPECT_GE(took, absl::Milliseconds(1300));
  for (const auto& s : layer.spans) EXPECT_TRUE(disk->Contains(Digest::Of(s)));
  EXPECT_EQ(mem.size_bytes(), 0u);                 // The hot set is left alone.
  BackgroundFill again(spans, FillOptions(2, 0));  // Everything local: nothing fetched.
  again.Start();
  again.Wait();
  EXPECT_EQ(again.progress().bytes_fetched, 0u);
  EXPECT_EQ(origin->calls.load(), 10);
}

TEST(BackgroundFillTest, YieldsToForegroundReadsAndCancels) {
  FakeLayer layer = MakeLayer(40, 10000, 6);
  auto origin = std::make_shared<FakeOrigin>(layer);
  origin->delay = absl::Milliseconds(30);
  auto disk = DiskCache::Open({testing::MakeTempDir("bg"), 1 << 30}).value();
  auto spans = std::make_shared<TieredSpanSource>(
      layer.index, origin, CacheTiers{nullptr, disk.get(), nullptr, nullptr});
  BackgroundFill fill(spans, FillOptions(1, 0, absl::Milliseconds(5)));
  fill.Start();
  // Foreground reads while the fill runs: it must pause for them.
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&, i] {
      for (int j = 0; j < 5; ++j) (void)spans->GetSpan(static_cast<size_t>(39 - i * 5 - j));
    });
  }
  for (auto& r : readers) r.join();
  fill.Cancel();
  fill.Wait();
  EXPECT_TRUE(fill.done());
  EXPECT_GT(fill.progress().pauses, 0u);
  EXPECT_LT(fill.progress().spans_done, 40u);  // Cancelled before the end.
}

}  // namespace
}  // namespace clip
