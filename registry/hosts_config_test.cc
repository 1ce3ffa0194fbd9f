#include "registry/hosts_config.h"

#include <sys/stat.h>

#include <fstream>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Each endpoint as scheme://host/path_prefix.
std::vector<std::string> Urls(const std::vector<RegistryEndpoint>& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps) out.push_back(e.scheme + "://" + e.host + e.path_prefix);
  return out;
}

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

// Issue 23: the server also listed as a [host] without push. containerd keeps both
// entries: the [host] with its capabilities, then the server with all of them, so a
// push goes to the server and a pull tries the [host] first, then the server.
TEST(HostsTomlTest, ServerAlsoListedAsHostWithoutPushStillPushes) {
  auto eps = ParseHostsToml("127.0.0.1:5055", R"(
server = "http://127.0.0.1:5055"
[host."http://127.0.0.1:5055"]
  capabilities = ["pull", "resolve"]
)",
                            "t");
  ASSERT_THAT(eps, IsOk());
  ASSERT_EQ(eps->size(), 2u);
  EXPECT_TRUE((*eps)[0].pull && (*eps)[0].resolve && !(*eps)[0].push);  // the [host]
  EXPECT_TRUE((*eps)[1].pull && (*eps)[1].resolve && (*eps)[1].push);   // the server
  EXPECT_THAT(Urls(*eps), ElementsAre("http://127.0.0.1:5055/v2", "http://127.0.0.1:5055/v2"));

  std::vector<RegistryEndpoint> push = EndpointsFor(*eps, Capability::kPush);
  ASSERT_EQ(push.size(), 1u);
  EXPECT_TRUE(push[0].push);  // the server entry, not the [host]
  EXPECT_EQ(push[0].scheme, "http");
  EXPECT_EQ(push[0].host, "127.0.0.1:5055");
  for (Capability op : {Capability::kPull, Capability::kResolve}) {
    std::vector<RegistryEndpoint> read = EndpointsFor(*eps, op);
    ASSERT_EQ(read.size(), 2u) << CapabilityName(op);
    EXPECT_FALSE(read[0].push) << "the [host] comes first for " << CapabilityName(op);
    EXPECT_TRUE(read[1].push) << "then the server for " << CapabilityName(op);
  }

  // The same [host] with push as well: still two entries (nothing is deduplicated),
  // and a push goes to the first, the [host] with its own CA.
  auto both = ParseHostsToml("reg.internal:5000", R"(
server = "https://reg.internal:5000"
[host."https://mirror.internal"]
  capabilities = ["pull", "resolve"]
[host."https://reg.internal:5000"]
  capabilities = ["pull", "resolve", "push"]
  ca = "/etc/reg-ca.pem"
)",
                             "t");
  ASSERT_THAT(both, IsOk());
  EXPECT_THAT(Urls(*both), ElementsAre("https://mirror.internal/v2", "https://reg.internal:5000/v2",
                                       "https://reg.internal:5000/v2"));
  push = EndpointsFor(*both, Capability::kPush);
  ASSERT_EQ(push.size(), 1u);
  EXPECT_EQ(push[0].tls.ca_file, "/etc/reg-ca.pem");
  EXPECT_THAT(Urls(EndpointsFor(*both, Capability::kPull)),
              ElementsAre("https://mirror.internal/v2", "https://reg.internal:5000/v2",
                          "https://reg.internal:5000/v2"));
}

