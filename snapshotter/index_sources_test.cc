// The discovery chain through fake sources: order, the one verify step, what is kept
// and shared, the trail; and the local store and unconfigured remote cache sources.
#include "snapshotter/index_sources.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "index/index_format.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

using ::testing::HasSubstr;

std::string EncodedIndexOf(const Digest& layer) {
  index::v1::LayerIndex index;
  index.set_compression(index::v1::NONE);
  index.set_layer_digest(layer.ToString());
  index.set_compressed_size(1024);
  index.set_diff_id(layer.ToString());
  index.set_uncompressed_size(1024);
  index.add_entries()->set_type(index::v1::DIRECTORY);
  index.add_checkpoints()->set_span_sha256(std::string(32, 'a'));
  return EncodeIndex(index);
}

class FakeSource : public IndexSource {
 public:
  FakeSource(Kind kind, std::string name, absl::StatusOr<std::optional<std::string>> answer)
      : kind_(kind), name_(std::move(name)), answer_(std::move(answer)) {}
  Kind kind() const override { return kind_; }
  absl::StatusOr<std::optional<std::string>> Find(const IndexQuery&,
                                                  const IndexNote& note) const override {
    ++asked;
    note(absl::StrCat(name_, " asked"));
    return answer_;
  }
  mutable int asked = 0;

 private:
  Kind kind_;
  std::string name_;
  absl::StatusOr<std::optional<std::string>> answer_;
};

struct Kept {
  Digest layer;
  bool share;
};

class IndexChainTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::optional<std::shared_ptr<const index::v1::LayerIndex>>> Find() {
    trail_.clear();
    return FindIndex(
        chain_, query_,
        [this](const Digest& d, const std::string&, bool share) {
          kept_.push_back({d, share});
        },
        &trail_);
  }
  FakeSource* Add(IndexSource::Kind kind, std::string name,
                  absl::StatusOr<std::optional<std::string>> answer) {
    chain_.push_back(std::make_unique<FakeSource>(kind, std::move(name), std::move(answer)));
    return static_cast<FakeSource*>(chain_.back().get());
  }

  const Digest layer_ = Digest::Of("layer");
  IndexQuery query_{*Reference::Parse("registry.test/app:v1"), layer_, std::nullopt};
  std::vector<std::unique_ptr<IndexSource>> chain_;
  std::vector<Kept> kept_;
  std::string trail_;
};

TEST_F(IndexChainTest, FirstSourceWithTheIndexWinsAndRegistryFindsAreShared) {
  FakeSource* local = Add(IndexSource::Kind::kLocal, "local", std::nullopt);
  FakeSource* cache = Add(IndexSource::Kind::kRemoteCache, "cache", std::nullopt);
  FakeSource* registry = Add(IndexSource::Kind::kRegistry, "registry", EncodedIndexOf(layer_));
  auto found = Find();
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((**found)->layer_digest(), layer_.ToString());
  EXPECT_EQ(trail_, "local asked; cache asked; registry asked");
  EXPECT_EQ(local->asked + cache->asked + registry->asked, 3);
  ASSERT_EQ(kept_.size(), 1u);
  EXPECT_EQ(kept_[0].layer, layer_);
  EXPECT_TRUE(kept_[0].share);
}

TEST_F(IndexChainTest, LaterSourcesAreNotAskedAndLocalFindsAreNotKeptAgain) {
  Add(IndexSource::Kind::kLocal, "local", EncodedIndexOf(layer_));
  FakeSource* registry = Add(IndexSource::Kind::kRegistry, "registry", std::nullopt);
  auto found = Find();
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(registry->asked, 0);
  EXPECT_TRUE(kept_.empty());

  chain_.clear();
  Add(IndexSource::Kind::kRemoteCache, "cache", EncodedIndexOf(layer_));
  ASSERT_THAT(Find(), IsOk());
  ASSERT_EQ(kept_.size(), 1u);
  EXPECT_FALSE(kept_[0].share);  // came from the remote cache: kept locally only
}

TEST_F(IndexChainTest, NoSourceHasItIsNotAnError) {
  Add(IndexSource::Kind::kLocal, "local", std::nullopt);
  Add(IndexSource::Kind::kRegistry, "registry", std::nullopt);
  auto found = Find();
  ASSERT_THAT(found, IsOk());
  EXPECT_FALSE(found->has_value());
  EXPECT_TRUE(kept_.empty());
}

TEST_F(IndexChainTest, WhatIsFoundIsVerifiedOnceAndNeverMountedWrong) {
  Add(IndexSource::Kind::kRemoteCache, "cache", std::string("not an index"));
  auto corrupt = Find();
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(corrupt.status().message(), HasSubstr(layer_.ToString()));

  chain_.clear();
  Add(IndexSource::Kind::kRegistry, "registry", EncodedIndexOf(Digest::Of("another layer")));
  auto foreign = Find();
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(foreign.status().message(), HasSubstr("describes"));
  EXPECT_TRUE(kept_.empty());
}

TEST_F(IndexChainTest, SourceErrorsStopTheLookup) {
  Add(IndexSource::Kind::kLocal, "local", absl::PermissionDeniedError("unreadable"));
  FakeSource* registry = Add(IndexSource::Kind::kRegistry, "registry", EncodedIndexOf(layer_));
  EXPECT_EQ(Find().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry->asked, 0);
}

TEST(IndexSourcesTest, LocalStoreAndUnconfiguredRemoteCache) {
  std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/indexes");
  LayerDocStore store(dir);
  ASSERT_THAT(store.Create(), IsOk());
  const Digest layer = Digest::Of("layer");
  IndexQuery query{*Reference::Parse("registry.test/app:v1"), layer, std::nullopt};
  std::string trail;
  IndexNote note = [&](absl::string_view s) { absl::StrAppend(&trail, s, ";"); };

  LocalStoreIndexSource local(store);
  auto none = local.Find(query, note);
  ASSERT_THAT(none, IsOk());
  EXPECT_FALSE(none->has_value());
  ASSERT_THAT(store.Put(layer, "bytes"), IsOk());
  auto some = local.Find(query, note);
  ASSERT_TRUE(some.ok() && some->has_value());
  EXPECT_EQ(**some, "bytes");

  RemoteCacheIndexSource cache(nullptr);
  auto unconfigured = cache.Find(query, note);
  ASSERT_THAT(unconfigured, IsOk());
  EXPECT_FALSE(unconfigured->has_value());
  EXPECT_EQ(trail, "not in the local store;found in the local store;no remote cache configured;");
}

}  // namespace
}  // namespace clip
