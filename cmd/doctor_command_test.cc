#include "cmd/doctor_command.h"

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kContainerdConfig[] = "/etc/containerd/config.toml";
constexpr char kClipConfig[] = "/etc/containerd-clip-grpc/config.toml";
constexpr char k16[] = "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1";
constexpr char k17[] = "containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6";
constexpr char k21[] = "containerd github.com/containerd/containerd/v2 2.1.9+unknown ";

// The project's version 2 stanza (1.6, 1.7), complete.
constexpr char kGoodV2[] = R"(version = 2
root = "/var/lib/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[proxy_plugins.clip]
  type = "snapshot"
  address = "/run/containerd-clip-grpc/containerd-clip-grpc.sock"
  [proxy_plugins.clip.exports]
    root = "/var/lib/containerd-clip-grpc"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "clip"
  disable_snapshot_annotations = false
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
)";

// containerd 2.1's own `config dump` style (single quotes): CRI through the transfer
// service, which unpacks to clip with the labels.
constexpr char kGoodV3Transfer[] = R"(version = 3
root = '/var/lib/containerd'
[grpc]
  address = '/run/containerd/containerd.sock'
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'clip'
    disable_snapshot_annotations = true
    max_concurrent_downloads = 3
    use_local_image_pull = false
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '/etc/containerd/certs.d'
  [plugins.'io.containerd.transfer.v1.local']
    [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
      platform = 'linux/amd64'
      snapshotter = 'clip'
    [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
      platform = 'linux/amd64'
      snapshotter = 'overlayfs'
[proxy_plugins]
  [proxy_plugins.clip]
    type = 'snapshot'
    address = '/run/containerd-clip-grpc/containerd-clip-grpc.sock'
    [proxy_plugins.clip.exports]
      address = '/run/containerd-clip-grpc/containerd-clip-grpc.sock'
      root = '/var/lib/containerd-clip-grpc'
      enable_remote_snapshot_annotations = 'true'
)";

constexpr char kGoodClip[] = R"(hosts_dir = "/etc/containerd/certs.d"
)";

// A node whose every answer is set by the test; Run answers `--version` and `config
// dump` (the dump: `dump`, else the file as written, as containerd prints a full file).
class FakeProbes : public DoctorProbes {
 public:
  absl::StatusOr<std::string> Run(const std::vector<std::string>& argv) override {
    commands.push_back(absl::StrJoin(argv, " "));
    if (argv.size() == 2 && argv[1] == "--version") return version;
    if (argv.back() == "dump") {
      if (!dump.ok()) return dump.status();
      if (!dump->empty()) return *dump;
      return ReadFile(kContainerdConfig);
    }
    if (argv[0] == "systemctl") return fd_store_max;
    return absl::NotFoundError(absl::StrCat("cannot run ", argv[0]));
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return absl::NotFoundError(path);
    return it->second;
  }
  absl::StatusOr<std::string> RealPath(const std::string& path) override {
    auto it = links.find(path);
    if (it != links.end()) return it->second;
    return path;
  }
  absl::StatusOr<RunningContainerd> Containerd(const std::string& address) override {
    containerd_address = address;
    return running;
  }
  absl::Status Snapshotter(const std::string&) override { return snapshotter; }
  absl::StatusOr<FdHolderState> FdHolder(const std::string& socket) override {
    holder_socket = socket;
    return holder;
  }
  absl::StatusOr<DaemonProcess> Daemon(const std::string&) override { return daemon; }
  KernelFuse Fuse() override { return fuse; }
  std::string HostPlatform() override { return "linux/amd64"; }