// Per operation: the [host] tables with that capability in file order, then the server;
// a push goes to the first capable endpoint only (containerd's pusher uses hosts[0]).
TEST(HostsTomlTest, SeveralHostsPerOperation) {
  auto eps = ParseHostsToml("reg.example", R"(
server = "https://reg.example"
[host."https://c-pull-only"]
  capabilities = ["pull"]
[host."https://b-all"]
[host."https://a-resolve-only"]
  capabilities = ["resolve"]
[host."https://d-push-only"]
  capabilities = ["push"]
[host."https://e-pull-resolve"]
  capabilities = ["PULL", "Resolve"]
)",
                            "t");
  ASSERT_THAT(eps, IsOk());
  EXPECT_THAT(Urls(*eps), ElementsAre("https://c-pull-only/v2", "https://b-all/v2",
                                      "https://a-resolve-only/v2", "https://d-push-only/v2",
                                      "https://e-pull-resolve/v2", "https://reg.example/v2"));
  EXPECT_THAT(Urls(EndpointsFor(*eps, Capability::kPull)),
              ElementsAre("https://c-pull-only/v2", "https://b-all/v2", "https://e-pull-resolve/v2",
                          "https://reg.example/v2"));
  // A tag is resolved only where pulling is allowed too: a-resolve-only is never asked.
  EXPECT_THAT(
      Urls(EndpointsFor(*eps, Capability::kResolve)),
      ElementsAre("https://b-all/v2", "https://e-pull-resolve/v2", "https://reg.example/v2"));
  EXPECT_THAT(Urls(EndpointsFor(*eps, Capability::kPush)), ElementsAre("https://b-all/v2"));
}

TEST(HostsTomlTest, CapabilitiesDefaultToAll) {
  auto eps = ParseHostsToml("reg.example", R"(
server = "https://reg.example"
[host."https://absent"]
[host."https://empty"]
  capabilities = []
)",
                            "t");
  ASSERT_THAT(eps, IsOk());
  ASSERT_EQ(eps->size(), 3u);
  for (const auto& e : *eps) EXPECT_TRUE(e.pull && e.resolve && e.push) << e.host;
  EXPECT_THAT(Urls(EndpointsFor(*eps, Capability::kPush)), ElementsAre("https://absent/v2"));
}

// The top-level keys are the server's: its capabilities, TLS and override_path.
TEST(HostsTomlTest, TopLevelKeysConfigureTheServer) {
  auto eps = ParseHostsToml("reg.example", R"(
server = "https://reg.example/api"
override_path = true
capabilities = ["pull", "resolve"]
ca = "certs/ca.pem"
client = "/abs/client.pem"
skip_verify = true
[host."http://mirror:5000"]
  capabilities = ["pull"]
  ca = ["mirror-ca.pem", "ignored.pem"]
)",
                            "/etc/containerd/certs.d/reg.example/hosts.toml");
  ASSERT_THAT(eps, IsOk());
  ASSERT_EQ(eps->size(), 2u);
  const RegistryEndpoint& server = (*eps)[1];
  EXPECT_EQ(server.path_prefix, "/api");
  EXPECT_TRUE(server.pull && server.resolve && !server.push);
  EXPECT_EQ(server.tls.ca_file, "/etc/containerd/certs.d/reg.example/certs/ca.pem");
  EXPECT_EQ(server.tls.client_cert, "/abs/client.pem");
  EXPECT_TRUE(server.tls.insecure_skip_verify);
  EXPECT_EQ((*eps)[0].tls.ca_file, "/etc/containerd/certs.d/reg.example/mirror-ca.pem");
  EXPECT_FALSE((*eps)[0].tls.insecure_skip_verify);
  // Nothing may push: no endpoint at all, not a wrong one.
  EXPECT_THAT(EndpointsFor(*eps, Capability::kPush), IsEmpty());
}

