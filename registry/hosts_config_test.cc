#include "registry/hosts_config.h"

#include <sys/stat.h>

#include <fstream>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

TEST(HostsTomlTest, MirrorsInFileOrderThenServer) {
  auto eps = ParseHostsToml("docker.io", R"(
server = "https://registry-1.docker.io"
skip_verify = false

[host."https://z-mirror.internal:5000"]
  capabilities = ["pull", "resolve"]
  ca = "/etc/ca-z.pem"

[host."http://a-mirror.internal/registry/v2"]
  capabilities = ["pull"]
  override_path = true
  skip_verify = true
  client = [["/c.pem", "/k.pem"]]
)",
                            "test.toml");
  ASSERT_THAT(eps, IsOk());
  ASSERT_EQ(eps->size(), 3u);
  const auto& z = (*eps)[0];  // First in the file, though it sorts last by name.
  EXPECT_EQ(z.scheme, "https");
  EXPECT_EQ(z.host, "z-mirror.internal:5000");
  EXPECT_EQ(z.path_prefix, "/v2");
  EXPECT_TRUE(z.pull && z.resolve && !z.push);
  EXPECT_EQ(z.tls.ca_file, "/etc/ca-z.pem");
  const auto& a = (*eps)[1];
  EXPECT_EQ(a.scheme, "http");
  EXPECT_EQ(a.path_prefix, "/registry/v2");
  EXPECT_TRUE(a.pull && !a.resolve && !a.push);
  EXPECT_TRUE(a.tls.insecure_skip_verify);
  EXPECT_EQ(a.tls.client_cert, "/c.pem");
  EXPECT_EQ(a.tls.client_key, "/k.pem");
  const auto& server = (*eps)[2];
  EXPECT_EQ(server.host, "registry-1.docker.io");
  EXPECT_TRUE(server.pull && server.resolve && server.push);
}

// The server listed as a [host] too is one endpoint, tried once where the table puts it
// (else every miss asked the same registry twice).
TEST(HostsTomlTest, ServerAlsoListedAsHostIsTriedOnce) {
  auto eps = ParseHostsToml("reg.internal:5000", R"(
server = "https://reg.internal:5000"
[host."https://mirror.internal"]
  capabilities = ["pull", "resolve"]
[host."https://reg.internal:5000"]
  capabilities = ["pull", "resolve", "push"]
  ca = "/etc/reg-ca.pem"
)",
                            "t");
  ASSERT_THAT(eps, IsOk());
  ASSERT_EQ(eps->size(), 2u);
  EXPECT_EQ((*eps)[0].host, "mirror.internal");
  EXPECT_EQ((*eps)[1].host, "reg.internal:5000");
  EXPECT_EQ((*eps)[1].tls.ca_file, "/etc/reg-ca.pem");
  // Another path on the same host is another endpoint.
  auto other = ParseHostsToml("reg.internal", R"(
server = "https://reg.internal"
[host."https://reg.internal/mirror/v2"]
  override_path = true
)",
                              "t");
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(other->size(), 2u);
}

TEST(HostsTomlTest, PlainHttpServerAndDefaults) {
  auto eps = ParseHostsToml("127.0.0.1:5000", R"(server = "http://127.0.0.1:5000")", "t");
  ASSERT_THAT(eps, IsOk());
  ASSERT_EQ(eps->size(), 1u);
  EXPECT_EQ((*eps)[0].scheme, "http");
  EXPECT_EQ((*eps)[0].host, "127.0.0.1:5000");
  auto empty = ParseHostsToml("example.com", "", "t");
  ASSERT_THAT(empty, IsOk());
  EXPECT_EQ((*empty)[0].scheme, "https");
  EXPECT_EQ((*empty)[0].host, "example.com");
}

TEST(HostsTomlTest, Errors) {
  EXPECT_EQ(ParseHostsToml("h", "server = ", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHostsToml("h", R"(server = "ftp://h")", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHostsToml("h", "[host.\"no-scheme\"]\n", "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseHostsToml("h", "ca = 5", "t").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HostsDirectoryTest, ReadsPerHostThenDefault) {
  std::string dir = std::string(getenv("TEST_TMPDIR")) + "/certs.d";
  mkdir(dir.c_str(), 0755);
  mkdir((dir + "/reg.example:5000").c_str(), 0755);
  mkdir((dir + "/_default").c_str(), 0755);
  std::ofstream(dir + "/reg.example:5000/hosts.toml") << "server = \"http://reg.example:5000\"\n";
  std::ofstream(dir + "/_default/hosts.toml") << "[host.\"https://fallback-mirror\"]\n";
  HostsDirectory hosts(dir);
  auto a = hosts.Endpoints("reg.example:5000");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].scheme, "http");
  auto b = hosts.Endpoints("other.example");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].host, "fallback-mirror");
  EXPECT_EQ(b[1].host, "other.example");
  std::ofstream(dir + "/_default/hosts.toml") << "garbage = = =\n";
  auto c = hosts.Endpoints("other.example");  // Malformed: default endpoint, no crash.
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].host, "other.example");
}

}  // namespace
}  // namespace clip