  // A healthy node running `version_text`'s containerd with `config`.
  void Node(const char* version_text, const std::string& config) {
    version = version_text;
    files[kContainerdConfig] = config;
    files[kClipConfig] = kGoodClip;
    absl::StatusOr<ContainerdVersion> v = ParseContainerdVersion(version_text);
    running = RunningContainerd{};
    running->version = v.ok() ? v->text : "?";
    absl::StatusOr<ContainerdSettings> c = ParseContainerdConfig(config, "test");
    RunningContainerd::Plugin clip{"io.containerd.snapshotter.v1", "clip", {}, ""};
    if (c.ok() && c->proxy_plugins.count("clip") > 0) {
      clip.exports = c->proxy_plugins.at("clip").exports;
      clip.exports["address"] = c->proxy_plugins.at("clip").address;
      if (v.ok() && v->major < 2) clip.exports = {{"address", clip.exports["address"]}};
    }
    running->plugins = std::vector<RunningContainerd::Plugin>{clip};
    // 1.6 reports <containerd root>/io.containerd.snapshotter.v1.clip: the daemon's link.
    links["/var/lib/containerd/io.containerd.snapshotter.v1.clip"] =
        "/var/lib/containerd-clip-grpc";
  }

  absl::StatusOr<std::string> version = std::string(k16);
  absl::StatusOr<std::string> dump = std::string();  // empty: the file
  std::map<std::string, std::string> files;
  std::map<std::string, std::string> links;
  absl::StatusOr<RunningContainerd> running = RunningContainerd{};
  absl::Status snapshotter = absl::OkStatus();
  absl::StatusOr<FdHolderState> holder = FdHolderState{4242, 3, true};
  absl::StatusOr<DaemonProcess> daemon = DaemonProcess{4200, "", ""};
  absl::StatusOr<std::string> fd_store_max = std::string("16384\n");
  KernelFuse fuse{true, 7, 45, true, true, "probed"};

  std::vector<std::string> commands;
  std::string containerd_address;
  std::string holder_socket;
};

class DoctorTest : public ::testing::Test {
 protected:
  std::vector<Finding> Findings() {
    DoctorOptions o;
    o.containerd_config = kContainerdConfig;
    o.clip_config = kClipConfig;
    std::vector<Finding> f = Diagnose(GatherNodeFacts(o, probes_));
    for (const Finding& x : f) lines_ += FormatFinding(x) + "\n";
    return f;
  }
  int Exit(std::string* out = nullptr) {
    DoctorOptions o;
    o.containerd_config = kContainerdConfig;
    o.clip_config = kClipConfig;
    std::ostringstream s;
    const int rc = DoctorCommand(o, probes_, s);
    if (out != nullptr) *out = s.str();
    return rc;
  }
  std::vector<Finding> Worse(Severity than) {
    std::vector<Finding> out;
    for (const Finding& f : Findings()) {
      if (f.severity > than) out.push_back(f);
    }
    return out;
  }
  FakeProbes probes_;
  std::string lines_;
};

::testing::Matcher<const Finding&> Is(Severity s, const std::string& what,
                                      const std::string& fix = "") {
  return AllOf(Field(&Finding::severity, s), Field(&Finding::what, HasSubstr(what)),
               Field(&Finding::fix, HasSubstr(fix)));
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  return absl::StrReplaceAll(text, {{from, to}});
}

// --- Good nodes: nothing to fix, exit 0.

TEST_F(DoctorTest, GoodVersion2NodeOn16) {
  probes_.Node(k16, kGoodV2);
  EXPECT_THAT(Worse(Severity::kInfo), ::testing::IsEmpty()) << lines_;
  std::string out;
  EXPECT_EQ(Exit(&out), 0);
  EXPECT_THAT(out, HasSubstr("ok: containerd 1.6.20~ds1; config from `containerd config dump`"));
  EXPECT_THAT(out, HasSubstr("ok: CRI pulls into \"clip\" with snapshot annotations"));
  EXPECT_THAT(out, HasSubstr("0 warning(s), 0 error(s): ready for lazy pulls"));
  EXPECT_THAT(probes_.commands,
              Contains("containerd --config /etc/containerd/config.toml config dump"));
  EXPECT_EQ(probes_.containerd_address, "/run/containerd/containerd.sock");
  EXPECT_EQ(probes_.holder_socket, "/var/lib/containerd-clip-grpc/fd-holder.sock");
}

TEST_F(DoctorTest, GoodVersion2NodeOn17ReadsExportsRoot) {
  probes_.Node(k17, kGoodV2);
  probes_.links.clear();  // 1.7 reports exports.root itself
  EXPECT_THAT(Worse(Severity::kInfo), ::testing::IsEmpty()) << lines_;
  EXPECT_THAT(lines_, HasSubstr("ok: CRI reports /var/lib/containerd-clip-grpc as the image"));
}

