// The lazy path end to end in one process: a layer and its clip index published to a
// real docker-registry (the index as an OCI artifact found through the sha256-<hex> tag
// fallback), the remote-snapshot handshake (Prepare -> AlreadyExists), a container
// snapshot over the FUSE-mounted layer read through overlayfs, the fallback for a layer
// without an index, Remove unmounting, and restart recovery.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cache/disk_cache.h"
#include "cache/memory_cache.h"
#include "cache/remote_cache.h"
#include "cache/testing/nginx_server.h"
#include "common/file_blob_reader.h"
#include "common/mountinfo.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "fs/layer_fs.h"
#include "fs/mount_stack.h"
#include "fs/testing/memory_fd_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "index/access_profile.h"
#include "index/index_format.h"
#include "index/layer_indexer.h"
#include "index/span_inflater.h"
#include "registry/image_binding.h"
#include "registry/index_artifact.h"
#include "registry/testing/registry_server.h"
#include "snapshotter/grpc_snapshotter.h"
#include "snapshotter/remote_layers.h"
#include "snapshotter/snapshot_labels.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

using testing::MakeTempDir;
using testing::ReadFileOrEmpty;
using testing::RunCommand;

std::string Desc(const std::string& media_type, const std::string& bytes,
                 const std::string& extra = "") {
  return absl::StrFormat(R"({"mediaType":"%s","digest":"%s","size":%d%s})", media_type,
                         Digest::Of(bytes).ToString(), bytes.size(), extra);
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool Mounted(const std::string& path) {
  return ReadFileOrEmpty("/proc/mounts").find(" " + path + " ") != std::string::npos;
}

// Polls `done` every 10 ms until it is true or `timeout` passes; returns its last value.
// Tests wait for events this way, never for a fixed time.
bool WaitFor(absl::Duration timeout, const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// True once a tree is bound at `path`: its top mount is there and no clip FUSE mount
// (a detach unmounts, then binds: nothing is there in between).
bool TreeOnTop(const std::string& path) {
  std::vector<MountEntry> mounts = ParseMountinfo(ReadMountinfo());
  const MountEntry* top = TopMountAt(mounts, path);
  return top != nullptr && top->fstype != "fuse.clip";
}

// Mounts an overlay MountSpec at `target`; returns false on failure.
bool MountOverlay(const MountSpec& m, const std::string& target) {
  mkdir(target.c_str(), 0755);
  std::vector<std::string> opts;
  for (const auto& o : m.options) {
    if (o != "ro" && o != "rw") opts.push_back(o);
  }
  return mount("overlay", target.c_str(), "overlay", 0, absl::StrJoin(opts, ",").c_str()) == 0;
}

struct Published {
  std::string dir;
  std::unique_ptr<testing::RegistryServer> registry;
  std::unique_ptr<RegistryClient> client;
  Reference image = Reference::Parse("x/y").value();
  std::string layer;
  std::string other;
  Digest manifest_digest;
  Descriptor manifest;  // with its platform
};

// Publishes `indexes` as the clip artifact of the image's manifest and binds it: the
// image's tag v1 names the bound index (registry/image_binding.h).
void PublishBound(const Published& p, const std::vector<LayerIndexBlob>& indexes) {
  ASSERT_THAT(PublishIndexArtifact(*p.client, p.image, p.manifest, indexes), IsOk());
  Descriptor artifact;
  artifact.media_type = kOciManifest;
  const std::string json = IndexArtifactManifest(p.manifest, indexes);
  artifact.digest = Digest::Of(json);
  artifact.size = static_cast<int64_t>(json.size());
  absl::StatusOr<std::string> bound =
      BindSingleManifest(p.manifest, {{p.manifest.digest, artifact}});
  ASSERT_THAT(bound, IsOk());
  ASSERT_THAT(p.client->PushManifest(p.image, "v1", kOciIndex, *bound), IsOk());
}

// A layer, an image and the layer's clip index published to a fresh docker-registry.
void Publish(Published* p) {
  std::string dir = MakeTempDir("remote");
  p->dir = dir;
  std::string script = absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                                    "/index/testdata/make_layers.sh");
  ASSERT_THAT(RunCommand("CLIP_FIXTURES_SKIP_REAL=1 bash " + script + " " + dir +
                         "/layers >/dev/null 2>&1"),
              IsOk());
  auto registry = testing::RegistryServer::Start({});
  ASSERT_THAT(registry, IsOk());
  p->registry = *std::move(registry);
  RegistryClient::Options ro;
  ro.hosts = std::make_shared<DefaultHosts>(std::set<std::string>{p->registry->host()});
  p->client = std::make_unique<RegistryClient>(ro);
  RegistryClient& client = *p->client;
  p->image = Reference::Parse(p->registry->host() + "/clip/app:v1").value();
  Reference& image = p->image;
  p->layer = ReadFileOrEmpty(dir + "/layers/posix.tar.gz");
  p->other = "a layer without an index";
  const std::string& layer = p->layer;
  const std::string& other = p->other;
  // Publish: the layer, an image, and the layer's index as an artifact of the image.
  std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}})";
  for (const std::string* b : std::vector<const std::string*>{&layer, &config, &other}) {
    ASSERT_THAT(client.PushBlob(image, Digest::Of(*b), *b), IsOk());
  }
  std::string manifest =
      absl::StrCat(R"({"schemaVersion":2,"mediaType":")", kOciManifest, R"(","config":)",
                   Desc("application/vnd.oci.image.config.v1+json", config), R"(,"layers":[)",
                   Desc("application/vnd.oci.image.layer.v1.tar+gzip", layer), "]}");
  p->manifest_digest = client.PushManifest(image, "", kOciManifest, manifest).value();
  p->manifest.media_type = kOciManifest;
  p->manifest.digest = p->manifest_digest;
  p->manifest.size = static_cast<int64_t>(manifest.size());
  p->manifest.platform = Platform{};
  auto file = FileBlobReader::Open(dir + "/layers/posix.tar.gz").value();
  std::string index = EncodeIndex(BuildLayerIndex(*file).value());
  PublishBound(*p, {{Digest::Of(layer), index}});
}

