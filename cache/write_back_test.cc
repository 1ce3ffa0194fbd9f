#include "cache/write_back.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "cache/memory_cache.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

SpanBytes Bytes(size_t n, char c) { return std::make_shared<const std::string>(n, c); }

// A store whose writes wait until released, and that counts them.
class GatedStore final : public SpanStore {
 public:
  GatedStore() : SpanStore("gated", nullptr) {}
  const char* name() const override { return "gated"; }
  absl::StatusOr<std::optional<SpanBytes>> Get(const Digest&) override { return std::nullopt; }
  absl::Status Put(const Digest&, const SpanBytes&) override {
    if (started.fetch_add(1) == 0) entered.Notify();
    release.WaitForNotification();
    if (fail) return absl::UnavailableError("down");
    written.fetch_add(1);
    return absl::OkStatus();
  }
  absl::Notification entered;  // the first write began
  absl::Notification release;
  std::atomic<int> started{0}, written{0};
  bool fail = false;
};

TEST(WriteBackTest, WritesReachTheirTiersAndFlushWaitsForThem) {
  MemoryCache a(1 << 20), b(1 << 20);
  WriteBack wb({});
  const SpanBytes x = Bytes(100, 'x'), y = Bytes(200, 'y');
  EXPECT_TRUE(wb.Submit(&a, Digest::Of(*x), x));
  EXPECT_TRUE(wb.Submit(&b, Digest::Of(*y), y));
  wb.Flush();
  EXPECT_EQ(wb.Pending(), 0u);
  EXPECT_TRUE(a.Contains(Digest::Of(*x)));
  EXPECT_TRUE(b.Contains(Digest::Of(*y)));
  EXPECT_FALSE(a.Contains(Digest::Of(*y)));
}

// A stalled tier fills the queue up to its bytes, then writes are shed and counted in
// that tier's dropped_writes; nothing blocks the caller.
TEST(WriteBackTest, AStalledTierShedsWritesOverTheBoundInsteadOfBlocking) {
  GatedStore slow;
  WriteBack wb({/*max_queued_bytes=*/1000, /*writers=*/1});
  const SpanBytes s = Bytes(400, 's');
  EXPECT_TRUE(wb.Submit(&slow, Digest::Of(*s), s));  // taken by the writer, which waits
  slow.entered.WaitForNotification();
  EXPECT_TRUE(wb.Submit(&slow, Digest::Of(*s), s));   // queued: 400
  EXPECT_TRUE(wb.Submit(&slow, Digest::Of(*s), s));   // queued: 800
  EXPECT_FALSE(wb.Submit(&slow, Digest::Of(*s), s));  // 1200 > 1000: shed
  EXPECT_EQ(slow.counters().dropped_writes.Value(), 1);
  EXPECT_EQ(wb.Pending(), 3u);
  slow.release.Notify();
  wb.Flush();
  EXPECT_EQ(slow.written.load(), 3);
}

TEST(WriteBackTest, AFailedWriteIsLoggedAndTheQueueGoesOn) {
  GatedStore down;
  down.fail = true;
  down.release.Notify();
  MemoryCache up(1 << 20);
  WriteBack wb({});
  const SpanBytes s = Bytes(10, 'f');
  wb.Submit(&down, Digest::Of(*s), s);
  wb.Submit(&up, Digest::Of(*s), s);
  wb.Flush();
  EXPECT_EQ(down.written.load(), 0);
  EXPECT_TRUE(up.Contains(Digest::Of(*s)));
}

}  // namespace
}  // namespace clip