TEST_F(DoctorTest, GoodVersion3NodeOn21ThroughTheTransferService) {
  probes_.Node(k21, kGoodV3Transfer);
  EXPECT_THAT(Worse(Severity::kInfo), ::testing::IsEmpty()) << lines_;
  EXPECT_THAT(lines_, HasSubstr("ok: CRI pulls through the transfer service, which unpacks to"));
  EXPECT_EQ(Exit(), 0);
}

TEST_F(DoctorTest, GoodVersion3NodeOn21WithTheLocalPull) {
  std::string config = Replace(kGoodV3Transfer, "disable_snapshot_annotations = true",
                               "disable_snapshot_annotations = false");
  probes_.Node(k21, config);
  EXPECT_THAT(Worse(Severity::kInfo), ::testing::IsEmpty()) << lines_;
  EXPECT_THAT(lines_, HasSubstr("(local pull: DisableSnapshotAnnotations) with snapshot"));
}

// --- The CRI snapshotter and its annotations.

TEST_F(DoctorTest, CriSnapshotterIsNotClip) {
  probes_.Node(k16, Replace(kGoodV2, "snapshotter = \"clip\"", "snapshotter = \"overlayfs\""));
  EXPECT_THAT(Findings(),
              Contains(Is(Severity::kError, "CRI's snapshotter is \"overlayfs\", not \"clip\"",
                          "[plugins.\"io.containerd.grpc.v1.cri\".containerd] snapshotter = "
                          "\"clip\"")));
  EXPECT_EQ(Exit(), 1);
}

TEST_F(DoctorTest, CriSnapshotterOn21NamesTheVersion3Table) {
  probes_.Node(k21, Replace(kGoodV3Transfer, "snapshotter = 'clip'\n    disable",
                            "snapshotter = 'overlayfs'\n    disable"));
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "CRI's snapshotter is \"overlayfs\"",
                                      "[plugins.'io.containerd.cri.v1.images'] snapshotter = "
                                      "'clip'")));
}

TEST_F(DoctorTest, SnapshotAnnotationsDisabledOn16) {
  probes_.Node(k16, Replace(kGoodV2, "disable_snapshot_annotations = false", ""));
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "CRI passes no snapshot annotations",
                                      "[plugins.\"io.containerd.grpc.v1.cri\".containerd] "
                                      "disable_snapshot_annotations = false")));
  EXPECT_EQ(Exit(), 1);
}

TEST_F(DoctorTest, Version2FileOn21WithoutRuntimesIsNotMigrated) {
  // containerd 2.1 migrates the v2 snapshotter only with a runtimes table: its dump says
  // overlayfs while the file says clip.
  const std::string file =
      Replace(kGoodV2,
              "  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
              "    runtime_type = \"io.containerd.runc.v2\"\n",
              "");
  probes_.Node(k21, file);
  probes_.dump = Replace(kGoodV3Transfer, "snapshotter = 'clip'\n    disable",
                         "snapshotter = 'overlayfs'\n    disable");
  EXPECT_THAT(Findings(),
              Contains(Is(Severity::kError, "is not migrated: containerd 2.x moves it only when",
                          "runtime_type = \"io.containerd.runc.v2\"")));
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning, "is version 2: containerd 2.x migrates",
                                      "config migrate")));
}

TEST_F(DoctorTest, WithoutADumpAVersion2FileOn2xIsReadAsItsMigration) {
  const std::string file =
      Replace(kGoodV2,
              "  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
              "    runtime_type = \"io.containerd.runc.v2\"\n",
              "");
  probes_.Node(k21, file);
  probes_.version = absl::NotFoundError("cannot run containerd");
  probes_.dump = absl::NotFoundError("cannot run containerd");
  probes_.running->version = "v2.1.9";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "CRI's snapshotter is \"overlayfs\"")));
  EXPECT_THAT(lines_, HasSubstr("ok: containerd v2.1.9 (its API;"));
}

