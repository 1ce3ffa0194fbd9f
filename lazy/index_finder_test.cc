// What a node believes, against a real docker-registry and a real nginx remote cache:
// indexes bound to the image are found through the binding (the other layers' in the
// same round), and a forged index - the same layer digest, one file made setuid root -
// is never returned, whether it sits in the remote cache (under the genuine digest or
// behind a fleet pointer), comes as a referrer or the tag-fallback artifact, through a
// binding that names another image's artifact, a tag that moved, or a local store file
// changed on disk. Each refusal is counted by source and reason and noted in the trail.
// Each index_trust mode, restores, and access profiles the same way.
#include "lazy/index_finder.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache/testing/nginx_server.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "index/access_profile.h"
#include "index/index_format.h"
#include "registry/image_binding.h"
#include "registry/index_artifact.h"
#include "registry/testing/registry_server.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::testing::HasSubstr;

// An index of `layer` with two files; `forged` makes /usr/bin/bash setuid root.
std::string IndexOf(const Digest& layer, bool forged = false) {
  index::v1::LayerIndex index;
  index.set_compression(index::v1::NONE);
  index.set_layer_digest(layer.ToString());
  index.set_compressed_size(1024);
  index.set_diff_id(layer.ToString());
  index.set_uncompressed_size(1024);
  index::v1::Entry* root = index.add_entries();
  root->set_type(index::v1::DIRECTORY);
  index::v1::Entry* bash = index.add_entries();
  bash->set_type(index::v1::REGULAR);
  bash->set_name("bash");
  bash->set_mode(forged ? 04755 : 0755);
  bash->set_uid(forged ? 0 : 1000);
  index.add_checkpoints()->set_span_sha256(std::string(32, 'a'));
  return EncodeIndex(index);
}

uint32_t BashMode(const index::v1::LayerIndex& index) {
  for (const auto& e : index.entries()) {
    if (e.name() == "bash") return e.mode();
  }
  return 0;
}

Descriptor DescriptorOf(const std::string& media_type, const std::string& bytes) {
  Descriptor d;
  d.media_type = media_type;
  d.digest = Digest::Of(bytes);
  d.size = static_cast<int64_t>(bytes.size());
  return d;
}

class IndexFinderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::clip::testing::MakeTempDir("finder");
    auto registry = ::clip::testing::RegistryServer::Start({});
    ASSERT_THAT(registry, IsOk());
    registry_ = *std::move(registry);
    RegistryClient::Options ro;
    ro.hosts = std::make_shared<DefaultHosts>(std::set<std::string>{registry_->host()});
    ro.retry.initial_backoff = absl::Milliseconds(20);
    client_ = std::make_unique<RegistryClient>(ro);
    auto nginx = ::clip::testing::NginxCas::Start();
    ASSERT_THAT(nginx, IsOk());
    nginx_ = *std::move(nginx);
    RemoteCache::Options co;
    co.endpoint = nginx_->endpoint();
    remote_ = std::make_unique<RemoteCache>(co);

    repo_ = *Reference::Parse(registry_->host() + "/clip/app");
    manifest_ = PushImage("one", {"layer one", "layer two"});
    artifact_ = Publish(manifest_, {{layer1_, IndexOf(layer1_)}, {layer2_, IndexOf(layer2_)}});
    Bind("v1", manifest_, artifact_);
  }

  // An image manifest over layers with these contents.
  Descriptor PushImage(const std::string& name, const std::vector<std::string>& layers) {
    for (const std::string& l : layers) {
      EXPECT_THAT(client_->PushBlob(repo_, Digest::Of(l), l), IsOk());
    }
    std::string config = absl::StrFormat(
        R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"},"x":"%s"})", name);
    EXPECT_THAT(client_->PushBlob(repo_, Digest::Of(config), config), IsOk());
    std::string json = absl::StrCat(
        R"({"schemaVersion":2,"mediaType":")", kOciManifest,
        R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")",
        Digest::Of(config).ToString(), R"(","size":)", config.size(), R"(},"layers":[)");
    for (size_t i = 0; i < layers.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "",
                      R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")",
                      Digest::Of(layers[i]).ToString(), R"(","size":1024})");
    }
    json += "]}";
    EXPECT_THAT(client_->PushManifest(repo_, "", kOciManifest, json), IsOk());
    Descriptor d = DescriptorOf(kOciManifest, json);
    d.platform = Platform{};
    return d;
  }
  // A clip index artifact of `subject` (also a referrer); returns its descriptor.
  Descriptor Publish(const Descriptor& subject, const std::vector<LayerIndexBlob>& indexes) {
    absl::StatusOr<Digest> artifact = PublishIndexArtifact(*client_, repo_, subject, indexes);
    EXPECT_THAT(artifact, IsOk());
    const std::string json = IndexArtifactManifest(subject, indexes);
    EXPECT_EQ(Digest::Of(json), *artifact);
    return DescriptorOf(kOciManifest, json);
  }
  // The bound index of `manifest` and `artifact` under `tag`.
  void Bind(const std::string& tag, const Descriptor& manifest, const Descriptor& artifact) {
    absl::StatusOr<std::string> bound = BindSingleManifest(manifest, {{manifest.digest, artifact}});
    ASSERT_THAT(bound, IsOk());
    ASSERT_THAT(client_->PushManifest(repo_, tag, kOciIndex, *bound), IsOk());
  }

  std::unique_ptr<IndexFinder> Finder(IndexTrust trust, const std::string& node,
                                      bool with_remote = true, bool profiles = false) {
    IndexFinder::Options o;
    o.trust = trust;
    o.registry = client_.get();
    o.index_store = absl::StrCat(dir_, "/", node, "-indexes");
    if (profiles) o.profile_store = absl::StrCat(dir_, "/", node, "-profiles");
    o.remote = with_remote ? remote_.get() : nullptr;
    o.metrics = &metrics_;
    return std::make_unique<IndexFinder>(o);
  }
  IndexQuery Query(const std::string& tag_or_digest, const Digest& layer,
                   std::optional<Digest> manifest = std::nullopt) {
    return IndexQuery{*Reference::Parse(repo_.Name() + tag_or_digest), layer,
                      manifest ? manifest : std::optional<Digest>(manifest_.digest), false};
  }
  // The index found, or nullopt; the trail in trail_.
  std::optional<std::shared_ptr<const index::v1::LayerIndex>> Find(IndexFinder& finder,
                                                                   const IndexQuery& q) {
    trail_.clear();
    auto found = finder.FindIndex(q, &trail_);
    EXPECT_THAT(found, IsOk()) << trail_;
    return found.ok() ? *found : std::nullopt;
  }
  // A forged index for `layer` stored in the remote cache under `key` (its genuine digest).
  void PoisonRemote(const Digest& key, const std::string& bytes) {
    std::ofstream(nginx_->PathFor(key.Hex()), std::ios::binary) << bytes;
  }
  uint64_t Refused(const char* source, const char* reason) {
    return static_cast<uint64_t>(
        metrics_
            .GetCounter("clip_index_refused_total", "", {{"source", source}, {"reason", reason}})
            .Value());
  }

  std::string dir_;
  std::unique_ptr<::clip::testing::RegistryServer> registry_;
  std::unique_ptr<::clip::testing::NginxCas> nginx_;
  std::unique_ptr<RegistryClient> client_;
  std::unique_ptr<RemoteCache> remote_;
  MetricsRegistry metrics_;
  Reference repo_ = *Reference::Parse("x/y");
  const Digest layer1_ = Digest::Of("layer one");
  const Digest layer2_ = Digest::Of("layer two");
  Descriptor manifest_;
  Descriptor artifact_;
  std::string trail_;
};

TEST_F(IndexFinderTest, BoundIndexesComeThroughTheBindingInOneRound) {
  auto finder = Finder(IndexTrust::kBound, "a");
  auto one = Find(*finder, Query(":v1", layer1_));
  ASSERT_TRUE(one.has_value()) << trail_;
  EXPECT_EQ((*one)->layer_digest(), layer1_.ToString());
  EXPECT_THAT(trail_, HasSubstr("found in the registry (bound)"));
  // The other layer came in the same round, recorded as bound.
  EXPECT_EQ(finder->indexes().RecordOf(layer2_)->origin, kOriginBound);
  auto two = Find(*finder, Query(":v1", layer2_));
  ASSERT_TRUE(two.has_value()) << trail_;
  EXPECT_THAT(trail_, HasSubstr("found in the local store"));
  // A second node finds them in the remote cache, under their own digests.
  auto other = Finder(IndexTrust::kBound, "b");
  ASSERT_TRUE(Find(*other, Query(":v1", layer1_)).has_value()) << trail_;
  EXPECT_THAT(trail_, HasSubstr("found in the remote cache (bound)"));
  // By digest: the exact chain.
  auto by_digest = Finder(IndexTrust::kBound, "c", /*with_remote=*/false);
  absl::StatusOr<Manifest> root = client_->FetchManifest(*Reference::Parse(repo_.Name() + ":v1"));
  ASSERT_THAT(root, IsOk());
  ASSERT_TRUE(Find(*by_digest, Query("@" + root->digest.ToString(), layer1_)).has_value())
      << trail_;
  EXPECT_EQ(metrics_.Render().find("clip_index_refused_total{"), std::string::npos);
}

