// Publishing clip indexes as an OCI artifact and finding them again, against a real
// docker-registry (no referrers API: the sha256-<hex> tag fallback is exercised).
#include "registry/index_artifact.h"

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "registry/testing/registry_server.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

class IndexArtifactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = testing::RegistryServer::Start({});
    ASSERT_THAT(registry, IsOk());
    registry_ = *std::move(registry);
    RegistryClient::Options ro;
    ro.hosts = std::make_shared<DefaultHosts>(std::set<std::string>{registry_->host()});
    client_ = std::make_unique<RegistryClient>(ro);
    repo_ = Reference::Parse(registry_->host() + "/app/web:v1").value();
    // A minimal image manifest to refer to.
    std::string config = "{}";
    ASSERT_THAT(client_->PushBlob(repo_, Digest::Of(config), config), IsOk());
    manifest_ = absl::StrCat(
        R"({"schemaVersion":2,"mediaType":")", kOciManifest,
        R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")",
        Digest::Of(config).ToString(), R"(","size":2},"layers":[]})");
    subject_.media_type = kOciManifest;
    subject_.digest = client_->PushManifest(repo_, "v1", kOciManifest, manifest_).value();
    subject_.size = static_cast<int64_t>(manifest_.size());
  }

  std::unique_ptr<testing::RegistryServer> registry_;
  std::unique_ptr<RegistryClient> client_;
  Reference repo_ = Reference::Parse("x/y").value();
  std::string manifest_;
  Descriptor subject_;
};

TEST_F(IndexArtifactTest, ManifestShape) {
  Digest layer = Digest::Of("layer");
  std::string json = IndexArtifactManifest(subject_, {{layer, "INDEX"}});
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_STREQ(doc["artifactType"].GetString(), kClipIndexArtifactType);
  EXPECT_STREQ(doc["config"]["mediaType"].GetString(), kOciEmptyMediaType);
  EXPECT_EQ(doc["config"]["size"].GetInt(), 2);
  EXPECT_EQ(doc["layers"][0]["annotations"][kClipLayerAnnotation].GetString(), layer.ToString());
  EXPECT_EQ(doc["layers"][0]["digest"].GetString(), Digest::Of("INDEX").ToString());
  EXPECT_EQ(doc["subject"]["digest"].GetString(), subject_.digest.ToString());
  EXPECT_EQ(doc["subject"]["size"].GetInt64(), subject_.size);
}

TEST_F(IndexArtifactTest, PublishThenFindEachLayer) {
  Digest a = Digest::Of("layer a"), b = Digest::Of("layer b"), c = Digest::Of("layer c");
  auto artifact =
      PublishIndexArtifact(*client_, repo_, subject_, {{a, "index of a"}, {b, "index of b"}});
  ASSERT_THAT(artifact, IsOk());
  auto first = FetchPublishedIndexes(*client_, repo_, subject_.digest);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(*first, (std::map<std::string, std::string>{{a.ToString(), "index of a"},
                                                        {b.ToString(), "index of b"}}));
  // Another image's manifest has no artifact.
  EXPECT_TRUE(FetchPublishedIndexes(*client_, repo_, Digest::Of("other"))->empty());

  // Publishing again (a re-index) appends to the fallback tag: both found, newest wins.
  ASSERT_THAT(
      PublishIndexArtifact(*client_, repo_, subject_, {{a, "index of a v2"}, {c, "index of c"}}),
      IsOk());
  auto referrers = client_->Referrers(repo_, subject_.digest, kClipIndexArtifactType);
  ASSERT_THAT(referrers, IsOk());
  EXPECT_EQ(referrers->size(), 2u);
  // Newest wins for a layer listed twice.
  auto all = FetchPublishedIndexes(*client_, repo_, subject_.digest);
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(*all, (std::map<std::string, std::string>{{a.ToString(), "index of a v2"},
                                                      {b.ToString(), "index of b"},
                                                      {c.ToString(), "index of c"}}));
  // Only some (what the snapshotter fetches when others are stored already).
  auto listed = ListPublishedIndexes(*client_, repo_, subject_.digest);
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 3u);
  std::vector<PublishedIndex> only_b;
  for (const PublishedIndex& p : *listed) {
    if (p.layer == b) only_b.push_back(p);
  }
  EXPECT_EQ(*FetchIndexBlobs(*client_, repo_, only_b),
            (std::map<std::string, std::string>{{b.ToString(), "index of b"}}));
  EXPECT_TRUE(FetchIndexBlobs(*client_, repo_, {})->empty());
  // Idempotent: the same artifact again does not grow the list.
  ASSERT_THAT(
      PublishIndexArtifact(*client_, repo_, subject_, {{a, "index of a v2"}, {c, "index of c"}}),
      IsOk());
  EXPECT_EQ(client_->Referrers(repo_, subject_.digest, kClipIndexArtifactType)->size(), 2u);
}

// Access profiles travel in the same artifact, after every index (a reader that takes
// the first entry per layer still gets the index), and are found with their index.
TEST_F(IndexArtifactTest, ProfilesTravelWithTheirIndexes) {
  Digest a = Digest::Of("layer a"), b = Digest::Of("layer b");
  std::string json = IndexArtifactManifest(subject_, {{a, "IA", "PA"}, {b, "IB", ""}});
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  ASSERT_FALSE(doc.HasParseError());
  ASSERT_EQ(doc["layers"].Size(), 3u);
  EXPECT_STREQ(doc["layers"][0]["mediaType"].GetString(), kClipIndexMediaType);
  EXPECT_STREQ(doc["layers"][1]["mediaType"].GetString(), kClipIndexMediaType);
  EXPECT_STREQ(doc["layers"][2]["mediaType"].GetString(), kClipProfileMediaType);
  EXPECT_EQ(doc["layers"][2]["annotations"][kClipLayerAnnotation].GetString(), a.ToString());

  ASSERT_THAT(PublishIndexArtifact(*client_, repo_, subject_, {{a, "IA", "PA"}, {b, "IB", ""}}),
              IsOk());
  auto listed = ListPublishedIndexes(*client_, repo_, subject_.digest);
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 2u);
  for (const PublishedIndex& p : *listed) {
    if (p.layer == a) {
      ASSERT_TRUE(p.profile.has_value());
      EXPECT_EQ(*p.profile, Digest::Of("PA"));
    } else {
      EXPECT_FALSE(p.profile.has_value());
    }
  }
  std::map<std::string, std::string> profiles;
  auto indexes = FetchIndexBlobs(*client_, repo_, *listed, 4, &profiles);
  ASSERT_THAT(indexes, IsOk());
  EXPECT_EQ(*indexes,
            (std::map<std::string, std::string>{{a.ToString(), "IA"}, {b.ToString(), "IB"}}));
  EXPECT_EQ(profiles, (std::map<std::string, std::string>{{a.ToString(), "PA"}}));
  // Without asking for profiles, none are fetched (and the indexes are the same).
  EXPECT_EQ(*FetchPublishedIndexes(*client_, repo_, subject_.digest), *indexes);
}

TEST_F(IndexArtifactTest, ForeignFallbackTagIsNotOverwritten) {
  Reference tag =
      Reference::Parse(absl::StrCat(repo_.Name(), ":sha256-", subject_.digest.Hex())).value();
  ASSERT_THAT(client_->PushManifest(tag, tag.tag(), kOciManifest, manifest_), IsOk());
  auto st = PublishIndexArtifact(*client_, repo_, subject_, {{Digest::Of("l"), "i"}});
  EXPECT_EQ(st.status().code(), absl::StatusCode::kFailedPrecondition) << st.status();
}

}  // namespace
}  // namespace clip