TEST_F(DoctorTest, Version3FileOn16) {
  probes_.Node(k16, kGoodV3Transfer);
  probes_.dump = Replace(kGoodV2, "snapshotter = \"clip\"", "snapshotter = \"overlayfs\"");
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "which containerd 1.x reads as version 2",
                                      "version = 2")));
}

// --- containerd 2.1's transfer service.

TEST_F(DoctorTest, TransferServiceWithoutRemoteSnapshotAnnotations) {
  probes_.Node(k21,
               Replace(kGoodV3Transfer, "      enable_remote_snapshot_annotations = 'true'\n", ""));
  EXPECT_THAT(Findings(),
              Contains(Is(Severity::kError,
                          "CRI pulls through the transfer service, and the transfer service "
                          "passes clip no remote-snapshot labels",
                          "[proxy_plugins.clip.exports] enable_remote_snapshot_annotations = "
                          "'true'; or make CRI pull locally with "
                          "[plugins.'io.containerd.cri.v1.images'] "
                          "disable_snapshot_annotations = false")));
  EXPECT_EQ(Exit(), 1);
}

TEST_F(DoctorTest, TransferServiceWithoutUnpackConfig) {
  std::string config = kGoodV3Transfer;
  config = config.substr(0, config.find("  [plugins.'io.containerd.transfer.v1.local']")) +
           config.substr(config.find("[proxy_plugins]"));
  probes_.Node(k21, config);
  EXPECT_THAT(
      Findings(),
      Contains(Is(Severity::kError, "does not unpack linux/amd64 images to \"clip\"",
                  "add [[plugins.'io.containerd.transfer.v1.local'.unpack_config]] platform = "
                  "'linux/amd64', snapshotter = 'clip' and "
                  "[[plugins.'io.containerd.transfer.v1.local'.unpack_config]] platform = "
                  "'linux/amd64', snapshotter = 'overlayfs' (the table replaces the default)")));
}

TEST_F(DoctorTest, UnpackConfigWithoutOverlayfs) {
  const std::string config = Replace(kGoodV3Transfer,
                                     "    [[plugins.'io.containerd.transfer.v1.local'.unpack_"
                                     "config]]\n      platform = 'linux/amd64'\n      "
                                     "snapshotter = 'overlayfs'\n",
                                     "");
  probes_.Node(k21, config);
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning, "no linux/amd64 entry for overlayfs")));
  EXPECT_EQ(Exit(), 0);
}

TEST_F(DoctorTest, LocalPullOn21WarnsAboutCtrPullsThroughTheTransferService) {
  std::string config =
      Replace(kGoodV3Transfer, "max_concurrent_downloads = 3", "max_concurrent_downloads = 8");
  config = Replace(config, "      enable_remote_snapshot_annotations = 'true'\n", "");
  probes_.Node(k21, config);
  // max_concurrent_downloads makes 2.1's CRI pull locally, without annotations here.
  EXPECT_THAT(Findings(),
              Contains(Is(Severity::kError, "CRI pulls locally (MaxConcurrentDownloads)",
                          "disable_snapshot_annotations = false")));
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning,
                                      "`ctr image pull --snapshotter clip`: the transfer "
                                      "service passes clip no remote-snapshot labels")));
}

// --- The proxy plugin.

TEST_F(DoctorTest, ProxyAddressDiffersFromTheDaemons) {
  probes_.Node(
      k16, Replace(kGoodV2, "address = \"/run/containerd-clip-grpc/", "address = \"/run/other/"));
  EXPECT_THAT(Findings(),
              Contains(Is(Severity::kError,
                          "[proxy_plugins.clip] address = \"/run/other/containerd-clip-grpc.sock\","
                          " but the clip daemon's address is",
                          "[proxy_plugins.clip] address = "
                          "\"/run/containerd-clip-grpc/containerd-clip-grpc.sock\"")));
}

TEST_F(DoctorTest, NoProxyPlugin) {
  std::string config = kGoodV2;
  config = config.substr(0, config.find("[proxy_plugins.clip]")) +
           config.substr(config.find("[plugins."));
  probes_.Node(k16, config);
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "containerd has no proxy plugin",
                                      "[proxy_plugins.clip] type = \"snapshot\", address = "
                                      "\"/run/containerd-clip-grpc/containerd-clip-grpc.sock\"")));
}