// The attack of issue 24: the remote cache's entry for the layer replaced by a forged
// index (setuid bash, same layer digest), under the genuine digest or a fleet pointer.
TEST_F(IndexFinderTest, ForgedRemoteCacheIndexIsNeverBelieved) {
  const std::string genuine = IndexOf(layer1_), forged = IndexOf(layer1_, true);
  PoisonRemote(Digest::Of(genuine), forged);
  auto finder = Finder(IndexTrust::kBound, "a");
  auto found = Find(*finder, Query(":v1", layer1_));
  ASSERT_TRUE(found.has_value()) << trail_;
  EXPECT_EQ(BashMode(**found), 0755u);  // the registry's, after the refusal
  EXPECT_EQ(Refused("remote_cache", "digest_mismatch"), 1u);
  EXPECT_THAT(trail_, HasSubstr("refused the index from remote_cache (digest_mismatch)"));
  // The node repaired the entry with the genuine bytes.
  EXPECT_THAT(remote_->GetDoc(Digest::Of(genuine)), IsOk());

  // Behind the fleet pointer, for an image without a binding (its platform manifest by
  // digest): refused under "bound", so the layer is pulled normally.
  ASSERT_THAT(remote_->PutDoc(forged), IsOk());
  ASSERT_THAT(
      remote_->PutLayerDoc(RemoteCache::LayerDoc::kIndex, layer1_, Digest::Of(forged).ToString()),
      IsOk());
  auto fresh = Finder(IndexTrust::kBound, "b");
  EXPECT_FALSE(Find(*fresh, Query("@" + manifest_.digest.ToString(), layer1_)).has_value());
  EXPECT_EQ(Refused("remote_cache", "unbound"), 1u);
  EXPECT_THAT(trail_, HasSubstr("refused the index from remote_cache (unbound)"));
  EXPECT_THAT(trail_, HasSubstr("the reference names the platform manifest itself"));
  EXPECT_FALSE(fresh->indexes().Contains(layer1_));  // nothing forged kept

  // A pointer whose target holds other bytes is refused even under "fleet".
  PoisonRemote(Digest::Of(forged), IndexOf(layer2_));
  auto fleet = Finder(IndexTrust::kFleet, "c");
  EXPECT_FALSE(Find(*fleet, Query("@" + manifest_.digest.ToString(), layer1_)).has_value());
  EXPECT_EQ(Refused("remote_cache", "digest_mismatch"), 2u);
}

// Under "fleet", another node's index is believed through the pointer (and recorded as
// such); switched back to "bound", the node no longer believes its copy.
TEST_F(IndexFinderTest, FleetTrustsOtherNodesIndexesAndBoundStopsBelievingThem) {
  const Digest lone = Digest::Of("a layer no image binds");
  auto builder = Finder(IndexTrust::kBound, "builder");
  builder->KeepBuilt(lone, IndexOf(lone));  // indexed on first use there
  EXPECT_EQ(builder->indexes().RecordOf(lone)->origin, kOriginBuilt);
  ASSERT_TRUE(Find(*builder, Query("@" + manifest_.digest.ToString(), lone)).has_value());

  auto fleet = Finder(IndexTrust::kFleet, "peer");
  ASSERT_TRUE(Find(*fleet, Query("@" + manifest_.digest.ToString(), lone)).has_value()) << trail_;
  EXPECT_THAT(trail_, HasSubstr("found in the remote cache (another node's)"));
  EXPECT_EQ(fleet->indexes().RecordOf(lone)->origin, kOriginFleet);

  auto bound = Finder(IndexTrust::kBound, "peer");  // the same store, default trust
  EXPECT_FALSE(Find(*bound, Query("@" + manifest_.digest.ToString(), lone)).has_value());
  EXPECT_EQ(Refused("local_store", "unproven"), 1u);
  EXPECT_EQ(Refused("remote_cache", "unbound"), 1u);
}

