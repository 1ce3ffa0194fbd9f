#include "cache/memory_cache.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

SpanBytes Bytes(size_t n, char c) { return std::make_shared<const std::string>(n, c); }

TEST(MemoryCacheTest, LruBoundedInBytes) {
  MemoryCache mem(300);
  Digest a = Digest::Of("a"), b = Digest::Of("b"), c = Digest::Of("c"), d = Digest::Of("d");
  ASSERT_THAT(mem.Put(a, Bytes(100, 'a')), IsOk());
  ASSERT_THAT(mem.Put(b, Bytes(100, 'b')), IsOk());
  ASSERT_THAT(mem.Put(c, Bytes(100, 'c')), IsOk());
  ASSERT_TRUE((*mem.Get(a)).has_value());  // a is now most recent; b is the LRU
  ASSERT_THAT(mem.Put(d, Bytes(100, 'd')), IsOk());
  EXPECT_FALSE((*mem.Get(b)).has_value());
  EXPECT_TRUE((*mem.Get(a)).has_value());
  EXPECT_TRUE((*mem.Get(c)).has_value());
  EXPECT_EQ(mem.size_bytes(), 300u);
  EXPECT_EQ(mem.counters().evictions.Value(), 1u);
  EXPECT_EQ(mem.counters().misses.Value(), 1u);
  EXPECT_EQ(mem.counters().hits.Value(), 3u);
  ASSERT_THAT(mem.Put(Digest::Of("huge"), Bytes(301, 'h')), IsOk());  // Never cached.
  EXPECT_FALSE((*mem.Get(Digest::Of("huge"))).has_value());
  ASSERT_THAT(mem.Remove(c), IsOk());  // a layer's tree made it redundant
  EXPECT_FALSE(mem.Contains(c));
  EXPECT_EQ(mem.size_bytes(), 200u);
  ASSERT_THAT(mem.Remove(c), IsOk());                // gone already: fine
  ASSERT_THAT(mem.Put(b, Bytes(100, 'b')), IsOk());  // room again, nothing evicted
  EXPECT_TRUE(mem.Contains(a) && mem.Contains(b) && mem.Contains(d));
  EXPECT_EQ(mem.size_bytes(), 300u);
}

}  // namespace
}  // namespace clip