TEST_F(DoctorTest, ProxyFoundByAddressUnderAnotherName) {
  std::string config = Replace(kGoodV2, "proxy_plugins.clip", "proxy_plugins.lazy");
  config = Replace(config, "snapshotter = \"clip\"", "snapshotter = \"lazy\"");
  probes_.Node(k16, config);
  probes_.running->plugins->at(0).id = "lazy";
  probes_.links.clear();
  std::vector<Finding> f = Findings();
  EXPECT_THAT(f, Contains(Is(Severity::kOk, "[proxy_plugins.lazy] points at the clip daemon")));
  // 1.6 reports io.containerd.snapshotter.v1.lazy, and the daemon's link is .clip.
  EXPECT_THAT(f, Contains(Is(Severity::kWarning,
                             "CRI reports /var/lib/containerd/io.containerd.snapshotter.v1.lazy",
                             "name the proxy plugin clip")));
}

TEST_F(DoctorTest, ExportThatIsNotAString) {
  probes_.Node(k21, Replace(kGoodV3Transfer, "enable_remote_snapshot_annotations = 'true'",
                            "enable_remote_snapshot_annotations = true"));
  EXPECT_THAT(Findings(),
              Contains(Is(Severity::kError, "enable_remote_snapshot_annotations is not a string",
                          "enable_remote_snapshot_annotations = 'true' (quoted)")));
}

// --- The running containerd.

TEST_F(DoctorTest, ContainerdDoesNotAnswer) {
  probes_.Node(k16, kGoodV2);
  probes_.running = absl::UnavailableError("connection refused");
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError,
                                      "containerd does not answer at "
                                      "/run/containerd/containerd.sock: connection refused",
                                      "systemctl start containerd")));
}

TEST_F(DoctorTest, RunningContainerdLacksTheProxyPlugin) {
  probes_.Node(k16, kGoodV2);
  probes_.running->plugins = std::vector<RunningContainerd::Plugin>{};
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError,
                                      "the running containerd has no "
                                      "snapshotter \"clip\"",
                                      "systemctl restart containerd")));
}

TEST_F(DoctorTest, RunningContainerdHasOlderExports) {
  probes_.Node(k21, kGoodV3Transfer);
  probes_.running->plugins->at(0).exports.erase("enable_remote_snapshot_annotations");
  probes_.running->plugins->at(0).exports["root"] = "/old";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning,
                                      "containerd runs with clip root = \"/old\" but its config "
                                      "says \"/var/lib/containerd-clip-grpc\"",
                                      "restart containerd")));
}

TEST_F(DoctorTest, ProxyPluginFailedToLoad) {
  probes_.Node(k16, kGoodV2);
  probes_.running->plugins->at(0).init_error = "no such file";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError,
                                      "containerd could not load snapshotter \"clip\": no "
                                      "such file")));
}

TEST_F(DoctorTest, ContainerdRefusesItsConfig) {
  probes_.Node(k21, kGoodV3Transfer);
  probes_.dump = absl::FailedPreconditionError("containerd config dump failed: bad toml");
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError,
                                      "containerd refuses "
                                      "/etc/containerd/config.toml")));
}

TEST_F(DoctorTest, NoContainerdConfigFileMeansDefaults) {
  probes_.Node(k16, kGoodV2);
  probes_.files.erase(kContainerdConfig);
  probes_.dump = absl::NotFoundError("cannot run containerd");
  probes_.version = absl::NotFoundError("cannot run containerd");
  std::vector<Finding> f = Findings();
  EXPECT_THAT(probes_.commands, Contains("containerd config dump"));
  EXPECT_THAT(f, Contains(Is(Severity::kError, "containerd has no proxy plugin")));
  EXPECT_THAT(lines_, HasSubstr("containerd's defaults (no /etc/containerd/config.toml)"));
}