// A snapshot mounted again after a restart gets the very index it was mounted with (its
// pin), from the local store or the remote cache under its digest - not what a moved
// tag or another image's binding of the layer names now, and not a local copy changed
// on disk. A snapshot mounted before pins were kept takes the local copy as it is.
TEST_F(IndexFinderTest, RestoredSnapshotGetsTheIndexItWasMountedWith) {
  auto finder = Finder(IndexTrust::kBound, "a");
  Digest mounted_with;
  ASSERT_TRUE(finder->FindIndex(Query(":v1", layer1_), nullptr, &mounted_with)->has_value());
  EXPECT_EQ(mounted_with, Digest::Of(IndexOf(layer1_)));
  IndexQuery restore = Query(":v1", layer1_);
  restore.restoring = true;
  restore.pinned = mounted_with;
  // The tag moved on (its binding lists another manifest): the pin still holds.
  Descriptor next = PushImage("next", {"layer two"});
  Bind("v1", next, Publish(next, {{layer2_, IndexOf(layer2_)}}));
  auto again = Find(*finder, restore);
  ASSERT_TRUE(again.has_value()) << trail_;
  EXPECT_THAT(trail_, HasSubstr("found in the local store"));

  // The local copy replaced by another (believed) index of the layer, e.g. another
  // image's binding: the pinned one comes from the remote cache.
  const std::string other = IndexOf(layer1_, true);
  ASSERT_THAT(finder->indexes().Put(layer1_, other, kOriginBuilt), IsOk());
  auto pinned = Find(*finder, restore);
  ASSERT_TRUE(pinned.has_value()) << trail_;
  EXPECT_EQ(BashMode(**pinned), 0755u);
  EXPECT_THAT(trail_, HasSubstr("found in the remote cache (the snapshot's own)"));

  // Nowhere to be had (and the moved tag's binding names it no more: a node that did
  // not remember the old binding): not restored, and nothing else is taken instead.
  ASSERT_THAT(finder->indexes().Put(layer1_, other, kOriginBuilt), IsOk());
  std::remove(nginx_->PathFor(mounted_with.Hex()).c_str());
  auto restarted = Finder(IndexTrust::kBound, "a");
  EXPECT_FALSE(Find(*restarted, restore).has_value());
  EXPECT_EQ(Refused("binding", "tag_moved"), 1u);

  // Mounted before pins were kept: the local copy, as it is.
  restore.pinned.reset();
  auto legacy = Find(*restarted, restore);
  ASSERT_TRUE(legacy.has_value()) << trail_;
  EXPECT_EQ(BashMode(**legacy), 04755u);
}

// A forged index pushed as a newer referrer of the pinned manifest (through the
// sha256-<hex> tag fallback: docker-registry has no referrers API).
TEST_F(IndexFinderTest, ForgedReferrerIsRefusedUnlessReferrersAreTrusted) {
  Publish(manifest_, {{layer1_, IndexOf(layer1_, true)}});
  const IndexQuery bound_ref = Query(":v1", layer1_);
  auto finder = Finder(IndexTrust::kBound, "a", /*with_remote=*/false);
  auto found = Find(*finder, bound_ref);
  ASSERT_TRUE(found.has_value()) << trail_;
  EXPECT_EQ(BashMode(**found), 0755u);  // the bound one; referrers not even listed
  EXPECT_THAT(trail_, ::testing::Not(HasSubstr("referrer")));

  const IndexQuery pinned = Query("@" + manifest_.digest.ToString(), layer1_);
  auto fresh = Finder(IndexTrust::kBound, "b", /*with_remote=*/false);
  EXPECT_FALSE(Find(*fresh, pinned).has_value());
  EXPECT_EQ(Refused("referrers", "unbound"), 1u);
  EXPECT_THAT(trail_, HasSubstr("refused the index from referrers (unbound)"));
  auto fleet = Finder(IndexTrust::kFleet, "c", /*with_remote=*/false);
  EXPECT_FALSE(Find(*fleet, pinned).has_value());
  EXPECT_EQ(Refused("referrers", "unbound"), 2u);

  // "referrers": the behaviour before bindings - the newest referrer wins.
  auto trusting = Finder(IndexTrust::kReferrers, "d", /*with_remote=*/false);
  auto believed = Find(*trusting, pinned);
  ASSERT_TRUE(believed.has_value()) << trail_;
  EXPECT_EQ(BashMode(**believed), 04755u);
  EXPECT_EQ(trusting->indexes().RecordOf(layer1_)->origin, kOriginReferrer);
}

