#include "registry/image_binding.h"

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "registry/clip_media_types.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;
using ::testing::HasSubstr;

Digest D(absl::string_view what) { return Digest::Of(what); }

// A two-platform image index with an annotation of its own.
std::string ImageIndex() {
  return absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")",
      D("amd64").ToString(), R"(","size":500,"platform":{"architecture":"amd64","os":"linux"}},)",
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")",
      D("arm64").ToString(),
      R"(","size":501,"platform":{"architecture":"arm64","os":"linux","variant":"v8"},)",
      R"("annotations":{"kept":"yes"}}],"annotations":{"org.opencontainers.image.ref.name":"3.11"}})");
}

BoundArtifact Artifact(absl::string_view manifest, absl::string_view artifact) {
  Descriptor d;
  d.media_type = kOciManifest;
  d.digest = D(artifact);
  d.size = 1234;
  return BoundArtifact{D(manifest), d};
}

TEST(ImageBindingTest, BindsEveryPlatformAndKeepsTheImage) {
  auto bound = BindImageIndex(ImageIndex(), {Artifact("amd64", "a1"), Artifact("arm64", "a2")});
  ASSERT_THAT(bound, IsOk());
  EXPECT_THAT(*bound, HasSubstr(R"("org.opencontainers.image.ref.name":"3.11")"));
  EXPECT_THAT(*bound, HasSubstr(R"("annotations":{"kept":"yes"})"));
  auto parsed = ParseImageBinding(*bound);
  ASSERT_THAT(parsed, IsOk());
  ASSERT_EQ(parsed->manifests.size(), 2u);
  EXPECT_EQ(parsed->manifests[0].digest, D("amd64"));
  EXPECT_EQ(parsed->manifests[1].platform->variant, "v8");
  ASSERT_TRUE(parsed->ArtifactFor(D("amd64")).has_value());
  EXPECT_EQ(parsed->ArtifactFor(D("amd64"))->digest, D("a1"));
  EXPECT_EQ(parsed->ArtifactFor(D("amd64"))->size, 1234);
  EXPECT_EQ(parsed->ArtifactFor(D("arm64"))->digest, D("a2"));
  EXPECT_FALSE(parsed->ArtifactFor(D("other")).has_value());
  // Artifact entries come first and carry no platform (containerd must never pick them).
  auto entries = ParseIndexManifests(*bound);
  ASSERT_THAT(entries, IsOk());
  ASSERT_EQ(entries->size(), 4u);
  EXPECT_EQ((*entries)[0].artifact_type, kClipIndexArtifactType);
  EXPECT_FALSE((*entries)[0].platform.has_value());
  EXPECT_FALSE((*entries)[1].platform.has_value());
  EXPECT_TRUE((*entries)[2].platform.has_value());
}

TEST(ImageBindingTest, BindingAgainReplacesOnlyThatPlatformsArtifact) {
  auto first = BindImageIndex(ImageIndex(), {Artifact("amd64", "old"), Artifact("arm64", "arm")});
  ASSERT_THAT(first, IsOk());
  auto again = BindImageIndex(*first, {Artifact("amd64", "new")});
  ASSERT_THAT(again, IsOk());
  auto parsed = ParseImageBinding(*again);
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->artifacts.size(), 2u);
  EXPECT_EQ(parsed->ArtifactFor(D("amd64"))->digest, D("new"));
  EXPECT_EQ(parsed->ArtifactFor(D("arm64"))->digest, D("arm"));
  EXPECT_EQ(parsed->manifests.size(), 2u);
}

TEST(ImageBindingTest, SingleManifestImage) {
  Descriptor m;
  m.media_type = kOciManifest;
  m.digest = D("only");
  m.size = 42;
  m.platform = Platform{"linux", "amd64", ""};
  auto bound = BindSingleManifest(m, {Artifact("only", "a")});
  ASSERT_THAT(bound, IsOk());
  auto parsed = ParseImageBinding(*bound);
  ASSERT_THAT(parsed, IsOk());
  ASSERT_EQ(parsed->manifests.size(), 1u);
  EXPECT_EQ(parsed->manifests[0].size, 42);
  EXPECT_EQ(parsed->manifests[0].platform->architecture, "amd64");
  EXPECT_EQ(parsed->ArtifactFor(D("only"))->digest, D("a"));
  m.platform.reset();
  EXPECT_THAT(BindSingleManifest(m, {}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ImageBindingTest, RefusesToBindAManifestTheIndexDoesNotList) {
  EXPECT_THAT(BindImageIndex(ImageIndex(), {Artifact("elsewhere", "a")}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not list")));
  EXPECT_THAT(BindImageIndex(ImageIndex(), {Artifact("amd64", "a"), Artifact("amd64", "b")}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BindImageIndex("{}", {}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ImageBindingTest, AnImageIndexWithoutArtifactsIsAnEmptyBinding) {
  auto parsed = ParseImageBinding(ImageIndex());
  ASSERT_THAT(parsed, IsOk());
  EXPECT_TRUE(parsed->artifacts.empty());
  EXPECT_EQ(parsed->manifests.size(), 2u);
}

// Each way a binding can lie about itself: refused whole.
TEST(ImageBindingTest, RefusesInconsistentBindings) {
  const std::string amd = D("amd64").ToString();
  auto with_entry = [&](const std::string& entry) {
    std::string index = ImageIndex();
    return index.insert(index.find("[{") + 1, entry + ",");
  };
  const std::string art =
      absl::StrCat(R"({"mediaType":"application/vnd.oci.image.manifest.v1+json",)",
                   R"("artifactType":"application/vnd.clip.index.v1","digest":")",
                   D("a").ToString(), R"(","size":3)");
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  } cases[] = {
      {"platform",
       with_entry(art + R"(,"platform":{"os":"linux","architecture":"amd64"},)" +
                  R"("annotations":{"dev.clip.index.manifest":")" + amd + R"("}})"),
       "has a platform"},
      {"no annotation", with_entry(art + "}"), "names no manifest"},
      {"bad digest", with_entry(art + R"(,"annotations":{"dev.clip.index.manifest":"sha256:zz"}})"),
       "artifact"},
      {"another image's manifest",
       with_entry(art + R"(,"annotations":{"dev.clip.index.manifest":")" + D("other").ToString() +
                  R"("}})"),
       "does not list"},
      {"two for one manifest",
       with_entry(art + R"(,"annotations":{"dev.clip.index.manifest":")" + amd + R"("}},)" + art +
                  R"(,"annotations":{"dev.clip.index.manifest":")" + amd + R"("}})"),
       "two artifacts"},
      {"not JSON", "{", "not JSON"},
      {"a manifest, not an index", R"({"mediaType":"application/vnd.oci.image.manifest.v1+json"})",
       "not an OCI image index"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseImageBinding(c.bytes),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(c.message)))
        << c.what;
  }
}

}  // namespace
}  // namespace clip