TEST_F(DoctorTest, CriDisabled) {
  probes_.Node(k16, Replace(kGoodV2, "version = 2\n",
                            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"));
  EXPECT_THAT(Findings(), Contains(Is(Severity::kInfo, "CRI plugin is disabled")));
  EXPECT_EQ(Exit(), 0);
}

// --- The image filesystem CRI reports.

TEST_F(DoctorTest, ImageFsOn16NeedsTheDaemonsContainerdRoot) {
  probes_.Node(k16, Replace(kGoodV2, "root = \"/var/lib/containerd\"", "root = \"/data/ctd\""));
  EXPECT_THAT(
      Findings(),
      Contains(Is(Severity::kWarning,
                  "CRI reports /data/ctd/io.containerd.snapshotter.v1.clip as the image "
                  "filesystem",
                  "containerd_root = \"/data/ctd\" (containerd 1.6 ignores exports.root)")));
}

TEST_F(DoctorTest, ImageFsOn16WithoutTheLink) {
  probes_.Node(k16, kGoodV2);
  probes_.links["/var/lib/containerd/io.containerd.snapshotter.v1.clip"] =
      "/var/lib/containerd/io.containerd.snapshotter.v1.clip";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning, "kubelet's image GC",
                                      "restart the clip daemon: it makes")));
}

TEST_F(DoctorTest, ImageFsOn21NeedsExportsRoot) {
  probes_.Node(k21, Replace(kGoodV3Transfer, "      root = '/var/lib/containerd-clip-grpc'\n", ""));
  probes_.links.clear();
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning,
                                      "CRI reports /var/lib/containerd/io.containerd.snapshotter."
                                      "v1.clip as the image filesystem",
                                      "[proxy_plugins.clip.exports] root = "
                                      "'/var/lib/containerd-clip-grpc'")));
}

// --- Hosts directories.

TEST_F(DoctorTest, HostsDirectoriesDiffer) {
  probes_.Node(k16, kGoodV2);
  probes_.files[kClipConfig] = "hosts_dir = \"/etc/clip/hosts\"\n";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning,
                                      "CRI reads registry hosts from \"/etc/containerd/certs.d\", "
                                      "clip from \"/etc/clip/hosts\"",
                                      "hosts_dir = \"/etc/containerd/certs.d\"")));
  EXPECT_EQ(Exit(), 0);
}

TEST_F(DoctorTest, ContainerdReadsNoHostsDirectory) {
  probes_.Node(
      k21, Replace(kGoodV3Transfer, "config_path = '/etc/containerd/certs.d'", "config_path = ''"));
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning, "CRI reads registry hosts from \"\"",
                                      "[plugins.'io.containerd.cri.v1.images'.registry] "
                                      "config_path = '/etc/containerd/certs.d'")));
}

TEST_F(DoctorTest, SameHostsDirectoryWithATrailingSlash) {
  probes_.Node(k16, kGoodV2);
  probes_.files[kClipConfig] = "hosts_dir = \"/etc/containerd/certs.d/\"\n";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kOk, "the same hosts.toml directory")));
}

// --- The clip daemon, takeover and its fd store.

TEST_F(DoctorTest, ClipDaemonDoesNotAnswer) {
  probes_.Node(k16, kGoodV2);
  probes_.snapshotter = absl::UnavailableError("connection refused");
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "the clip daemon does not answer",
                                      "systemctl start containerd-clip-grpc")));
  EXPECT_EQ(Exit(), 1);
}

TEST_F(DoctorTest, ClipConfigIsBroken) {
  probes_.Node(k16, kGoodV2);
  probes_.files[kClipConfig] = "takeover = \"yes\"\n";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "cannot read the clip daemon's config")));
}

TEST_F(DoctorTest, NoFdHolderWhileTakeover) {
  probes_.Node(k16, kGoodV2);
  probes_.holder = absl::UnavailableError("connect: No such file or directory");
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError,
                                      "takeover = true, but no fd holder answers at "
                                      "/var/lib/containerd-clip-grpc/fd-holder.sock",
                                      "restart the clip daemon: it starts clip-fd-holder")));
  EXPECT_EQ(Exit(), 1);
}

TEST_F(DoctorTest, FdHolderSocketFromTheConfig) {
  probes_.Node(k16, kGoodV2);
  probes_.files[kClipConfig] = std::string(kGoodClip) + "fd_holder_socket = \"/run/h.sock\"\n";
  Findings();
  EXPECT_EQ(probes_.holder_socket, "/run/h.sock");
}