// A binding that names another image's artifact for this manifest: the artifact's own
// subject gives it away.
TEST_F(IndexFinderTest, BindingNamingAnotherImagesArtifactIsRefused) {
  Descriptor other = PushImage("two", {"attacker's layer", "layer one"});
  Descriptor other_artifact = Publish(other, {{layer1_, IndexOf(layer1_, true)}});
  Bind("evil", manifest_, other_artifact);
  auto finder = Finder(IndexTrust::kBound, "a", /*with_remote=*/false);
  EXPECT_FALSE(Find(*finder, Query(":evil", layer1_)).has_value());
  EXPECT_EQ(Refused("binding", "subject_mismatch"), 1u);
  EXPECT_THAT(trail_, HasSubstr("refused the index from binding (subject_mismatch)"));
  EXPECT_FALSE(finder->indexes().Contains(layer1_));
}

// A puller that resolved the bound index itself names the artifact (clipctl pull's
// clip.bound-artifact label): no second resolve, and the subject is still checked.
TEST_F(IndexFinderTest, PullerNamedArtifactIsCheckedToo) {
  IndexQuery q = Query(":gone", layer1_);  // the tag is never resolved
  q.bound_artifact = artifact_.digest;
  auto finder = Finder(IndexTrust::kBound, "a", /*with_remote=*/false);
  ASSERT_TRUE(Find(*finder, q).has_value()) << trail_;
  EXPECT_THAT(trail_, HasSubstr("found in the registry (bound)"));

  Descriptor other = PushImage("two", {"attacker's layer", "layer one"});
  q.bound_artifact = Publish(other, {{layer1_, IndexOf(layer1_, true)}}).digest;
  auto fresh = Finder(IndexTrust::kBound, "b", /*with_remote=*/false);
  EXPECT_FALSE(Find(*fresh, q).has_value());
  EXPECT_EQ(Refused("binding", "subject_mismatch"), 1u);
}

// A tag that moved between containerd's resolve and the Prepare: the binding it names
// now does not list the manifest containerd unpacks.
TEST_F(IndexFinderTest, TagThatMovedIsARefusal) {
  Descriptor next = PushImage("next", {"layer two"});
  Bind("v1", next, Publish(next, {{layer2_, IndexOf(layer2_)}}));
  auto finder = Finder(IndexTrust::kBound, "a", /*with_remote=*/false);
  EXPECT_FALSE(Find(*finder, Query(":v1", layer1_)).has_value());
  EXPECT_EQ(Refused("binding", "tag_moved"), 1u);
  EXPECT_THAT(trail_, HasSubstr("(tag_moved)"));
  // The layers of the manifest the tag names now are bound as usual.
  EXPECT_TRUE(Find(*finder, Query(":v1", layer2_, next.digest)).has_value()) << trail_;
}

// A local store file changed on disk no longer hashes to its record: refused, removed,
// and fetched again through the binding; a self-built one, with no binding, is gone.
TEST_F(IndexFinderTest, LocalStoreFileChangedOnDiskIsRefused) {
  auto finder = Finder(IndexTrust::kBound, "a", /*with_remote=*/false);
  ASSERT_TRUE(Find(*finder, Query(":v1", layer1_)).has_value());
  const std::string forged = IndexOf(layer1_, true);
  std::ofstream(finder->indexes().PathOf(layer1_), std::ios::binary | std::ios::trunc) << forged;
  auto again = Find(*finder, Query(":v1", layer1_));
  ASSERT_TRUE(again.has_value()) << trail_;
  EXPECT_EQ(BashMode(**again), 0755u);
  EXPECT_EQ(Refused("local_store", "modified_on_disk"), 1u);
  EXPECT_THAT(trail_, HasSubstr("found in the registry (bound)"));

  const Digest lone = Digest::Of("indexed here");
  finder->KeepBuilt(lone, IndexOf(lone));
  std::ofstream(finder->indexes().PathOf(lone), std::ios::binary | std::ios::trunc)
      << IndexOf(lone, true);
  EXPECT_FALSE(Find(*finder, Query("@" + manifest_.digest.ToString(), lone)).has_value());
  EXPECT_EQ(Refused("local_store", "modified_on_disk"), 2u);
  EXPECT_FALSE(finder->indexes().Contains(lone));
  // Also a bound copy whose record was rewritten to match: the chain disagrees.
  std::ofstream(finder->indexes().PathOf(layer1_), std::ios::binary | std::ios::trunc) << forged;
  ASSERT_THAT(finder->indexes().Put(layer1_, forged, kOriginBound), IsOk());
  auto rewritten = Find(*finder, Query(":v1", layer1_));
  ASSERT_TRUE(rewritten.has_value());
  EXPECT_EQ(BashMode(**rewritten), 0755u);
  EXPECT_THAT(trail_, HasSubstr("the local copy is not the bound one"));
}