// Without `server`, the registry itself is the last endpoint, with all capabilities
// (top-level capabilities do not apply to it): https, registry-1.docker.io for docker.io,
// http with skip_verify for localhost and loopback addresses.
TEST(HostsTomlTest, ServerAbsentIsTheRegistryItself) {
  auto eps = ParseHostsToml("reg.example:5000", R"(
capabilities = ["pull"]
ca = "/ca.pem"
[host."mirror.internal"]
  capabilities = ["pull", "resolve"]
)",
                            "t");
  ASSERT_THAT(eps, IsOk());
  EXPECT_THAT(Urls(*eps), ElementsAre("https://mirror.internal/v2", "https://reg.example:5000/v2"));
  const RegistryEndpoint& server = (*eps)[1];
  EXPECT_TRUE(server.pull && server.resolve && server.push);
  EXPECT_EQ(server.tls.ca_file, "/ca.pem");
  EXPECT_FALSE(server.tls.insecure_skip_verify);
  EXPECT_THAT(Urls(EndpointsFor(*eps, Capability::kPush)),
              ElementsAre("https://reg.example:5000/v2"));

  auto hub = ParseHostsToml("docker.io", "[host.\"https://m\"]\n", "t");
  ASSERT_THAT(hub, IsOk());
  EXPECT_THAT(Urls(*hub), ElementsAre("https://m/v2", "https://registry-1.docker.io/v2"));

  for (const char* local :
       {"127.0.0.1:5055", "localhost:5000", "localhost", "127.1.2.3", "[::1]:5000", "::1"}) {
    auto l = ParseHostsToml(local, "skip_verify = false\n", "t");
    ASSERT_THAT(l, IsOk());
    ASSERT_EQ(l->size(), 1u);
    EXPECT_EQ((*l)[0].scheme, "http") << local;
    EXPECT_EQ((*l)[0].host, local);
    EXPECT_TRUE((*l)[0].tls.insecure_skip_verify) << local;
  }
  for (const char* remote : {"128.0.0.1:5000", "localhost.example", "[::2]:5000"}) {
    auto r = ParseHostsToml(remote, "", "t");
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ((*r)[0].scheme, "https") << remote;
  }
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
  EXPECT_EQ(ParseHostsToml("h", "ca = 5", "t").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      ParseHostsToml("h", "[host.\"https://m\"]\ncapabilities = [\"pull\", \"fetch\"]\n", "t"),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseHostsToml("h", "capabilities = [\"delete\"]\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseHostsToml("h", "capabilities = \"pull\"\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseHostsToml("h", "server = 5\n", "t"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Without a scheme, a URL is https (containerd's rule), not an error.
  auto bare = ParseHostsToml("h", "server = \"h:5000/x\"\n[host.\"no-scheme\"]\n", "t");
  ASSERT_THAT(bare, IsOk());
  EXPECT_THAT(Urls(*bare), ElementsAre("https://no-scheme/v2", "https://h:5000/x/v2"));
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

// containerd's HostDirFromRoot: for host:port, "host_port_" first, then "host:port",
// then _default; the first directory that exists is the domain's, even without a
// hosts.toml (then the registry alone, not _default's mirrors).
TEST(HostsDirectoryTest, DirectoryLookupFollowsContainerd) {
  std::string dir = std::string(getenv("TEST_TMPDIR")) + "/lookup.d";
  for (const char* d :
       {"", "/reg.example_5000_", "/reg.example:5000", "/_default", "/bare.example:443"}) {
    mkdir((dir + d).c_str(), 0755);
  }
  std::ofstream(dir + "/reg.example_5000_/hosts.toml") << "server = \"http://underscored\"\n";
  std::ofstream(dir + "/reg.example:5000/hosts.toml") << "server = \"http://colon\"\n";
  std::ofstream(dir + "/_default/hosts.toml") << "[host.\"https://fallback-mirror\"]\n";
  HostsDirectory hosts(dir);
  EXPECT_THAT(Urls(hosts.Endpoints("reg.example:5000")), ElementsAre("http://underscored/v2"));
  EXPECT_THAT(Urls(hosts.Endpoints("bare.example:443")),
              ElementsAre("https://bare.example:443/v2"));
  EXPECT_THAT(Urls(hosts.Endpoints("127.0.0.1:9")),
              ElementsAre("https://fallback-mirror/v2", "http://127.0.0.1:9/v2"));
  // No hosts directory at all: the registry itself (http for loopback, as containerd).
  HostsDirectory none(dir + "/missing");
  EXPECT_THAT(Urls(none.Endpoints("127.0.0.1:9")), ElementsAre("http://127.0.0.1:9/v2"));
  EXPECT_THAT(Urls(none.Endpoints("docker.io")), ElementsAre("https://registry-1.docker.io/v2"));
}

}  // namespace
}  // namespace clip