TEST_F(DoctorTest, FdHolderWithoutTheDaemonsSocket) {
  probes_.Node(k16, kGoodV2);
  probes_.holder = FdHolderState{4242, 2, false};
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning, "does not hold the daemon's socket")));
}

TEST_F(DoctorTest, TakeoverOff) {
  probes_.Node(k16, kGoodV2);
  probes_.files[kClipConfig] = std::string(kGoodClip) + "takeover = false\n";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kWarning, "takeover = false", "takeover = true")));
  EXPECT_EQ(probes_.holder_socket, "");
  EXPECT_EQ(Exit(), 0);
}

TEST_F(DoctorTest, SystemdStoreWithoutNotifySocket) {
  probes_.Node(k16, kGoodV2);
  probes_.files[kClipConfig] = std::string(kGoodClip) + "fd_store = \"systemd\"\n";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "has no $NOTIFY_SOCKET",
                                      "FileDescriptorStoreMax=16384")));
}

TEST_F(DoctorTest, AutoStoreUnderSystemdWithoutFdStore) {
  probes_.Node(k16, kGoodV2);
  probes_.daemon = DaemonProcess{4200, "/run/systemd/notify", "containerd-clip-grpc.service"};
  probes_.fd_store_max = std::string("0\n");
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError,
                                      "containerd-clip-grpc.service has FileDescriptorStoreMax=0",
                                      "FileDescriptorStoreMax=16384 in [Service] of "
                                      "containerd-clip-grpc.service")));
  EXPECT_EQ(probes_.holder_socket, "");  // systemd is the store: no holder to ask
  EXPECT_THAT(probes_.commands, Contains("systemctl show --property=FileDescriptorStoreMax "
                                         "--value containerd-clip-grpc.service"));
}

TEST_F(DoctorTest, AutoStoreUnderSystemd) {
  probes_.Node(k16, kGoodV2);
  probes_.daemon = DaemonProcess{4200, "/run/systemd/notify", "containerd-clip-grpc.service"};
  EXPECT_THAT(Findings(), Contains(Is(Severity::kOk,
                                      "systemd's fd store of "
                                      "containerd-clip-grpc.service")));
}

// --- The kernel.

TEST_F(DoctorTest, KernelWithoutResendOrPassthrough) {
  probes_.Node(k16, kGoodV2);
  probes_.fuse = KernelFuse{true, 7, 38, false, false, "probed"};
  std::vector<Finding> f = Findings();
  EXPECT_THAT(f, Contains(Is(Severity::kWarning, "the kernel lacks FUSE_NOTIFY_RESEND (FUSE 7.38",
                             "Linux 6.9 or later")));
  EXPECT_THAT(f, Contains(Is(Severity::kWarning, "the kernel lacks FUSE passthrough")));
  EXPECT_EQ(Exit(), 0);
}

TEST_F(DoctorTest, KernelNotProbed) {
  probes_.Node(k16, kGoodV2);
  probes_.fuse = KernelFuse{true, 0, 0, true, std::nullopt, "Linux 6.18 (no probe mount: EPERM)"};
  std::vector<Finding> f = Findings();
  EXPECT_THAT(f, Contains(Is(Severity::kOk, "FUSE_NOTIFY_RESEND (Linux 6.18")));
  EXPECT_THAT(f, Contains(Is(Severity::kWarning,
                             "cannot tell whether the kernel has FUSE "
                             "passthrough")));
}

TEST_F(DoctorTest, NoFuseDevice) {
  probes_.Node(k16, kGoodV2);
  probes_.fuse = KernelFuse{false, 0, 0, std::nullopt, std::nullopt, "/dev/fuse: missing"};
  EXPECT_THAT(Findings(), Contains(Is(Severity::kError, "/dev/fuse is missing", "modprobe fuse")));
}

// --- Index trust.