// Access profiles are believed on the same terms: bound (published with the index),
// recorded here, or another node's under "fleet"; a forged one is refused.
TEST_F(IndexFinderTest, AccessProfilesFollowTheSameTrust) {
  absl::StatusOr<index::v1::LayerIndex> index = DecodeIndex(IndexOf(layer1_));
  ASSERT_THAT(index, IsOk());
  index::v1::AccessProfile profile = MakeProfile(*index, {0});
  const std::string encoded = EncodeProfile(profile);
  // Published with the index and bound under "withprofile".
  Bind("withprofile", manifest_, Publish(manifest_, {{layer1_, IndexOf(layer1_), encoded}}));
  auto finder = Finder(IndexTrust::kBound, "a", /*with_remote=*/true, /*profiles=*/true);
  ASSERT_TRUE(Find(*finder, Query(":withprofile", layer1_)).has_value()) << trail_;
  EXPECT_EQ(finder->profiles().RecordOf(layer1_)->origin, kOriginBound);
  EXPECT_TRUE(finder->FindProfile(Query(":withprofile", layer1_), *index).has_value());

  // Another node's recording behind the fleet pointer: refused under "bound".
  absl::StatusOr<index::v1::LayerIndex> index2 = DecodeIndex(IndexOf(layer2_));
  ASSERT_THAT(index2, IsOk());
  auto peer = Finder(IndexTrust::kBound, "peer", /*with_remote=*/true, /*profiles=*/true);
  peer->KeepRecorded(layer2_, EncodeProfile(MakeProfile(*index2, {0})));
  auto node = Finder(IndexTrust::kBound, "node", /*with_remote=*/true, /*profiles=*/true);
  EXPECT_FALSE(node->FindProfile(Query(":v1", layer2_), *index2).has_value());
  EXPECT_EQ(Refused("remote_cache", "unbound"), 1u);
  auto fleet = Finder(IndexTrust::kFleet, "fleet", /*with_remote=*/true, /*profiles=*/true);
  EXPECT_TRUE(fleet->FindProfile(Query(":v1", layer2_), *index2).has_value());
  // Recorded here: believed; changed on disk: refused.
  EXPECT_TRUE(peer->FindProfile(Query(":v1", layer2_), *index2).has_value());
  std::ofstream(peer->profiles().PathOf(layer2_), std::ios::binary | std::ios::app) << "x";
  EXPECT_FALSE(peer->FindProfile(Query(":v1", layer2_), *index2).has_value());
  EXPECT_EQ(Refused("local_store", "modified_on_disk"), 1u);
}

// A registry that cannot be reached is no refusal and no error: nothing is believed.
TEST_F(IndexFinderTest, UnreachableRegistryIsNotAnError) {
  RegistryClient::Options ro;
  ro.hosts = std::make_shared<DefaultHosts>(std::set<std::string>{"127.0.0.1:1"});
  ro.retry.max_attempts = 1;
  RegistryClient dead(ro);
  IndexFinder::Options o;
  o.registry = &dead;
  o.index_store = dir_ + "/dead-indexes";
  o.metrics = &metrics_;
  IndexFinder finder(o);
  IndexQuery q{*Reference::Parse("127.0.0.1:1/clip/app:v1"), layer1_, manifest_.digest, false};
  EXPECT_FALSE(Find(finder, q).has_value());
  EXPECT_THAT(trail_, HasSubstr("binding not resolved"));
  EXPECT_EQ(metrics_.Render().find("clip_index_refused_total{"), std::string::npos);
}

}  // namespace
}  // namespace clip
