#include "registry/reference.h"

#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

constexpr char kHex[] = "4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c8c44de311d1";

TEST(ReferenceTest, NormalisesLikeDocker) {
  struct Case {
    const char* in;
    const char* out;
  } cases[] = {
      {"python", "docker.io/library/python:latest"},
      {"python:3.11-slim", "docker.io/library/python:3.11-slim"},
      {"user/app", "docker.io/user/app:latest"},
      {"docker.io/python", "docker.io/library/python:latest"},
      {"index.docker.io/library/python:3", "docker.io/library/python:3"},
      {"localhost/app", "localhost/app:latest"},
      {"localhost:5000/x", "localhost:5000/x:latest"},
      {"127.0.0.1:5000/a/b/c:v1.2", "127.0.0.1:5000/a/b/c:v1.2"},
      {"ghcr.io/org/my_app__x-y.z:tag", "ghcr.io/org/my_app__x-y.z:tag"},
      {"[::1]:5000/app:1", "[::1]:5000/app:1"},
  };
  for (const auto& c : cases) {
    auto r = Reference::Parse(c.in);
    ASSERT_THAT(r, IsOk()) << c.in << ": " << r.status();
    EXPECT_EQ(r->ToString(), c.out) << c.in;
  }
}

TEST(ReferenceTest, Parts) {
  auto r = Reference::Parse(std::string("localhost:5000/team/app:v1@sha256:") + kHex);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->domain(), "localhost:5000");
  EXPECT_EQ(r->repository(), "team/app");
  EXPECT_EQ(r->tag(), "v1");
  ASSERT_TRUE(r->digest().has_value());
  EXPECT_EQ(r->ManifestReference(), std::string("sha256:") + kHex);  // The digest wins.
  EXPECT_EQ(r->Name(), "localhost:5000/team/app");

  auto d = Reference::Parse(std::string("alpine@sha256:") + kHex);
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->tag(), "");  // No implicit latest beside a digest.
  EXPECT_EQ(d->ToString(), std::string("docker.io/library/alpine@sha256:") + kHex);

  auto p = Reference::Parse("localhost:5000/app:v1");
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->WithDigest(Digest::Of("x")).ManifestReference(), Digest::Of("x").ToString());
}

TEST(ReferenceTest, RejectsInvalid) {
  for (const char* bad : {"", "UPPER/case", "app:", ":tag", "a//b", "-app", "app-", "app:-bad",
                          "app:bad tag", "localhost:port/x", "host:5000/", "a@sha256:abc", "app@",
                          "x:y:z/a", "repo/with/Upper", "a..b", "bad_-sep"}) {
    EXPECT_EQ(Reference::Parse(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(Reference::Parse(std::string("a@sha512:") + kHex).status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Reference::Parse(std::string(300, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace clip
