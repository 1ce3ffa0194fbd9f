// Credentials from pulls: by host, the newest pull's wins, gone with the host's last
// image (removed by its name or its id), the node's docker config for every other host.
#include "registry/pulled_credentials.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(PulledCredentialsTest, KeptPerHostUntilTheLastImageGoes) {
  auto node = std::make_shared<StaticCredentials>(
      std::map<std::string, Credential>{{"other.example", {"node", "pw", ""}}});
  PulledCredentials pulled(node);
  EXPECT_FALSE(pulled.Get("reg.example")->has_value());
  pulled.Keep("reg.example", "reg.example/a:v1", "sha256:aaa", {"alice", "one", ""});
  pulled.Keep("reg.example", "reg.example/b:v1", "sha256:bbb", {"alice", "two", ""});
  EXPECT_EQ((*pulled.Get("reg.example"))->password, "two");  // the newest pull's
  EXPECT_EQ((*pulled.Get("other.example"))->username, "node");
  EXPECT_EQ(pulled.hosts(), 1u);

  pulled.Drop("sha256:aaa");                            // image a, by its id
  EXPECT_TRUE(pulled.Get("reg.example")->has_value());  // b still uses it
  pulled.Drop("reg.example/b:v1");                      // image b, by its name
  EXPECT_FALSE(pulled.Get("reg.example")->has_value());
  EXPECT_EQ(pulled.hosts(), 0u);
  pulled.Drop("never pulled");  // nothing to drop: fine
}

}  // namespace
}  // namespace clip
