// Credentials from pulls: by host, from the start of the pull, forgotten when it fails,
// the newest pull's wins, gone with the host's last image (removed by its name or its
// id), the node's docker config for every other host; a round trip through the
// serialized form another daemon takes over, and what is not that form refused.
#include "registry/pulled_credentials.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

TEST(PulledCredentialsTest, KeptPerHostUntilTheLastImageGoes) {
  auto node = std::make_shared<StaticCredentials>(
      std::map<std::string, Credential>{{"other.example", {"node", "pw", "", ""}}});
  PulledCredentials pulled(node);
  int changes = 0, forgot = 0;
  pulled.set_on_change([&](bool f) {
    ++changes;
    forgot += f;
  });
  EXPECT_FALSE(pulled.Get("reg.example")->has_value());
  uint64_t a = pulled.Pulling("reg.example", "reg.example/a:v1", {"alice", "one", "", ""});
  EXPECT_EQ((*pulled.Get("reg.example"))->password, "one");  // while the pull runs
  pulled.Pulled(a, true, "sha256:aaa");
  uint64_t b = pulled.Pulling("reg.example", "reg.example/b:v1", {"alice", "two", "", ""});
  pulled.Pulled(b, true, "sha256:bbb");
  EXPECT_EQ((*pulled.Get("reg.example"))->password, "two");  // the newest pull's
  EXPECT_EQ((*pulled.Get("other.example"))->username, "node");
  EXPECT_EQ(pulled.hosts(), 1u);

  EXPECT_TRUE(pulled.Drop("sha256:bbb"));                    // image b, by its id
  EXPECT_EQ((*pulled.Get("reg.example"))->password, "one");  // a's again
  EXPECT_TRUE(pulled.Drop("reg.example/a:v1"));              // image a, by its name
  EXPECT_FALSE(pulled.Get("reg.example")->has_value());
  EXPECT_EQ(pulled.hosts(), 0u);
  EXPECT_FALSE(pulled.Drop("never pulled"));
  EXPECT_EQ(changes, 6);
  EXPECT_EQ(forgot, 2);  // the two drops
}

TEST(PulledCredentialsTest, AFailedPullLeavesNothing) {
  PulledCredentials pulled;
  uint64_t good = pulled.Pulling("reg.example", "reg.example/a:v1", {"alice", "right", "", ""});
  pulled.Pulled(good, true, "sha256:aaa");
  uint64_t bad = pulled.Pulling("reg.example", "reg.example/a:v1", {"alice", "wrong", "", ""});
  EXPECT_EQ((*pulled.Get("reg.example"))->password, "wrong");  // in flight: the newest
  pulled.Pulled(bad, false, "");
  EXPECT_EQ((*pulled.Get("reg.example"))->password, "right");
  pulled.Pulled(bad, true, "sha256:late");  // ended already: nothing
  EXPECT_FALSE(pulled.Drop("sha256:late"));
}

TEST(PulledCredentialsTest, APullAgainReplacesTheImagesCredential) {
  PulledCredentials pulled;
  pulled.Pulled(pulled.Pulling("reg.example", "reg.example/a:v1", {"u", "old", "", ""}), true,
                "sha256:a");
  pulled.Pulled(pulled.Pulling("reg.example", "reg.example/a:v1", {"u", "new", "", ""}), true,
                "sha256:a");
  EXPECT_EQ((*pulled.Get("reg.example"))->password, "new");
  EXPECT_TRUE(pulled.Drop("sha256:a"));  // one image, one drop
  EXPECT_FALSE(pulled.Get("reg.example")->has_value());
}

TEST(PulledCredentialsTest, SerializedForTheNextDaemon) {
  PulledCredentials pulled;
  // Bytes a netstring must carry: separators, newlines, NUL, non-UTF-8.
  const std::string odd("p:a,s\ns\0\xff", 9);
  pulled.Pulled(pulled.Pulling("reg.example", "reg.example/a:v1", {"alice", odd, "", ""}), true,
                "sha256:aaa");
  pulled.Pulled(pulled.Pulling("b.example:5000", "b.example:5000/b", {"", "", "refresh", "bearer"}),
                true, "");
  pulled.Pulling("c.example", "c.example/c", {"in", "flight", "", ""});  // not handed over
  const std::string s = pulled.Serialize();

  PulledCredentials next;
  ASSERT_THAT(next.Restore(s), testing::IsOk());
  EXPECT_EQ(next.hosts(), 2u);
  EXPECT_EQ((*next.Get("reg.example"))->password, odd);
  EXPECT_EQ((*next.Get("b.example:5000"))->identity_token, "refresh");
  EXPECT_EQ((*next.Get("b.example:5000"))->registry_token, "bearer");
  EXPECT_FALSE(next.Get("c.example")->has_value());
  EXPECT_TRUE(next.Drop("sha256:aaa"));
  EXPECT_TRUE(next.Drop("b.example:5000/b"));
  EXPECT_EQ(next.hosts(), 0u);

  // Every truncation and a few corruptions: kDataLoss, never a crash, nothing kept.
  for (size_t n = 0; n < s.size(); ++n) {
    PulledCredentials broken;
    absl::Status st = broken.Restore(s.substr(0, n));
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << n;
    EXPECT_EQ(broken.hosts(), 0u) << n;
  }
  for (const char* bad :
       {"clip-pulled-credentials 2\n", "clip-pulled-credentials 1\n99999999999:x,",
        "clip-pulled-credentials 1\n1:1,1:a,0:,0:,0:,0:,10:4294967296,",
        "clip-pulled-credentials 1\n1:1,1:a,0:,0:,0:,0:,1:1,5:ab,",
        "clip-pulled-credentials 1\n1:0,extra"}) {
    PulledCredentials broken;
    EXPECT_EQ(broken.Restore(bad).code(), absl::StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace clip
