#include "registry/docker_config.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

std::string Dir() { return getenv("TEST_TMPDIR"); }

std::string Write(const std::string& name, const std::string& text, mode_t mode = 0644) {
  std::string path = Dir() + "/" + name;
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
  return path;
}

class DockerConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A helper speaking the docker credential-helper protocol.
    Write("docker-credential-fake",
          "#!/bin/sh\nread host\n"
          "case \"$host\" in\n"
          "  helper.example) echo "
          "'{\"ServerURL\":\"helper.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}';;\n"
          "  token.example) echo '{\"Username\":\"<token>\",\"Secret\":\"refresh-tok\"}';;\n"
          "  broken.example) echo 'not json';;\n"
          "  *) echo 'credentials not found in native keychain'; exit 1;;\n"
          "esac\n",
          0755);
    Write("docker-credential-failing", "#!/bin/sh\necho boom >&2\nexit 3\n", 0755);
  }
};

TEST_F(DockerConfigTest, AuthsHelpersAndStore) {
  std::string path = Write("config.json", R"({
    "auths": {
      "https://index.docker.io/v1/": {"auth": "aHVidXNlcjpodWJwYXNz"},
      "localhost:5000": {"username": "lu", "password": "lp"},
      "id.example": {"identitytoken": "idtok"},
      "helper.example": {"auth": "c2hhZG93ZWQ6eA=="}
    },
    "credHelpers": {"helper.example": "fake", "token.example": "fake", "broken.example": "fake",
                    "failing.example": "failing"},
    "credsStore": "fake"
  })");
  DockerConfigCredentials creds(path, Dir());
  auto hub = creds.Get("docker.io");
  ASSERT_THAT(hub, IsOk());
  ASSERT_TRUE(hub->has_value());
  EXPECT_EQ((*hub)->username, "hubuser");
  EXPECT_EQ((*hub)->password, "hubpass");
  auto local = creds.Get("localhost:5000");
  ASSERT_TRUE(local.ok() && local->has_value());
  EXPECT_EQ((*local)->password, "lp");
  auto id = creds.Get("id.example");
  ASSERT_TRUE(id.ok() && id->has_value());
  EXPECT_EQ((*id)->identity_token, "idtok");
  auto helped = creds.Get("helper.example");  // credHelpers beat auths.
  ASSERT_TRUE(helped.ok() && helped->has_value()) << helped.status();
  EXPECT_EQ((*helped)->username, "hu");
  EXPECT_EQ((*helped)->password, "hs");
  auto token = creds.Get("token.example");
  ASSERT_TRUE(token.ok() && token->has_value());
  EXPECT_EQ((*token)->identity_token, "refresh-tok");
  auto store_miss = creds.Get("elsewhere.example");  // credsStore says "not found".
  ASSERT_THAT(store_miss, IsOk());
  EXPECT_FALSE(store_miss->has_value());
  auto broken = creds.Get("broken.example");
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kInvalidArgument);
  auto failing = creds.Get("failing.example");
  EXPECT_EQ(failing.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(DockerConfigTest, MissingAndMalformedFiles) {
  DockerConfigCredentials none(Dir() + "/no-such.json", Dir());
  auto r = none.Get("docker.io");
  ASSERT_THAT(r, IsOk());
  EXPECT_FALSE(r->has_value());
  DockerConfigCredentials bad(Write("bad.json", "{not json"), Dir());
  EXPECT_EQ(bad.Get("docker.io").status().code(), absl::StatusCode::kInvalidArgument);
  DockerConfigCredentials bad64(Write("bad64.json", R"({"auths":{"h":{"auth":"%%%"}}})"), Dir());
  absl::Status s = bad64.Get("h").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  DockerConfigCredentials nohelper(Write("nohelper.json", R"({"credsStore":"absent"})"), Dir());
  EXPECT_EQ(nohelper.Get("h").status().code(), absl::StatusCode::kNotFound);
}

TEST(ChallengeTest, ParsesBearerAndBasic) {
  auto c = ParseChallenge(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.example/token");
  EXPECT_EQ(c->params["scope"], "repository:a/b:pull,push");
  auto b = ParseChallenge(R"(Basic realm="x \"quoted\"")");
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(b->scheme, "basic");
  EXPECT_EQ(b->params["realm"], "x \"quoted\"");
  EXPECT_THAT(ParseChallenge(R"(Bearer realm="unterminated)"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseChallenge(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(BasicAuthorization({"a", "b", "", ""}), "Basic YTpi");
}

}  // namespace
}  // namespace clip
