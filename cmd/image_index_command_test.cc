// `clipctl index IMAGE --push` against a real docker-registry with TLS (self-signed CA,
// trusted only through a containerd hosts.toml directory) and basic auth (credentials
// only in a docker config.json): the registry settings are the daemon's own
// (RegistryOptionsFrom a DaemonConfig), so what indexes here also mounts there.
#include "cmd/image_index_command.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "index/index_format.h"
#include "registry/image_binding.h"
#include "registry/index_artifact.h"
#include "registry/testing/registry_server.h"
#include "snapshotter/registry_setup.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

std::string Desc(const std::string& media_type, const std::string& bytes) {
  return absl::StrFormat(R"({"mediaType":"%s","digest":"%s","size":%d})", media_type,
                         Digest::Of(bytes).ToString(), bytes.size());
}

TEST(ImageIndexCommandTest, IndexesAndPushesWithTheDaemonsTlsAndCredentials) {
  auto registry = testing::RegistryServer::Start({.tls = true, .htpasswd = true});
  ASSERT_THAT(registry, IsOk());
  const std::string host = (*registry)->host();
  std::string dir = testing::MakeTempDir("imgidx");
  // The daemon's configuration: hosts.toml with the CA, docker config with the password.
  ASSERT_EQ(mkdir((dir + "/certs.d").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((dir + "/certs.d/" + host).c_str(), 0700), 0);
  std::ofstream(dir + "/certs.d/" + host + "/hosts.toml")
      << "server = \"https://" << host << "\"\nca = \"" << (*registry)->ca_file() << "\"\n";
  std::ofstream(dir + "/config.json")
      << R"({"auths":{")" << host << R"(":{"auth":")"
      << absl::Base64Escape(
             absl::StrCat(testing::RegistryServer::kUser, ":", testing::RegistryServer::kPassword))
      << "\"}}}";
  DaemonConfig config;
  config.hosts_dir = dir + "/certs.d";
  config.docker_config = dir + "/config.json";
  RegistryClient client(RegistryOptionsFrom(config));

  // An image: two real layers (a gzip tar and a plain tar) and a foreign zstd one.
  ASSERT_TRUE(testing::RunCommand("mkdir -p " + dir + "/a/etc " + dir + "/b/srv && echo a > " +
                                  dir + "/a/etc/a && head -c 3000000 /dev/urandom > " + dir +
                                  "/b/srv/data && tar -czf " + dir + "/a.tgz -C " + dir +
                                  "/a . && tar -cf " + dir + "/b.tar -C " + dir + "/b .")
                  .ok());
  const std::string a = testing::ReadFileOrEmpty(dir + "/a.tgz");
  const std::string b = testing::ReadFileOrEmpty(dir + "/b.tar");
  const std::string zstd = "not really zstd";
  const std::string cfg = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}})";
  Reference image = Reference::Parse(host + "/app/web:v1").value();
  for (const std::string* blob : {&a, &b, &zstd, &cfg}) {
    absl::Status pushed = client.PushBlob(image, Digest::Of(*blob), *blob);
    ASSERT_THAT(pushed, IsOk());
  }
  std::string manifest =
      absl::StrCat(R"({"schemaVersion":2,"mediaType":")", kOciManifest, R"(","config":)",
                   Desc("application/vnd.oci.image.config.v1+json", cfg), R"(,"layers":[)",
                   Desc("application/vnd.oci.image.layer.v1.tar+gzip", a), ",",
                   Desc("application/vnd.oci.image.layer.v1.tar", b), ",",
                   Desc("application/vnd.oci.image.layer.v1.tar+zstd", zstd), "]}");
  Digest manifest_digest = client.PushManifest(image, "v1", kOciManifest, manifest).value();

  ImageIndexOptions options;
  options.image = image.ToString();
  options.push = true;
  options.store_dir = dir + "/store";
  options.tmp_dir = dir;
  std::ostringstream out, progress;
  absl::Status st = ImageIndexCommand(options, client, out, progress);
  ASSERT_THAT(st, IsOk()) << st << "\n" << out.str();
  EXPECT_NE(out.str().find("not indexable"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("pushed"), std::string::npos) << out.str();
  EXPECT_TRUE(progress.str().empty());  // not a terminal

  auto published = FetchPublishedIndexes(client, image, manifest_digest);
  ASSERT_THAT(published, IsOk());
  ASSERT_EQ(published->size(), 2u);
  for (const std::string* layer : {&a, &b}) {
    const std::string& encoded = published->at(Digest::Of(*layer).ToString());
    auto decoded = DecodeIndex(encoded);
    ASSERT_THAT(decoded, IsOk());
    EXPECT_EQ(decoded->layer_digest(), Digest::Of(*layer).ToString());
    EXPECT_EQ(testing::ReadFileOrEmpty(options.store_dir + "/" + Digest::Of(*layer).Hex()),
              encoded);
  }
  // The tag moved to the binding: the same manifest (with its config's platform) and the
  // artifact the referrers name, bound to it.
  auto referrers = client.Referrers(image, manifest_digest, kClipIndexArtifactType);
  ASSERT_THAT(referrers, IsOk());
  ASSERT_EQ(referrers->size(), 1u);
  auto expect_bound = [&](const Reference& tag) {
    auto top = client.FetchManifest(tag);
    ASSERT_THAT(top, IsOk());
    EXPECT_EQ(top->media_type, kOciIndex);
    auto binding = ParseImageBinding(top->bytes);
    ASSERT_THAT(binding, IsOk());
    ASSERT_EQ(binding->manifests.size(), 1u);
    EXPECT_EQ(binding->manifests[0].digest, manifest_digest);
    EXPECT_EQ(binding->manifests[0].platform->ToString(), "linux/amd64");
    ASSERT_EQ(binding->artifacts.size(), 1u);
    EXPECT_EQ(binding->ArtifactFor(manifest_digest)->digest, referrers->back().digest);
    auto resolved = client.Resolve(tag, Platform{"linux", "amd64", ""});
    ASSERT_THAT(resolved, IsOk());
    EXPECT_EQ(resolved->digest, manifest_digest) << "a runtime resolves the same image";
  };
  expect_bound(image);
  EXPECT_NE(out.str().find("bound " + image.Name() + ":v1"), std::string::npos) << out.str();
  // Indexing the bound tag again replaces its artifact entry; a digest reference binds
  // only to a tag it is given.
  ASSERT_THAT(ImageIndexCommand(options, client, out, progress), IsOk());
  expect_bound(image);
  options.image = host + "/app/web@" + manifest_digest.ToString();
  out.str("");
  ASSERT_THAT(ImageIndexCommand(options, client, out, progress), IsOk());
  EXPECT_NE(out.str().find("not bound"), std::string::npos) << out.str();
  options.bind_tag = "v1-bound";
  ASSERT_THAT(ImageIndexCommand(options, client, out, progress), IsOk());
  expect_bound(Reference::Parse(host + "/app/web:v1-bound").value());
  options.bind_tag.clear();
  options.image = image.ToString();

  // No temporary layer file is left behind.
  EXPECT_EQ(testing::RunCommand("ls " + dir + " | grep -c clip-layer || true").value(), "0\n");

  // Without the credentials the same command fails clearly, and publishes nothing new.
  DaemonConfig anonymous = config;
  anonymous.docker_config = dir + "/none.json";
  RegistryClient no_auth(RegistryOptionsFrom(anonymous));
  absl::Status denied = ImageIndexCommand(options, no_auth, out, progress);
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied) << denied;
}

TEST(ImageIndexCommandTest, BadReferenceAndMissingImage) {
  RegistryClient client(RegistryClient::Options{});
  std::ostringstream out, progress;
  ImageIndexOptions options;
  options.image = "Not A Reference";
  EXPECT_EQ(ImageIndexCommand(options, client, out, progress).code(),
            absl::StatusCode::kInvalidArgument);
  auto registry = testing::RegistryServer::Start({});
  ASSERT_THAT(registry, IsOk());
  DaemonConfig config;
  config.plain_http = {(*registry)->host()};
  RegistryClient plain(RegistryOptionsFrom(config));
  options.image = (*registry)->host() + "/no/such:image";
  EXPECT_EQ(ImageIndexCommand(options, plain, out, progress).code(), absl::StatusCode::kNotFound);
  options.platform = "linux";
  EXPECT_EQ(ImageIndexCommand(options, plain, out, progress).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace clip
