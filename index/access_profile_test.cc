// Access profile codec: round trip, every framing check, and the stale / foreign
// checks against an index.
#include "index/access_profile.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

using index::v1::AccessProfile;
using index::v1::LayerIndex;

LayerIndex IndexWithSpans(int n, char salt) {
  LayerIndex index;
  index.set_layer_digest("sha256:" + std::string(64, 'a'));
  for (int i = 0; i < n; ++i) {
    auto* cp = index.add_checkpoints();
    cp->set_span_sha256(std::string(32, static_cast<char>(salt + i)));
  }
  return index;
}

TEST(AccessProfileTest, RoundTripKeepsFirstReadOrderOnce) {
  LayerIndex index = IndexWithSpans(10, 'x');
  AccessProfile p = MakeProfile(index, {7, 0, 7, 3, 0, 9});
  p.set_recorded_unix_seconds(1700000000);
  p.set_recorded_millis(2500);
  auto back = DecodeProfile(EncodeProfile(p));
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(std::vector<uint32_t>(back->spans().begin(), back->spans().end()),
            (std::vector<uint32_t>{7, 0, 3, 9}));
  EXPECT_EQ(back->span_count(), 10u);
  EXPECT_EQ(back->recorded_millis(), 2500u);
  EXPECT_THAT(CheckProfileFor(*back, index), IsOk());
}

TEST(AccessProfileTest, CorruptTruncatedAndOtherVersionsAreRefused) {
  LayerIndex index = IndexWithSpans(4, 'y');
  const std::string good = EncodeProfile(MakeProfile(index, {1, 2}));
  for (size_t i = 0; i < good.size(); ++i) {  // every single flipped byte is caught
    std::string bad = good;
    bad[i] ^= 0x20;
    auto d = DecodeProfile(bad);
    ASSERT_THAT(d, ::testing::Not(IsOk())) << "byte " << i;
    EXPECT_TRUE(d.status().code() == absl::StatusCode::kDataLoss ||
                d.status().code() == absl::StatusCode::kUnimplemented)
        << d.status();
  }
  for (size_t n : {size_t{0}, size_t{10}, good.size() - 1}) {
    EXPECT_EQ(DecodeProfile(good.substr(0, n)).status().code(), absl::StatusCode::kDataLoss);
  }
  std::string v2 = good;
  v2[8] = 2;
  EXPECT_EQ(DecodeProfile(v2).status().code(), absl::StatusCode::kUnimplemented);
  // Well framed but inconsistent: a span past the end, a span twice.
  AccessProfile past = MakeProfile(index, {1});
  past.add_spans(4);
  EXPECT_EQ(DecodeProfile(EncodeProfile(past)).status().code(), absl::StatusCode::kDataLoss);
  AccessProfile twice = MakeProfile(index, {1});
  twice.add_spans(1);
  EXPECT_EQ(DecodeProfile(EncodeProfile(twice)).status().code(), absl::StatusCode::kDataLoss);
}

TEST(AccessProfileTest, ForeignAndStaleProfilesAreRecognized) {
  LayerIndex index = IndexWithSpans(6, 'z');
  AccessProfile p = MakeProfile(index, {0, 1});
  LayerIndex other_layer = index;
  other_layer.set_layer_digest("sha256:" + std::string(64, 'b'));
  EXPECT_EQ(CheckProfileFor(p, other_layer).code(), absl::StatusCode::kFailedPrecondition);
  LayerIndex reindexed = IndexWithSpans(6, 'q');  // same layer, other spans
  EXPECT_EQ(CheckProfileFor(p, reindexed).code(), absl::StatusCode::kFailedPrecondition);
  LayerIndex fewer = IndexWithSpans(5, 'z');
  EXPECT_EQ(CheckProfileFor(p, fewer).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace clip