TEST_F(DoctorTest, IndexTrustReferrers) {
  probes_.Node(k16, kGoodV2);
  probes_.files[kClipConfig] = std::string(kGoodClip) + "index_trust = \"referrers\"\n";
  EXPECT_THAT(Findings(),
              Contains(Is(Severity::kWarning, "anyone who can push", "index_trust = \"bound\"")));
  EXPECT_EQ(Exit(), 0);
}

TEST_F(DoctorTest, IndexTrustFleet) {
  probes_.Node(k16, kGoodV2);
  probes_.files[kClipConfig] =
      std::string(kGoodClip) + "index_trust = \"fleet\"\nremote_cache = \"http://c:8080\"\n";
  EXPECT_THAT(Findings(), Contains(Is(Severity::kInfo, "whoever can write to http://c:8080")));
}

// --- Parsers.

TEST(ContainerdVersionTest, Parses) {
  absl::StatusOr<ContainerdVersion> v = ParseContainerdVersion(k16);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->major, 1);
  EXPECT_EQ(v->minor, 6);
  EXPECT_EQ(v->text, "1.6.20~ds1");
  v = ParseContainerdVersion(k21);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->major, 2);
  EXPECT_EQ(v->minor, 1);
  v = ParseContainerdVersion("v2.3.0");
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->minor, 3);
  EXPECT_THAT(ParseContainerdVersion("containerd: command not found"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ContainerdConfigTest, ReadsVersion3DumpWithSingleQuotes) {
  absl::StatusOr<ContainerdSettings> s = ParseContainerdConfig(kGoodV3Transfer, "dump");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->version, 3);
  EXPECT_EQ(s->cri_snapshotter, "clip");
  EXPECT_TRUE(s->disable_snapshot_annotations);
  EXPECT_TRUE(s->local_pull_reasons.empty());
  ASSERT_TRUE(s->unpack_config.has_value());
  ASSERT_EQ(s->unpack_config->size(), 2u);
  EXPECT_EQ((*s->unpack_config)[0].snapshotter, "clip");
  EXPECT_EQ(s->proxy_plugins.at("clip").exports.at("enable_remote_snapshot_annotations"), "true");
}

TEST(ContainerdConfigTest, LocalPullReasonsAsContainerd21NamesThem) {
  absl::StatusOr<ContainerdSettings> s = ParseContainerdConfig(R"(version = 3
[plugins.'io.containerd.cri.v1.images']
  use_local_image_pull = true
  disable_snapshot_annotations = false
  discard_unpacked_layers = true
  image_pull_with_sync_fs = true
  [plugins.'io.containerd.cri.v1.images'.registry.mirrors.'docker.io']
    endpoint = ['https://m']
  [plugins.'io.containerd.cri.v1.images'.registry.auths.'https://x']
    username = 'u'
)",
                                                               "t");
  ASSERT_THAT(s, IsOk());
  EXPECT_THAT(s->local_pull_reasons,
              ::testing::ElementsAre("use_local_image_pull", "DisableSnapshotAnnotations",
                                     "DiscardUnpackedLayers", "ImagePullWithSyncFs",
                                     "Registry.Mirrors", "Registry.Configs"));
}

TEST(ContainerdConfigTest, DefaultsAndVersion2) {
  absl::StatusOr<ContainerdSettings> s = ParseContainerdConfig("", "empty");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->version, 1);
  EXPECT_EQ(s->address, "/run/containerd/containerd.sock");
  EXPECT_EQ(s->cri_snapshotter, "overlayfs");
  EXPECT_TRUE(s->disable_snapshot_annotations);
  EXPECT_FALSE(s->unpack_config.has_value());
  s = ParseContainerdConfig(kGoodV2, "v2");
  ASSERT_THAT(s, IsOk());
  EXPECT_TRUE(s->v2_cri_runtimes);
  EXPECT_EQ(s->cri_config_path, "/etc/containerd/certs.d");
  EXPECT_THAT(ParseContainerdConfig("version = [", "bad"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad")));
}

TEST(FormatFindingTest, OneLine) {
  EXPECT_EQ(FormatFinding({Severity::kOk, "fine", ""}), "ok: fine");
  EXPECT_EQ(FormatFinding({Severity::kError, "broken", "set x = 1"}),
            "error: broken -- fix: set x = 1");
}

}  // namespace
}  // namespace clip