TEST(RemoteSnapshotTest, HandshakeReadsFallbackRemoveAndRestart) {
  Published pub;
  Publish(&pub);
  if (::testing::Test::HasFatalFailure()) return;
  const std::string& dir = pub.dir;
  RegistryClient& client = *pub.client;
  const Reference& image = pub.image;
  const std::string& layer = pub.layer;
  const std::string& other = pub.other;
  const Digest& manifest_digest = pub.manifest_digest;
  auto labels_for = [&](const std::string& ref, const std::string& blob) {
    return Labels{{kSnapshotRefLabel, ref},
                  {kImageRefLabel, image.ToString()},
                  {kLayerDigestLabel, Digest::Of(blob).ToString()},
                  {kManifestDigestLabel, manifest_digest.ToString()}};
  };
  std::string root = dir + "/root";
  FuseServer fuse(2);
  MemoryCache memory(64 << 20);
  RemoteLayers::Options opts;
  opts.index_store = dir + "/indexes";
  opts.tiers = {&memory, nullptr, nullptr, nullptr};
  auto remote = std::make_unique<RemoteLayers>(client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(root, remote.get()).value();

  // Handshake: the layer is mounted lazily and reported as existing.
  absl::Status prepared =
      snap->Prepare("extract-1", "", labels_for("sha256:chain1", layer)).status();
  EXPECT_EQ(prepared.code(), absl::StatusCode::kAlreadyExists) << prepared;
  auto info = snap->Stat("sha256:chain1");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->kind, SnapshotKind::kCommitted);
  EXPECT_EQ(info->labels.at(kRemoteLabel), "true");
  EXPECT_EQ(snap->Stat("extract-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Exists(dir + "/indexes/" + Digest::Of(layer).Hex()));
  EXPECT_EQ(remote->mounted(), 1u);
  // Asking again finds it (containerd retries after a restart of its own).
  EXPECT_EQ(snap->Prepare("extract-1b", "", labels_for("sha256:chain1", layer)).status().code(),
            absl::StatusCode::kAlreadyExists);

  // A container over it: overlay with the FUSE mount as lowerdir.
  auto mounts = snap->Prepare("container", "sha256:chain1", {});
  ASSERT_THAT(mounts, IsOk());
  std::string rootfs = dir + "/rootfs";
  ASSERT_TRUE(MountOverlay((*mounts)[0], rootfs));
  EXPECT_EQ(ReadFileOrEmpty(rootfs + "/etc/hello.txt"), "hello\n");
  EXPECT_TRUE(ReadFileOrEmpty(rootfs + "/usr/bin/random3m") ==
              ReadFileOrEmpty(dir + "/layers/tree/usr/bin/random3m"));
  EXPECT_FALSE(Exists(rootfs + "/removed/gone"));  // a whiteout in a lower layer hides
  ASSERT_EQ(umount2(rootfs.c_str(), MNT_DETACH), 0);

  // No index: the ordinary path.
  auto ordinary = snap->Prepare("extract-2", "", labels_for("sha256:chain2", other));
  ASSERT_THAT(ordinary, IsOk());
  EXPECT_EQ(snap->Stat("extract-2")->kind, SnapshotKind::kActive);
  EXPECT_EQ(snap->Stat("sha256:chain2").status().code(), absl::StatusCode::kNotFound);

  // Remove unmounts.
  EXPECT_EQ(snap->Remove("sha256:chain1").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_THAT(snap->Remove("container"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:chain1"), IsOk());
  EXPECT_EQ(remote->mounted(), 0u);

  // Restart: remote snapshots come back mounted before anything is served.
  EXPECT_EQ(snap->Prepare("extract-3", "", labels_for("sha256:chain3", layer)).status().code(),
            absl::StatusCode::kAlreadyExists);
  snap.reset();
  remote.reset();  // unmounts, as a daemon shutdown does
  auto remote2 = std::make_unique<RemoteLayers>(client, fuse, opts);
  auto snap2 = OverlaySnapshotter::Open(root, remote2.get()).value();
  EXPECT_EQ(remote2->mounted(), 1u);
  auto again = snap2->Prepare("container-2", "sha256:chain3", {});
  ASSERT_THAT(again, IsOk());
  ASSERT_TRUE(MountOverlay((*again)[0], rootfs));
  EXPECT_EQ(ReadFileOrEmpty(rootfs + "/etc/hello.txt"), "hello\n");
  ASSERT_EQ(umount2(rootfs.c_str(), MNT_DETACH), 0);
  ASSERT_THAT(snap2->Remove("container-2"), IsOk());
  ASSERT_THAT(snap2->Remove("sha256:chain3"), IsOk());
  ASSERT_THAT(snap2->Remove("extract-2"), IsOk());
  EXPECT_FALSE(Mounted(rootfs));
}

// The registry behind a fault proxy that counts the blob bytes it serves.
struct Proxied {
  std::unique_ptr<testing::FaultProxy> proxy;
  std::unique_ptr<RegistryClient> client;
  Reference image = Reference::Parse("x/y").value();
  uint64_t LayerBytes(const std::string& blob) const {
    return proxy->Stat("blob_bytes:" + Digest::Of(blob).Hex()).value_or(0);
  }
};

void StartProxy(const Published& pub, Proxied* p) {
  auto proxy = testing::FaultProxy::Start(pub.registry->url());
  ASSERT_THAT(proxy, IsOk());
  p->proxy = *std::move(proxy);
  RegistryClient::Options ro;
  ro.hosts = std::make_shared<DefaultHosts>(std::set<std::string>{p->proxy->host()});
  ro.retry.initial_backoff = absl::Milliseconds(50);
  p->client = std::make_unique<RegistryClient>(ro);
  p->image = Reference::Parse(p->proxy->host() + "/clip/app:v1").value();
}

Labels LazyLabels(const Reference& image, const Published& pub, const std::string& ref,
                  const std::string& blob) {
  return Labels{{kSnapshotRefLabel, ref},
                {kImageRefLabel, image.ToString()},
                {kLayerDigestLabel, Digest::Of(blob).ToString()},
                {kManifestDigestLabel, pub.manifest_digest.ToString()}};
}

// A published image behind the byte-counting fault proxy.
class ProxiedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Publish(&pub);
    if (HasFatalFailure()) return;
    StartProxy(pub, &px);
  }
  RemoteLayers::Options LayerOptions(const std::string& dir, CacheTiers tiers) const {
    RemoteLayers::Options opts;
    opts.index_store = dir + "/indexes";
    opts.tiers = tiers;
    return opts;
  }
  // Background fill at once; with `trees`, layers made local become trees at once too.
  static void FillFast(RemoteLayers::Options* opts, bool trees) {
    opts->fill = BackgroundFill::Options{};
    opts->fill_delay = absl::Milliseconds(10);
    opts->local_trees = trees;
    opts->tree_check = absl::Milliseconds(20);
    opts->tree_quiet = absl::ZeroDuration();
  }
  // The image's layer pulled lazily ("sha256:c1") and a view "v" of it: the view's
  // source (the layer's mountpoint), or "" on failure.
  std::string LazyView(OverlaySnapshotter& snap) const {
    auto prepared = snap.Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer));
    EXPECT_EQ(prepared.status().code(), absl::StatusCode::kAlreadyExists);
    auto view = snap.View("v", "sha256:c1", {});
    EXPECT_THAT(view, IsOk());
    return view.ok() && !view->empty() ? (*view)[0].source : "";
  }
  Published pub;
  Proxied px;
};

// An image whose first layer has a clip index and whose second has none: the first is
// mounted lazily (only what is read is fetched - the registry's byte counts prove it),
// the second takes the ordinary path (extracted into its snapshot, as containerd's diff
// service does), and a container over both sees both.
TEST_F(ProxiedTest, MixedImageFetchesOnlyWhatIsRead) {
  const std::string& dir = pub.dir;
  ASSERT_TRUE(RunCommand("mkdir -p " + dir + "/plain/srv && echo plain > " + dir +
                         "/plain/srv/plain.txt && tar -czf " + dir + "/plain.tar.gz -C " + dir +
                         "/plain .")
                  .ok());
  const std::string plain = ReadFileOrEmpty(dir + "/plain.tar.gz");
  ASSERT_THAT(pub.client->PushBlob(pub.image, Digest::Of(plain), plain), IsOk());

  FuseServer fuse(2);
  MemoryCache memory(64 << 20);
  RemoteLayers::Options opts = LayerOptions(dir, {&memory, nullptr, nullptr, nullptr});
  RemoteLayers remote(*px.client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", &remote).value();

  EXPECT_EQ(snap->Prepare("extract-1", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer))
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(px.LayerBytes(pub.layer), 0u);  // mounting reads only the index
  auto extract =
      snap->Prepare("extract-2", "sha256:c1", LazyLabels(px.image, pub, "sha256:c2", plain));
  ASSERT_THAT(extract, IsOk());  // no index: the ordinary path
  std::string target = dir + "/extract";
  ASSERT_TRUE(MountOverlay((*extract)[0], target));
  ASSERT_THAT(RunCommand("tar -xzf " + dir + "/plain.tar.gz -C " + target), IsOk());
  ASSERT_EQ(umount2(target.c_str(), 0), 0);
  ASSERT_THAT(snap->Commit("sha256:c2", "extract-2", {}), IsOk());

  auto mounts = snap->Prepare("container", "sha256:c2", {});
  ASSERT_THAT(mounts, IsOk());
  std::string rootfs = dir + "/rootfs";
  ASSERT_TRUE(MountOverlay((*mounts)[0], rootfs));
  EXPECT_EQ(ReadFileOrEmpty(rootfs + "/srv/plain.txt"), "plain\n");
  EXPECT_EQ(ReadFileOrEmpty(rootfs + "/etc/hello.txt"), "hello\n");
  uint64_t after_small = px.LayerBytes(pub.layer);
  EXPECT_GT(after_small, 0u);
  EXPECT_LT(after_small, pub.layer.size() / 2) << "a 6-byte file cost " << after_small;
  EXPECT_TRUE(ReadFileOrEmpty(rootfs + "/usr/bin/random3m") ==
              ReadFileOrEmpty(dir + "/layers/tree/usr/bin/random3m"));
  uint64_t after_big = px.LayerBytes(pub.layer);
  EXPECT_GT(after_big, after_small);
  EXPECT_LE(after_big, pub.layer.size());  // never more than the layer, even whole
  std::cerr << "layer " << pub.layer.size() << " bytes; fetched " << after_small
            << " for etc/hello.txt, " << after_big << " after usr/bin/random3m\n";
  ASSERT_EQ(umount2(rootfs.c_str(), MNT_DETACH), 0);
  ASSERT_THAT(snap->Remove("container"), IsOk());
  const size_t served = fuse.mounts();
  ASSERT_THAT(snap->Remove("sha256:c2"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
  EXPECT_EQ(fuse.mounts(), served - 1);  // the lazy layer's state is freed with it
}

// The registry fails in the middle of a container's reads: the read gets EIO (no hang,
// no wrong bytes), and the same file reads correctly once the registry is back.
TEST_F(ProxiedTest, RegistryFailingMidReadGivesEioThenRecovers) {
  const std::string& dir = pub.dir;
  FuseServer fuse(2);
  MemoryCache memory(64 << 20);
  RemoteLayers::Options opts = LayerOptions(dir, {&memory, nullptr, nullptr, nullptr});
  RemoteLayers remote(*px.client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", &remote).value();
  ASSERT_EQ(
      snap->Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer)).status().code(),
      absl::StatusCode::kAlreadyExists);
  auto view = snap->View("v", "sha256:c1", {});
  ASSERT_THAT(view, IsOk());
  const std::string mnt = (*view)[0].source;
  EXPECT_EQ(ReadFileOrEmpty(mnt + "/etc/hello.txt"), "hello\n");

  ASSERT_THAT(
      px.proxy->Control("/__fault", R"({"mode":"status500","count":100000,"match":"/blobs/"})"),
      IsOk());
  int fd = open((mnt + "/usr/bin/random3m").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);  // metadata comes from the index
  std::string buf(1 << 20, '\0');
  absl::Time start = absl::Now();
  ssize_t n = read(fd, buf.data(), buf.size());
  int err = errno;
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, EIO) << strerror(err);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  close(fd);

  ASSERT_THAT(px.proxy->Control("/__clear", "{}"), IsOk());  // the registry is back
  EXPECT_TRUE(ReadFileOrEmpty(mnt + "/usr/bin/random3m") ==
              ReadFileOrEmpty(dir + "/layers/tree/usr/bin/random3m"));
  ASSERT_THAT(snap->Remove("v"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
}

// Two hosts sharing one remote cache (nginx WebDAV): the first finds the index in the
// registry and publishes it and the spans it reads; the second, with its own index
// store and disk cache, finds both in the remote cache (the index under its own digest,
// through the image's binding) - its registry could not even serve the index blob, and
// no layer byte is fetched from it.
TEST_F(ProxiedTest, RemoteCacheSharesIndexesAndSpansAcrossHosts) {
  auto nginx = testing::NginxCas::Start();
  ASSERT_THAT(nginx, IsOk());
  RemoteCache::Options co;
  co.endpoint = (*nginx)->endpoint();
  const std::string want = ReadFileOrEmpty(pub.dir + "/layers/tree/usr/bin/random3m");
  FuseServer fuse(2);
  for (int host = 0; host < 2; ++host) {
    std::string hdir = absl::StrCat(pub.dir, "/host", host);
    mkdir(hdir.c_str(), 0700);
    RemoteCache shared(co);
    auto disk = DiskCache::Open({hdir + "/cache", 1 << 30}).value();
    RemoteLayers::Options opts = LayerOptions(hdir, {nullptr, disk.get(), &shared, nullptr});
    opts.remote_index = &shared;
    RemoteLayers remote(*px.client, fuse, opts);
    auto snap = OverlaySnapshotter::Open(hdir + "/root", &remote).value();
    if (host == 1) {
      ASSERT_THAT(px.proxy->Control("/__reset", "{}"), IsOk());
      const std::string index_blob =
          Digest::Of(ReadFileOrEmpty(
                         absl::StrCat(pub.dir, "/host0/indexes/", Digest::Of(pub.layer).Hex())))
              .Hex();
      ASSERT_THAT(px.proxy->Control("/__fault",
                                    absl::StrCat(R"({"mode":"status500","count":100000,"match":")",
                                                 index_blob, R"("})")),
                  IsOk());
    }
    ASSERT_EQ(
        snap->Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer)).status().code(),
        absl::StatusCode::kAlreadyExists)
        << "host " << host;
    auto view = snap->View("v", "sha256:c1", {});
    ASSERT_THAT(view, IsOk());
    EXPECT_TRUE(ReadFileOrEmpty((*view)[0].source + "/usr/bin/random3m") == want) << host;
    if (host == 0) {
      EXPECT_GT(px.LayerBytes(pub.layer), 0u);
    } else {
      EXPECT_EQ(px.LayerBytes(pub.layer), 0u);
      EXPECT_GT(shared.counters().hits.Value(), 0u);
    }
    ASSERT_THAT(snap->Remove("v"), IsOk());
    ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
  }
}

// Index on first use: a layer without an index takes the ordinary path once, is indexed
// in the background, and the next Prepare mounts it lazily; the index also reaches the
// remote cache for the rest of the fleet.
TEST_F(ProxiedTest, IndexOnFirstUse) {
  const std::string& dir = pub.dir;
  const std::string gnu = ReadFileOrEmpty(dir + "/layers/gnu.tar.gz");
  ASSERT_THAT(pub.client->PushBlob(pub.image, Digest::Of(gnu), gnu), IsOk());
  auto nginx = testing::NginxCas::Start();
  ASSERT_THAT(nginx, IsOk());
  RemoteCache::Options co;
  co.endpoint = (*nginx)->endpoint();
  RemoteCache shared(co);
  FuseServer fuse(2);
  MemoryCache memory(64 << 20);
  RemoteLayers::Options opts = LayerOptions(dir, {&memory, nullptr, nullptr, nullptr});
  opts.remote_index = &shared;
  opts.index_on_first_use = true;
  opts.index_options.small_file_interval = 16 << 10;  // index_small_file_interval
  RemoteLayers remote(*px.client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", &remote).value();
  auto first = snap->Prepare("e1", "", LazyLabels(px.image, pub, "sha256:g1", gnu));
  ASSERT_THAT(first, IsOk());  // no index yet: the ordinary path
  remote.WaitIndexing();
  EXPECT_TRUE(Exists(dir + "/indexes/" + Digest::Of(gnu).Hex()));
  // Shared under its own digest, with the fleet's pointer to it.
  auto pointer = shared.GetLayerDoc(RemoteCache::LayerDoc::kIndex, Digest::Of(gnu));
  ASSERT_TRUE(pointer.ok() && pointer->has_value());
  auto in_remote = shared.GetDoc(*Digest::Parse(absl::StripSuffix(**pointer, "\n")));
  ASSERT_TRUE(in_remote.ok() && in_remote->has_value());
  EXPECT_EQ(DecodeIndex(**in_remote)->layer_digest(), Digest::Of(gnu).ToString());
  EXPECT_EQ(DecodeIndex(**in_remote)->small_file_interval(), 16u << 10);  // built as configured
  EXPECT_EQ(snap->Prepare("e2", "", LazyLabels(px.image, pub, "sha256:g2", gnu)).status().code(),
            absl::StatusCode::kAlreadyExists);
  auto view = snap->View("v", "sha256:g2", {});
  ASSERT_THAT(view, IsOk());
  EXPECT_EQ(ReadFileOrEmpty((*view)[0].source + "/etc/hello.txt"), "hello\n");
  ASSERT_THAT(snap->Remove("v"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:g2"), IsOk());
  ASSERT_THAT(snap->Remove("e1"), IsOk());
  // A layer that is not a tar at all: indexing fails, logged; the ordinary path stays.
  EXPECT_THAT(snap->Prepare("e3", "", LazyLabels(px.image, pub, "sha256:o", pub.other)), IsOk());
  remote.WaitIndexing();
  EXPECT_FALSE(Exists(dir + "/indexes/" + Digest::Of(pub.other).Hex()));
}

// Background fill: once enabled, a mounted layer becomes entirely local - afterwards
// every file reads correctly with the registry failing every blob request.
TEST_F(ProxiedTest, BackgroundFillMakesTheLayerLocal) {
  const std::string& dir = pub.dir;
  auto disk = DiskCache::Open({dir + "/cache", 1 << 30}).value();
  FuseServer fuse(2);
  RemoteLayers::Options opts = LayerOptions(dir, {nullptr, disk.get(), nullptr, nullptr});
  opts.fill = BackgroundFill::Options{};
  opts.fill->bytes_per_second = 64 << 20;
  opts.fill_delay = absl::Milliseconds(100);
  RemoteLayers remote(*px.client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", &remote).value();
  ASSERT_EQ(
      snap->Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer)).status().code(),
      absl::StatusCode::kAlreadyExists);
  for (int i = 0; i < 300 && remote.filled() == 0; ++i) absl::SleepFor(absl::Milliseconds(100));
  ASSERT_EQ(remote.filled(), 1u);
  EXPECT_LE(px.LayerBytes(pub.layer), pub.layer.size());
  ASSERT_THAT(
      px.proxy->Control("/__fault", R"({"mode":"status500","count":100000,"match":"/blobs/"})"),
      IsOk());
  auto view = snap->View("v", "sha256:c1", {});
  ASSERT_THAT(view, IsOk());
  const std::string mnt = (*view)[0].source;
  EXPECT_TRUE(ReadFileOrEmpty(mnt + "/usr/bin/random3m") ==
              ReadFileOrEmpty(dir + "/layers/tree/usr/bin/random3m"));
  EXPECT_TRUE(ReadFileOrEmpty(mnt + "/etc/app/seq.txt") ==
              ReadFileOrEmpty(dir + "/layers/tree/etc/app/seq.txt"));
  EXPECT_EQ(px.proxy->Stat("faults").value_or(0), 0);  // nothing needed the registry
  ASSERT_THAT(snap->Remove("v"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
}

// Local trees: once the fill made every span local, the layer is written as a tree
// beside its mountpoint; overlayfs gets the tree (views and containers), the FUSE mount
// reads from it, the spans leave the disk cache (the registry failing every request
// changes nothing), usage counts the tree, a restart serves the layer from the tree
// without FUSE, and removing the snapshot removes the tree.
TEST_F(ProxiedTest, ALayerMadeLocalBecomesATree) {
  const std::string& dir = pub.dir;
  auto disk = DiskCache::Open({dir + "/cache", 1 << 30}).value();
  FuseServer fuse(2);
  RemoteLayers::Options opts = LayerOptions(dir, {nullptr, disk.get(), nullptr, nullptr});
  FillFast(&opts, /*trees=*/true);
  auto remote = std::make_unique<RemoteLayers>(*px.client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  ASSERT_EQ(
      snap->Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer)).status().code(),
      absl::StatusCode::kAlreadyExists);
  for (int i = 0; i < 600 && (remote->local() == 0 || disk->size_bytes() > 0); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(remote->local(), 1u);
  EXPECT_EQ(disk->size_bytes(), 0u);  // the spans left the disk cache
  ASSERT_THAT(
      px.proxy->Control("/__fault", R"({"mode":"status500","count":100000,"match":"/blobs/"})"),
      IsOk());

  auto view = snap->View("v", "sha256:c1", {});
  ASSERT_THAT(view, IsOk());
  const std::string tree = (*view)[0].source;
  ASSERT_EQ(tree.substr(tree.size() - 5), "/tree");
  const std::string snapdir = tree.substr(0, tree.size() - 5);
  for (const char* f : {"usr/bin/random3m", "etc/app/seq.txt", "etc/hello.txt"}) {
    const std::string want = ReadFileOrEmpty(dir + "/layers/tree/" + f);
    EXPECT_FALSE(want.empty()) << f;
    EXPECT_TRUE(ReadFileOrEmpty(tree + "/" + f) == want) << f;
    EXPECT_TRUE(ReadFileOrEmpty(snapdir + "/fs/" + f) == want) << f;  // FUSE, from the tree
  }
  auto container = snap->Prepare("c", "sha256:c1", {});
  ASSERT_THAT(container, IsOk());
  bool tree_lower = false;
  for (const std::string& o : (*container)[0].options) {
    tree_lower |= o == "lowerdir=" + tree;
  }
  EXPECT_TRUE(tree_lower) << "the container's overlay does not read the tree";
  auto usage = snap->Usage("sha256:c1");
  ASSERT_THAT(usage, IsOk());
  EXPECT_GT(usage->size, 3 << 20);                     // random3m and the rest, in the tree
  EXPECT_EQ(px.proxy->Stat("faults").value_or(0), 0);  // nothing needed the registry

  // Restart: the layer comes back from its tree alone.
  snap.reset();
  remote.reset();
  EXPECT_EQ(fuse.mounts(), 0u);
  remote = std::make_unique<RemoteLayers>(*px.client, fuse, opts);
  snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  EXPECT_EQ(remote->mounted(), 1u);
  EXPECT_EQ(remote->local(), 1u);
  EXPECT_EQ(fuse.mounts(), 0u);  // no FUSE
  EXPECT_EQ(snap->View("v2", "sha256:c1", {}).value()[0].source, tree);
  ASSERT_THAT(snap->Remove("v"), IsOk());
  ASSERT_THAT(snap->Remove("v2"), IsOk());
  ASSERT_THAT(snap->Remove("c"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
  EXPECT_FALSE(Exists(tree));
  EXPECT_EQ(px.proxy->Stat("faults").value_or(0), 0);
}

// A daemon killed while a local layer's FUSE mount was detached for a running container
// (here: after the lazy unmount, before the tree was bound in its place). The next one
// takes the connection over, binds the tree at once (new containers see the layer, not
// an empty directory), serves the container from the tree, and when that container
// lets go the holder lets go too - without waiting for its own detach (an hour here).
TEST_F(ProxiedTest, ALocalLayerTakenOverDetachedIsBoundAndLetGo) {
  const std::string& dir = pub.dir;
  testing::MemoryFdStore store;
  auto disk = DiskCache::Open({dir + "/cache", 1 << 30}).value();
  auto fuse = std::make_unique<FuseServer>(2, &store);
  RemoteLayers::Options opts = LayerOptions(dir, {nullptr, disk.get(), nullptr, nullptr});
  FillFast(&opts, /*trees=*/true);
  auto remote = std::make_unique<RemoteLayers>(*px.client, *fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  const std::string mountpoint = LazyView(*snap);  // the FUSE mount, still lazy
  ASSERT_FALSE(mountpoint.empty());
  ASSERT_EQ(mountpoint.substr(mountpoint.size() - 3), "/fs");
  const std::string tree = mountpoint.substr(0, mountpoint.size() - 3) + "/tree";
  const std::string want = ReadFileOrEmpty(dir + "/layers/tree/etc/hello.txt");
  ASSERT_FALSE(want.empty());
  int held = open((mountpoint + "/etc/hello.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0) << strerror(errno);  // the running container
  ASSERT_TRUE(WaitFor(absl::Seconds(30), [&] { return TreeOnTop(mountpoint); }))
      << "the local layer's mount was not detached";
  ASSERT_EQ(ReadFileOrEmpty(mountpoint + "/etc/hello.txt"), want);  // the tree, bound

  // Killed between the lazy unmount and the bind.
  fuse->Detach();
  snap.reset();
  remote.reset();
  fuse.reset();
  ASSERT_EQ(umount2(mountpoint.c_str(), MNT_DETACH), 0);
  ASSERT_EQ(store.size(), 1u);

  fuse = std::make_unique<FuseServer>(2, &store);
  fuse->OfferHeld(store.List().value());
  opts.tree_quiet = absl::Hours(1);
  remote = std::make_unique<RemoteLayers>(*px.client, *fuse, opts);
  snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  EXPECT_EQ(fuse->adopted(), 1u);
  EXPECT_EQ(remote->local(), 1u);
  EXPECT_TRUE(TreeOnTop(mountpoint));
  EXPECT_EQ(ReadFileOrEmpty(mountpoint + "/etc/hello.txt"), want);  // bound again at once
  char buf[64];
  ssize_t n = pread(held, buf, sizeof(buf), 0);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), want) << strerror(errno);
  EXPECT_EQ(store.size(), 1u);
  close(held);  // the container stops
  EXPECT_TRUE(WaitFor(absl::Seconds(30), [&] { return store.size() == 0; }))
      << "the holder still holds the connection the kernel let go of";
  ASSERT_THAT(snap->Remove("v"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
  EXPECT_FALSE(Mounted(mountpoint));
  EXPECT_FALSE(Exists(tree));
}

// The daemon and its holder both died while a local layer's FUSE mount was still at its
// mountpoint (not yet detached): the connection is dead, a path handed out before sees
// ENOTCONN. The next daemon serves the layer from its tree and puts the tree in the dead
// mount's place. (The dead mount is made here: a server mounts the layer over the
// empty mountpoint and dies with no holder.)
TEST_F(ProxiedTest, ADeadFuseMountOfALocalLayerIsReplacedByItsTree) {
  const std::string& dir = pub.dir;
  auto disk = DiskCache::Open({dir + "/cache", 1 << 30}).value();
  auto fuse = std::make_unique<FuseServer>(2);
  RemoteLayers::Options opts = LayerOptions(dir, {nullptr, disk.get(), nullptr, nullptr});
  FillFast(&opts, /*trees=*/true);
  auto remote = std::make_unique<RemoteLayers>(*px.client, *fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  const std::string mountpoint = LazyView(*snap);
  ASSERT_FALSE(mountpoint.empty());
  ASSERT_TRUE(WaitFor(absl::Seconds(30), [&] { return TreeOnTop(mountpoint); }));
  fuse->Detach();  // killed
  snap.reset();
  remote.reset();
  fuse.reset();
  ASSERT_EQ(UnmountStack(mountpoint), 1);  // the tree bound there: as before the detach
  {
    auto file = std::shared_ptr<FileBlobReader>(
        FileBlobReader::Open(dir + "/layers/posix.tar.gz").value().release());
    auto index = std::make_shared<const index::v1::LayerIndex>(BuildLayerIndex(*file).value());
    FuseServer dying(1);
    ASSERT_THAT(dying.Mount(mountpoint, std::make_shared<LayerFs>(
                                            index, std::make_shared<SpanInflater>(index, *file))),
                IsOk());
    dying.Detach();  // killed; no holder: the connection dies with its fds
  }
  struct stat st;
  ASSERT_NE(stat((mountpoint + "/etc/hello.txt").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOTCONN);

  fuse = std::make_unique<FuseServer>(2);
  remote = std::make_unique<RemoteLayers>(*px.client, *fuse, opts);
  snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  EXPECT_EQ(remote->local(), 1u);
  EXPECT_EQ(fuse->mounts(), 0u);  // the tree alone
  EXPECT_TRUE(TreeOnTop(mountpoint));
  EXPECT_EQ(ReadFileOrEmpty(mountpoint + "/etc/hello.txt"),
            ReadFileOrEmpty(dir + "/layers/tree/etc/hello.txt"));
  ASSERT_THAT(snap->Remove("v"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
  EXPECT_FALSE(Mounted(mountpoint));
}

// Two layers complete at the same moment are written as trees one after the other, as
// an unpack writes them: trees written side by side interleave their inodes and blocks
// on the disk. The first writer is held at its first entry while the keeper looks five
// more times; a second writer would have begun by then.
TEST_F(ProxiedTest, TreesAreWrittenOneAtATime) {
  const std::string& dir = pub.dir;
  auto disk = DiskCache::Open({dir + "/cache", 1 << 30}).value();
  FuseServer fuse(2);
  RemoteLayers::Options opts = LayerOptions(dir, {nullptr, disk.get(), nullptr, nullptr});
  FillFast(&opts, /*trees=*/false);
  auto remote = std::make_unique<RemoteLayers>(*px.client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  for (const std::string ref : {"sha256:c1", "sha256:c2"}) {
    ASSERT_EQ(
        snap->Prepare("e" + ref, "", LazyLabels(px.image, pub, ref, pub.layer)).status().code(),
        absl::StatusCode::kAlreadyExists);
  }
  for (int i = 0; i < 600 && remote->filled() < 2; ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_EQ(remote->filled(), 2u);
  snap.reset();
  remote.reset();

  // The next daemon finds both layers' spans on disk.
  FillFast(&opts, /*trees=*/true);
  absl::Mutex mu;
  std::vector<std::thread::id> writers;  // a new one each time another thread writes
  bool hold = true, held = false;
  opts.before_tree_entry = [&](const std::string&) {
    absl::MutexLock lock(&mu);
    if (writers.empty() || writers.back() != std::this_thread::get_id()) {
      writers.push_back(std::this_thread::get_id());
    }
    if (writers.size() != 1) return;
    held = true;
    mu.Await(absl::Condition(
        +[](bool* h) { return !*h; }, &hold));
  };
  remote = std::make_unique<RemoteLayers>(*px.client, fuse, opts);
  snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&held), absl::Seconds(30)));
  }
  const size_t checks = remote->tree_checks();
  for (int i = 0; i < 600 && remote->tree_checks() < checks + 5; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GE(remote->tree_checks(), checks + 5);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(writers.size(), 1u) << "a second tree began while the first was being written";
    hold = false;
  }
  for (int i = 0; i < 600 && remote->local() < 2; ++i) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(remote->local(), 2u);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(writers.size(), 2u) << "the two writes interleaved";
  }
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:c2"), IsOk());
}

// A disk too small for the tree: the write fails with a clear error, nothing of it is
// left, and the layer stays lazy and correct (its FUSE mount reads the cached spans).
TEST_F(ProxiedTest, ATreeThatDoesNotFitLeavesTheLayerLazy) {
  const std::string& dir = pub.dir;
  const std::string small = dir + "/small";
  ASSERT_EQ(mkdir(small.c_str(), 0700), 0);
  ASSERT_THAT(testing::RunCommand("mount -t tmpfs -o size=1m tmpfs " + small), IsOk());
  struct Unmount {
    std::string path;
    ~Unmount() { (void)testing::RunCommand("umount -l " + path); }
  } unmount{small};
  auto disk = DiskCache::Open({dir + "/cache", 1 << 30}).value();
  FuseServer fuse(2);
  RemoteLayers::Options opts = LayerOptions(dir, {nullptr, disk.get(), nullptr, nullptr});
  FillFast(&opts, /*trees=*/true);
  RemoteLayers remote(*px.client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(small + "/root", &remote).value();
  ASSERT_EQ(
      snap->Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer)).status().code(),
      absl::StatusCode::kAlreadyExists);
  for (int i = 0; i < 600 && remote.tree_failures() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(remote.tree_failures(), 1u) << "the tree write did not fail";
  EXPECT_EQ(remote.local(), 0u);  // the layer stays lazy
  EXPECT_EQ(
      testing::RunCommand("ls -A " + small + "/root/snapshots/1 | grep -c tree || true").value(),
      "0\n");  // no tree, no half of one
  EXPECT_TRUE(ReadFileOrEmpty(small + "/root/snapshots/1/fs/usr/bin/random3m") ==
              ReadFileOrEmpty(dir + "/layers/tree/usr/bin/random3m"));
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
}

// A tree write a crash interrupted (its temporary directory left) is cleared and done
// again by the next daemon; a snapshot removed while its tree is being written stops the
// write, and nothing of the tree stays.
TEST_F(ProxiedTest, TreeWritesInterruptedByACrashOrARemoval) {
  const std::string& dir = pub.dir;
  auto disk = DiskCache::Open({dir + "/cache", 1 << 30}).value();
  FuseServer fuse(2);
  RemoteLayers::Options opts = LayerOptions(dir, {nullptr, disk.get(), nullptr, nullptr});
  FillFast(&opts, /*trees=*/false);
  auto remote = std::make_unique<RemoteLayers>(*px.client, fuse, opts);  // no trees yet
  auto snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  ASSERT_EQ(
      snap->Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer)).status().code(),
      absl::StatusCode::kAlreadyExists);
  for (int i = 0; i < 600 && remote->filled() == 0; ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_EQ(remote->filled(), 1u);
  const std::string snapdir = dir + "/root/snapshots/1";
  ASSERT_TRUE(Exists(snapdir + "/fs"));
  // What a daemon killed half way through its tree leaves.
  ASSERT_THAT(testing::RunCommand("mkdir -p " + snapdir + "/tree.tmp-999-0/usr && echo x > " +
                                  snapdir + "/tree.tmp-999-0/usr/half"),
              IsOk());
  snap.reset();
  remote.reset();

  // The next daemon: the leftover goes, the tree is written whole.
  FillFast(&opts, /*trees=*/true);
  absl::Mutex mu;
  int entries = 0;
  bool hold = false, held = false;
  opts.before_tree_entry = [&](const std::string&) {
    absl::MutexLock lock(&mu);
    ++entries;
    if (!hold || entries != 5) return;
    held = true;  // the test removes the snapshot now; the write waits until it has begun
    mu.AwaitWithTimeout(absl::Condition(
                            +[](bool* h) { return !*h; }, &hold),
                        absl::Seconds(10));
  };
  remote = std::make_unique<RemoteLayers>(*px.client, fuse, opts);
  snap = OverlaySnapshotter::Open(dir + "/root", remote.get()).value();
  EXPECT_FALSE(Exists(snapdir + "/tree.tmp-999-0"));
  for (int i = 0; i < 600 && remote->local() == 0; ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_EQ(remote->local(), 1u);
  EXPECT_TRUE(ReadFileOrEmpty(snapdir + "/tree/usr/bin/random3m") ==
              ReadFileOrEmpty(dir + "/layers/tree/usr/bin/random3m"));
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
  EXPECT_FALSE(Exists(snapdir));

  // The layer again: its tree is held at its 5th entry while its snapshot is removed.
  {
    absl::MutexLock lock(&mu);
    entries = 0;
    hold = true;
  }
  ASSERT_EQ(
      snap->Prepare("e2", "", LazyLabels(px.image, pub, "sha256:c2", pub.layer)).status().code(),
      absl::StatusCode::kAlreadyExists);
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&held), absl::Seconds(30)));
  }
  std::thread release([&] {
    // Once the layer has left RemoteLayers its write is cancelled: let it go on then.
    for (int i = 0; i < 3000 && remote->mounted() > 0; ++i) absl::SleepFor(absl::Milliseconds(10));
    absl::MutexLock lock(&mu);
    hold = false;
  });
  ASSERT_THAT(snap->Remove("sha256:c2"), IsOk());
  release.join();
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(entries, 5) << "the write went on after its snapshot was removed";
  }
  EXPECT_EQ(remote->local(), 0u);
  EXPECT_EQ(remote->mounted(), 0u);
  EXPECT_EQ(testing::RunCommand("ls -A " + dir + "/root/snapshots | wc -l").value(), "0\n");
}

// Access profiles. Host 0 mounts the layer without a profile, reads two files, and once
// its reads go quiet records the spans they needed (local store and remote cache).
// Host 1 (its own stores, the same remote cache) mounts the layer and fetches exactly
// those spans before any read, so its reads then fetch nothing. Host 2 finds a corrupt
// profile in its store, host 3 one of another layer: each is ignored (never replayed,
// the start does not fail) and recorded anew.
TEST_F(ProxiedTest, AccessProfileRecordedReplayedAndShared) {
  auto nginx = testing::NginxCas::Start();
  ASSERT_THAT(nginx, IsOk());
  RemoteCache::Options co;
  co.endpoint = (*nginx)->endpoint();
  const std::string want = ReadFileOrEmpty(pub.dir + "/layers/tree/usr/bin/random3m");
  const Digest layer = Digest::Of(pub.layer);
  FuseServer fuse(2);
  ThreadPool replay(4, 256);
  std::vector<uint32_t> recorded;
  for (int host = 0; host < 4; ++host) {
    SCOPED_TRACE(host);
    std::string hdir = absl::StrCat(pub.dir, "/phost", host);
    mkdir(hdir.c_str(), 0700);
    const std::string profile_path = hdir + "/profiles/" + layer.Hex();
    if (host >= 2) {
      mkdir((hdir + "/profiles").c_str(), 0700);
      index::v1::LayerIndex other;  // a well-formed profile, of another layer
      other.set_layer_digest(Digest::Of("another layer").ToString());
      other.add_checkpoints()->set_span_sha256(std::string(32, 'x'));
      // Recorded here (so believed), and still ignored: it does not fit the layer.
      ASSERT_THAT(LayerDocStore(hdir + "/profiles")
                      .Put(layer,
                           host == 2 ? std::string("CLIPPRF\n not a profile")
                                     : EncodeProfile(MakeProfile(other, {0})),
                           kOriginRecorded),
                  IsOk());
    }
    RemoteCache shared(co);
    MemoryCache memory(64 << 20);
    RemoteLayers::Options opts = LayerOptions(hdir, {&memory, nullptr, nullptr, nullptr});
    if (host < 2) opts.remote_index = &shared;  // hosts 2 and 3: their own store only
    opts.index_trust = IndexTrust::kFleet;      // host 1 believes host 0's recording
    opts.profile_store = hdir + "/profiles";
    opts.replay = &replay;
    opts.profile_quiet = absl::Milliseconds(300);
    RemoteLayers remote(*px.client, fuse, opts);
    auto snap = OverlaySnapshotter::Open(hdir + "/root", &remote).value();
    ASSERT_THAT(px.proxy->Control("/__reset", "{}"), IsOk());
    ASSERT_EQ(
        snap->Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer)).status().code(),
        absl::StatusCode::kAlreadyExists);
    auto view = snap->View("v", "sha256:c1", {});
    ASSERT_THAT(view, IsOk());
    const std::string mnt = (*view)[0].source;
    uint64_t before_reads = 0;
    if (host == 1) {
      auto progress = remote.Replay(mnt);
      ASSERT_NE(progress, nullptr);
      for (int i = 0; i < 100 && progress->runs_done.load() < progress->runs_queued.load(); ++i) {
        absl::SleepFor(absl::Milliseconds(50));
      }
      EXPECT_EQ(progress->spans_fetched.load(), recorded.size());
      EXPECT_EQ(progress->failed_runs.load(), 0u);
      before_reads = px.LayerBytes(pub.layer);
      EXPECT_GT(before_reads, 0u);
    } else {
      EXPECT_EQ(remote.Replay(mnt), nullptr);
    }
    EXPECT_EQ(ReadFileOrEmpty(mnt + "/etc/hello.txt"), "hello\n");
    EXPECT_TRUE(ReadFileOrEmpty(mnt + "/usr/bin/random3m") == want);
    if (host == 1) {
      EXPECT_EQ(px.LayerBytes(pub.layer), before_reads);  // all replayed
    }
    if (host != 1) {  // recorded once the reads go quiet
      // The profile goes to the local store, then (host 0) to the remote cache: both.
      absl::StatusOr<index::v1::AccessProfile> p = absl::NotFoundError("none yet");
      for (int i = 0; i < 100; ++i) {
        p = DecodeProfile(ReadFileOrEmpty(profile_path));
        auto shared_one = shared.GetLayerDoc(RemoteCache::LayerDoc::kProfile, layer);
        if (p.ok() && (host != 0 || (shared_one.ok() && shared_one->has_value()))) break;
        absl::SleepFor(absl::Milliseconds(50));
      }
      ASSERT_THAT(p, IsOk());
      EXPECT_GE(p->spans_size(), 2);  // hello.txt's span, then random3m's
      EXPECT_EQ(p->layer_digest(), layer.ToString());
      if (host == 0) {
        recorded.assign(p->spans().begin(), p->spans().end());
        // Shared under its own digest, and the fleet's pointer names it.
        const std::string mine = ReadFileOrEmpty(profile_path);
        auto in_remote = shared.GetLayerDoc(RemoteCache::LayerDoc::kProfile, layer);
        ASSERT_TRUE(in_remote.ok() && in_remote->has_value());
        EXPECT_EQ(**in_remote, Digest::Of(mine).ToString() + "\n");
        auto doc = shared.GetDoc(Digest::Of(mine));
        ASSERT_TRUE(doc.ok() && doc->has_value());
        EXPECT_EQ(**doc, mine);
      }
    } else {
      EXPECT_THAT(DecodeProfile(ReadFileOrEmpty(profile_path)), IsOk());  // copied from remote
    }
    ASSERT_THAT(snap->Remove("v"), IsOk());
    ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
  }
}

// An access profile published with the image's indexes (clipctl index --push
// --profiles) reaches a host that never ran the image: its first mount replays it.
TEST_F(ProxiedTest, PublishedProfileIsReplayedByANewHost) {
  auto file = FileBlobReader::Open(pub.dir + "/layers/posix.tar.gz").value();
  index::v1::LayerIndex index = BuildLayerIndex(*file).value();
  ASSERT_GE(index.checkpoints_size(), 3);
  const std::string profile = EncodeProfile(MakeProfile(index, {2, 0}));
  PublishBound(pub, {{Digest::Of(pub.layer), EncodeIndex(index), profile}});
  const std::string& dir = pub.dir;
  FuseServer fuse(2);
  MemoryCache memory(64 << 20);
  ThreadPool replay(4, 64);
  RemoteLayers::Options opts = LayerOptions(dir, {&memory, nullptr, nullptr, nullptr});
  opts.profile_store = dir + "/profiles";
  opts.replay = &replay;
  RemoteLayers remote(*px.client, fuse, opts);
  auto snap = OverlaySnapshotter::Open(dir + "/root", &remote).value();
  ASSERT_EQ(
      snap->Prepare("e", "", LazyLabels(px.image, pub, "sha256:c1", pub.layer)).status().code(),
      absl::StatusCode::kAlreadyExists);
  auto view = snap->View("v", "sha256:c1", {});
  ASSERT_THAT(view, IsOk());
  auto progress = remote.Replay((*view)[0].source);
  ASSERT_NE(progress, nullptr);
  replay.Drain();
  EXPECT_EQ(progress->runs_done.load(), 2u);  // spans 2 and 0: not adjacent
  EXPECT_EQ(progress->spans_fetched.load(), 2u);
  EXPECT_EQ(ReadFileOrEmpty(dir + "/profiles/" + Digest::Of(pub.layer).Hex()), profile);
  EXPECT_EQ(ReadFileOrEmpty((*view)[0].source + "/etc/hello.txt"), "hello\n");
  ASSERT_THAT(snap->Remove("v"), IsOk());
  ASSERT_THAT(snap->Remove("sha256:c1"), IsOk());
}

// True while `pid` is a running clip-fd-holder (not a zombie, not a PID reused since).
bool IsHolder(pid_t pid) { return testing::ProcessRuns(pid, "clip-fd-holder"); }

// What a daemon test started, undone however the test ends (a failed ASSERT included):
// the daemon gets a full stop (SIGUSR1: unmounts, ends its holder), then SIGKILL; every
// holder it recorded (by its pid file, never by name) is killed if still there; mounts
// left under `dir` are detached.
struct DaemonCleanup {
  explicit DaemonCleanup(std::string dir) : dir(std::move(dir)) {}
  DaemonCleanup(const DaemonCleanup&) = delete;
  DaemonCleanup& operator=(const DaemonCleanup&) = delete;

  const std::string dir;
  pid_t daemon = 0;            // the running daemon, 0 once the test reaped it
  std::vector<pid_t> holders;  // every holder the daemons started, by their pid file

  void NoteHolder(const std::string& socket) {
    pid_t pid = 0;
    std::ifstream(socket + ".pid") >> pid;
    if (pid > 0 && IsHolder(pid) &&
        std::find(holders.begin(), holders.end(), pid) == holders.end()) {
      holders.push_back(pid);
    }
  }
  ~DaemonCleanup() {
    if (daemon > 0) {
      kill(daemon, SIGUSR1);
      if (!WaitFor(absl::Seconds(20), [&] { return waitpid(daemon, nullptr, WNOHANG) != 0; })) {
        kill(daemon, SIGKILL);
        waitpid(daemon, nullptr, 0);
      }
    }
    for (pid_t pid : holders) {
      if (IsHolder(pid)) kill(pid, SIGKILL);
    }
    RunCommand("grep -o ' " + dir + "[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l")
        .IgnoreError();
  }
};

// The daemon killed (-9) while a reader is busy: the mount outlives it (its fd is in
// clip-fd-holder), the reader's calls wait, and the restarted daemon takes the live
// connection over: not one read fails. SIGTERM hands over too; SIGUSR1 unmounts all and
// ends the holder.
TEST(RemoteSnapshotTest, DaemonKilledDuringReadsIsTakenOverOnRestart) {
  Published pub;
  Publish(&pub);
  if (::testing::Test::HasFatalFailure()) return;
  std::string daemon = absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                                    "/snapshotter/containerd-clip-grpc");
  std::string sock = absl::StrCat("/tmp/clip-r-", getpid(), ".sock");
  std::string config = pub.dir + "/config.toml";
  std::string metrics_sock = absl::StrCat("/tmp/clip-m-", getpid(), ".sock");
  std::string holder_sock = absl::StrCat("/tmp/clip-h-", getpid(), ".sock");
  std::ofstream(config) << absl::StrFormat(
      "root = \"%s/droot\"\naddress = \"%s\"\n"
      "plain_http = [\"%s\"]\nmetrics_address = \"unix:%s\"\ncontainerd_root = \"%s/croot\"\n"
      "fd_store = \"holder\"\nfd_holder_socket = \"%s\"\n",
      pub.dir, sock, pub.registry->host(), metrics_sock, pub.dir, holder_sock);
  auto serving = [&] {
    std::string log = ReadFileOrEmpty(pub.dir + "/daemon.log");
    size_t n = 0;
    for (size_t at = log.find("serving snapshotter"); at != std::string::npos;
         at = log.find("serving snapshotter", at + 1)) {
      ++n;
    }
    return n;
  };
  DaemonCleanup cleanup(pub.dir);
  // A new daemon, once it serves (slow under ASan and load: a generous deadline); 0 if
  // it does not.
  auto start = [&]() -> pid_t {
    const size_t before = serving();
    pid_t pid = testing::Spawn({daemon, "--config", config}, pub.dir + "/daemon.log").value();
    cleanup.daemon = pid;
    bool exited = false;
    if (!WaitFor(absl::Seconds(60),
                 [&] {
                   exited = waitpid(pid, nullptr, WNOHANG) == pid;
                   return exited || serving() > before;
                 }) ||
        exited) {
      if (exited) cleanup.daemon = 0;
      ADD_FAILURE() << "daemon " << pid << (exited ? " exited" : " not serving after 60 s") << "\n"
                    << ReadFileOrEmpty(pub.dir + "/daemon.log");
      return 0;
    }
    cleanup.NoteHolder(holder_sock);
    return pid;
  };
  // A daemon stopped (and reaped) by the test itself; one that does not stop within 30 s
  // fails the test and is killed.
  auto stop = [&](pid_t pid, int sig) {
    kill(pid, sig);
    if (!WaitFor(absl::Seconds(30), [&] { return waitpid(pid, nullptr, WNOHANG) != 0; })) {
      ADD_FAILURE() << "daemon " << pid << " still runs 30 s after signal " << sig;
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    cleanup.daemon = 0;
  };
  // systemd readiness: the daemon says READY=1 on $NOTIFY_SOCKET once it serves.
  std::string notify = absl::StrCat("/tmp/clip-n-", getpid(), ".sock");
  unlink(notify.c_str());
  int nfd = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un naddr{};
  naddr.sun_family = AF_UNIX;
  strncpy(naddr.sun_path, notify.c_str(), sizeof(naddr.sun_path) - 1);
  ASSERT_EQ(bind(nfd, reinterpret_cast<sockaddr*>(&naddr), sizeof(naddr)), 0);
  setenv("NOTIFY_SOCKET", notify.c_str(), 1);
  pid_t pid = start();
  unsetenv("NOTIFY_SOCKET");
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(Exists(sock)) << ReadFileOrEmpty(pub.dir + "/daemon.log");
  ASSERT_EQ(cleanup.holders.size(), 1u) << "no clip-fd-holder at " << holder_sock;
  const pid_t holder = cleanup.holders[0];
  // containerd 1.6's CRI reports <containerd root>/io.containerd.snapshotter.v1.clip as
  // the image filesystem: it exists and is clip's root.
  char target[4096] = {0};
  ASSERT_GT(readlink((pub.dir + "/croot/io.containerd.snapshotter.v1.clip").c_str(), target,
                     sizeof(target) - 1),
            0);
  EXPECT_EQ(std::string(target), pub.dir + "/droot");
  struct timeval tv = {5, 0};
  setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char ready[64] = {0};
  ssize_t got = recv(nfd, ready, sizeof(ready) - 1, 0);
  EXPECT_EQ(std::string(ready, got > 0 ? got : 0), "READY=1");
  close(nfd);
  unlink(notify.c_str());
  {
    GrpcSnapshotter client("unix:" + sock);
    Labels labels{{kSnapshotRefLabel, "sha256:lazy"},
                  {kImageRefLabel, pub.image.ToString()},
                  {kLayerDigestLabel, Digest::Of(pub.layer).ToString()},
                  {kManifestDigestLabel, pub.manifest_digest.ToString()}};
    ASSERT_EQ(client.Prepare("extract", "", labels).status().code(),
              absl::StatusCode::kAlreadyExists);
    auto view = client.View("v", "sha256:lazy", {});
    ASSERT_THAT(view, IsOk());
    const std::string layer_mnt = (*view)[0].source;  // the FUSE mount itself
    const std::string want = ReadFileOrEmpty(pub.dir + "/layers/tree/usr/bin/random3m");
    ASSERT_TRUE(ReadFileOrEmpty(layer_mnt + "/usr/bin/random3m") == want);
    {  // Out of the page cache, read again: the daemon's memory cache serves it.
      int fd = open((layer_mnt + "/usr/bin/random3m").c_str(), O_RDONLY);
      ASSERT_GE(fd, 0);
      EXPECT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
      close(fd);
      ASSERT_TRUE(ReadFileOrEmpty(layer_mnt + "/usr/bin/random3m") == want);
    }

    // Usage of the lazy layer is what this node keeps for it: its index and the spans
    // cached on disk (random3m's 3 MB at least, once the asynchronous fills land).
    absl::StatusOr<SnapshotUsage> usage;
    for (int i = 0; i < 100; ++i) {
      usage = client.Usage("sha256:lazy");
      if (!usage.ok() || usage->size >= 3000000) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_THAT(usage, IsOk());
    EXPECT_GE(usage->size, 3000000);
    EXPECT_LE(usage->size, 16000000);  // never more than the layer's tar (~15 MB)
    EXPECT_GT(usage->inodes, 40);
    // The log says per layer lazy or not and why, and where the index came from.
    EXPECT_THAT(ReadFileOrEmpty(pub.dir + "/daemon.log"),
                ::testing::ContainsRegex("mounted sha256:[0-9a-f]+ of .* lazily at .* \\(index "
                                         "in the (registry|local store|remote cache)"));

    // A layer without an index and one without the CRI labels: each is pulled normally,
    // and the log says why.
    Labels unindexed{{kSnapshotRefLabel, "sha256:plain"},
                     {kImageRefLabel, pub.image.ToString()},
                     {kLayerDigestLabel, Digest::Of("no index for me").ToString()},
                     {kManifestDigestLabel, pub.manifest_digest.ToString()}};
    ASSERT_THAT(client.Prepare("extract-plain", "", unindexed), IsOk());
    ASSERT_THAT(client.Remove("extract-plain"), IsOk());
    ASSERT_THAT(client.Prepare("extract-bare", "", {{kSnapshotRefLabel, "sha256:bare"}}), IsOk());
    ASSERT_THAT(client.Remove("extract-bare"), IsOk());
    const std::string log = ReadFileOrEmpty(pub.dir + "/daemon.log");
    EXPECT_THAT(
        log, ::testing::HasSubstr(absl::StrCat(
                 "layer ", Digest::Of("no index for me").ToString(), " of ", pub.image.ToString(),
                 " is not lazy: no index (not in the local store; bound to artifact sha256:")))
        << log;
    EXPECT_THAT(log, ::testing::HasSubstr(
                         "; the bound artifact has no index for this layer; no remote cache "
                         "configured; no referrer indexes this layer); pulled normally"))
        << log;
    EXPECT_THAT(log, ::testing::HasSubstr("layer sha256:bare is not lazy: containerd sent no "
                                          "image/layer labels"));

    for (const char* f : {"/etc/hello.txt", "/usr/bin/random700k", "/etc/app/seq.txt"}) {
      for (int i = 0; i < 3; ++i) EXPECT_FALSE(ReadFileOrEmpty(layer_mnt + f).empty()) << f;
    }

    // Ordinary "no" answers are not errors: no such attribute (ENODATA), a buffer too
    // small (ERANGE), no such file (ENOENT).
    char small[1];
    EXPECT_EQ(getxattr((layer_mnt + "/etc/hello.txt").c_str(), "user.none", nullptr, 0), -1);
    EXPECT_EQ(errno, ENODATA);
    EXPECT_EQ(getxattr((layer_mnt + "/etc/hello.txt").c_str(), "user.comment", small, 1), -1);
    EXPECT_EQ(errno, ERANGE);
    EXPECT_FALSE(Exists(layer_mnt + "/no/such/file"));

    // Prometheus metrics on the configured unix socket.
    auto scraped = RunCommand("curl -sf --unix-socket " + metrics_sock + " http://x/metrics");
    ASSERT_THAT(scraped, IsOk());
    auto value = [&](const std::string& series) -> double {
      size_t at = scraped->find("\n" + series + " ");
      if (at == std::string::npos) return -1;
      return std::stod(scraped->substr(at + series.size() + 2));
    };
    EXPECT_EQ(value(R"(clip_snapshotter_rpc_total{code="6",method="Prepare"})"), 1) << *scraped;
    EXPECT_EQ(value(R"(clip_snapshotter_rpc_total{code="0",method="View"})"), 1);
    EXPECT_GT(value(R"(clip_snapshotter_rpc_duration_seconds_count{method="Prepare"})"), 0);
    EXPECT_GT(value(R"(clip_fuse_ops_total{op="read"})"), 0);
    EXPECT_GT(value(R"(clip_fuse_ops_total{op="lookup"})"), 0);
    EXPECT_EQ(value(R"(clip_fuse_op_errors_total{op="read"})"), 0);
    EXPECT_GE(value(R"(clip_fuse_ops_total{op="getxattr"})"), 2);
    EXPECT_EQ(value(R"(clip_fuse_op_errors_total{op="getxattr"})"), 0) << *scraped;
    EXPECT_EQ(value(R"(clip_fuse_op_errors_total{op="lookup"})"), 0);
    // Passthrough is on (the default) and this layer's files average over 256 KiB: every
    // open is answered, so that a file opened once the layer is a tree can open onto it
    // (fs/fuse_server_test checks the zero-message opens of other mounts).
    EXPECT_GE(value(R"(clip_fuse_ops_total{op="open"})"), 2) << *scraped;
    EXPECT_LE(value(R"(clip_fuse_ops_total{op="release"})"),
              value(R"(clip_fuse_ops_total{op="open"})"));
    EXPECT_EQ(value(R"(clip_fuse_op_errors_total{op="open"})"), 0);
    EXPECT_GT(value(R"(clip_fuse_op_duration_seconds_count{op="read"})"), 0);
    EXPECT_GE(value(R"(clip_registry_blob_bytes_total{kind="range"})"), 3000000);
    EXPECT_GT(value(R"(clip_cache_hits_total{tier="memory"})"), 0) << *scraped;
    EXPECT_GT(value(R"(clip_cache_read_bytes_total{tier="memory"})"), 0);
    EXPECT_GE(value(R"(clip_cache_misses_total{tier="disk"})"), 1);
    EXPECT_EQ(value("clip_mounted_layers"), 1);

    std::atomic<bool> stop_reads{false};
    std::atomic<int> failed_reads{0}, reads{0};
    const std::string seq = ReadFileOrEmpty(pub.dir + "/layers/tree/etc/app/seq.txt");
    std::thread reader([&] {
      std::string buf(seq.size() + 1, '\0');
      while (!stop_reads) {
        int fd = open((layer_mnt + "/etc/app/seq.txt").c_str(), O_RDONLY);
        if (fd < 0) {
          ++failed_reads;
          continue;
        }
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // so reads reach the daemon
        size_t got = 0;
        ssize_t n;
        while ((n = read(fd, buf.data() + got, buf.size() - got)) > 0) got += n;
        if (n < 0 || buf.compare(0, got, seq) != 0 || got != seq.size()) ++failed_reads;
        ++reads;
        close(fd);
      }
    });
    // Reads through the first daemon, then it dies under them.
    EXPECT_TRUE(WaitFor(absl::Seconds(30), [&] { return reads.load() >= 3; }))
        << "the reader made no progress";
    stop(pid, SIGKILL);
    // A while without any daemon (the reader's calls wait on the held connection): this
    // only widens the window, nothing waits for it to finish.
    absl::SleepFor(absl::Milliseconds(300));
    pid = start();
    // Reads through the new daemon (the resent and the new calls) before the reader stops.
    const int before = reads.load();
    const bool read_after = pid > 0 && WaitFor(absl::Seconds(30), [&] {
                              return reads.load() >= before + 3 || failed_reads.load() > 0;
                            });
    if (!read_after) {
      // Nobody serves the held connection (or reads hang): end it, so that the reader's
      // calls fail instead of waiting forever, and the test reports instead of hanging.
      if (cleanup.daemon > 0) stop(cleanup.daemon, SIGKILL);
      for (pid_t h : cleanup.holders) {
        if (IsHolder(h)) kill(h, SIGKILL);
      }
    }
    stop_reads = true;
    reader.join();
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(read_after) << "no reads through the daemon that took over";
    ASSERT_TRUE(Exists(sock)) << ReadFileOrEmpty(pub.dir + "/daemon.log");
    EXPECT_EQ(failed_reads.load(), 0);
    EXPECT_GT(reads.load(), 2);
    EXPECT_THAT(ReadFileOrEmpty(pub.dir + "/daemon.log"),
                ::testing::HasSubstr("took over 1 live layer mount(s) from the fd holder"));
    EXPECT_EQ(ReadFileOrEmpty(layer_mnt + "/etc/hello.txt"), "hello\n");
    EXPECT_TRUE(ReadFileOrEmpty(layer_mnt + "/usr/bin/random3m") == want);
    GrpcSnapshotter again("unix:" + sock);
    // gRPC may hand the new channel the dead daemon's broken connection first
    // (UNAVAILABLE); like containerd, a client retries that.
    auto retry = [&](const std::string& key) {
      absl::Status st;
      for (int i = 0; i < 5; ++i) {
        st = again.Remove(key);
        if (st.code() != absl::StatusCode::kUnavailable) break;
        absl::SleepFor(absl::Milliseconds(100));
      }
      return st;
    };
    absl::Status rv = retry("v");
    EXPECT_THAT(rv, IsOk());
    absl::Status rl = retry("sha256:lazy");
    EXPECT_THAT(rl, IsOk());
    EXPECT_FALSE(Mounted(layer_mnt));
    EXPECT_THAT(ReadFileOrEmpty(pub.dir + "/daemon.log"),
                ::testing::ContainsRegex("unmounted sha256:[0-9a-f]+ at " + layer_mnt));
    // SIGTERM hands over: the mount stays; SIGUSR1 (below) unmounts every layer.
    Labels labels2{{kSnapshotRefLabel, "sha256:lazy2"},
                   {kImageRefLabel, pub.image.ToString()},
                   {kLayerDigestLabel, Digest::Of(pub.layer).ToString()},
                   {kManifestDigestLabel, pub.manifest_digest.ToString()}};
    ASSERT_EQ(again.Prepare("extract2", "", labels2).status().code(),
              absl::StatusCode::kAlreadyExists);
    EXPECT_NE(ReadFileOrEmpty("/proc/mounts").find(pub.dir + "/droot"), std::string::npos);
  }
  stop(pid, SIGTERM);
  EXPECT_NE(ReadFileOrEmpty("/proc/mounts").find(pub.dir + "/droot"), std::string::npos)
      << "SIGTERM must hand over, not unmount";
  EXPECT_TRUE(IsHolder(holder)) << "the holder must outlive a handover";
  pid = start();
  ASSERT_GT(pid, 0);
  EXPECT_THAT(ReadFileOrEmpty(pub.dir + "/daemon.log"),
              ::testing::HasSubstr("(listening socket taken over)"));
  EXPECT_EQ(cleanup.holders.size(), 1u) << "the daemons started another holder";
  stop(pid, SIGUSR1);
  EXPECT_EQ(ReadFileOrEmpty("/proc/mounts").find(pub.dir + "/droot"), std::string::npos)
      << "mounts left after SIGUSR1";
  EXPECT_FALSE(Exists(holder_sock)) << "the fd holder outlived SIGUSR1";
  // The holder is not our child: it is gone (or a zombie) soon after the full stop.
  EXPECT_TRUE(WaitFor(absl::Seconds(10), [&] { return !IsHolder(holder); }))
      << "clip-fd-holder " << holder << " still runs after SIGUSR1";
  EXPECT_FALSE(Exists(metrics_sock));  // removed on an orderly shutdown
  unlink(sock.c_str());
  RunCommand("grep -o ' " + pub.dir + "[^ ]*' /proc/mounts | xargs -r -n1 umount -l").IgnoreError();
}

}  // namespace
}  // namespace clip
