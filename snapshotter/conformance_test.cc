// The snapshotter conformance suite: the behaviours containerd's own snapshotters are
// tested for (containerd's snapshots/testsuite), run against the core directly and
// through the gRPC service over a unix socket. Mounts are performed for real (root).
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "snapshotter/grpc_snapshotter.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/service.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

using testing::MakeTempDir;

// --- mounting MountSpecs as containerd would ---------------------------------------

std::string CommonDir(const std::vector<std::string>& paths) {
  std::string p = paths.empty() ? "/" : paths[0];
  for (const auto& x : paths) {
    while (!absl::StartsWith(x, p)) p = p.substr(0, p.rfind('/'));
  }
  return p.substr(0, p.rfind('/') + 1);
}

absl::Status MountOne(const MountSpec& m, const std::string& target) {
  bool ro = std::find(m.options.begin(), m.options.end(), "ro") != m.options.end();
  if (m.type == "bind") {
    if (mount(m.source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return absl::InternalError(absl::StrCat("bind mount: ", strerror(errno)));
    }
    if (ro &&
        mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      return absl::InternalError(absl::StrCat("ro remount: ", strerror(errno)));
    }
    return absl::OkStatus();
  }
  std::vector<std::string> opts;
  std::vector<std::string> paths;
  for (const auto& o : m.options) {
    if (o == "ro" || o == "rw") continue;
    opts.push_back(o);
    for (const char* k : {"lowerdir=", "upperdir=", "workdir="}) {
      if (absl::StartsWith(o, k)) {
        for (absl::string_view p : absl::StrSplit(o.substr(strlen(k)), ':')) paths.emplace_back(p);
      }
    }
  }
  std::string data = absl::StrJoin(opts, ",");
  if (data.size() < 4000) {
    if (mount("overlay", target.c_str(), "overlay", ro ? MS_RDONLY : 0, data.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("overlay mount: ", strerror(errno)));
    }
    return absl::OkStatus();
  }
  // Too long for one page: mount from the common directory with relative paths, as
  // containerd does.
  std::string common = CommonDir(paths);
  std::string rel = data;
  size_t at;
  while ((at = rel.find(common)) != std::string::npos) rel.erase(at, common.size());
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(common.c_str()) != 0) _exit(1);
    _exit(mount("overlay", target.c_str(), "overlay", ro ? MS_RDONLY : 0, rel.c_str()) == 0 ? 0
                                                                                            : 2);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("overlay mount (relative): exit ", WEXITSTATUS(status)));
  }
  return absl::OkStatus();
}

class Mounted {
 public:
  Mounted(const std::vector<MountSpec>& mounts, const std::string& target) : target_(target) {
    mkdir(target.c_str(), 0755);
    EXPECT_EQ(mounts.size(), 1u);
    status_ = MountOne(mounts.at(0), target);
  }
  ~Mounted() {
    if (status_.ok() && umount2(target_.c_str(), 0) != 0) umount2(target_.c_str(), MNT_DETACH);
  }
  const absl::Status& status() const { return status_; }
  std::string operator/(const std::string& rel) const { return target_ + "/" + rel; }

 private:
  std::string target_;
  absl::Status status_;
};

void Write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}
std::string Read(const std::string& path) { return testing::ReadFileOrEmpty(path); }
bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// --- the factories ------------------------------------------------------------------

struct Env {
  std::string root;
  std::unique_ptr<OverlaySnapshotter> core;
  std::unique_ptr<SnapshotsService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<Snapshotter> client;
  Snapshotter* s = nullptr;
};

using Factory = std::function<std::unique_ptr<Env>()>;

std::unique_ptr<Env> CoreEnv() {
  auto e = std::make_unique<Env>();
  e->root = MakeTempDir("snap");
  e->core = OverlaySnapshotter::Open(e->root + "/root").value();
  e->s = e->core.get();
  return e;
}

std::unique_ptr<Env> GrpcEnv() {
  auto e = CoreEnv();
  std::string dir = MakeTempDir("sock");
  std::string socket = "/tmp/clip-conf-" + std::to_string(getpid()) + "-" +
                       std::to_string(reinterpret_cast<uintptr_t>(e.get()) % 100000) + ".sock";
  e->service = std::make_unique<SnapshotsService>(*e->core);
  grpc::ServerBuilder b;
  b.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  b.RegisterService(e->service.get());
  e->server = b.BuildAndStart();
  e->client = std::make_unique<GrpcSnapshotter>("unix:" + socket);
  e->s = e->client.get();
  return e;
}

struct Param {
  const char* name;
  Factory factory;
};

class ConformanceTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    env_ = GetParam().factory();
    s_ = env_->s;
    work_ = MakeTempDir("work");
  }
  void TearDown() override {
    if (env_->server) env_->server->Shutdown();
  }
  std::string Target(const std::string& name) { return work_ + "/" + name; }

  std::unique_ptr<Env> env_;
  Snapshotter* s_ = nullptr;
  std::string work_;
};

// Prepare, write, commit; prepare on top, check, change and delete; commit; view.
TEST_P(ConformanceTest, PrepareCommitChainWithFileChanges) {
  auto m1 = s_->Prepare("prepare-1", "", {{"l", "1"}});
  ASSERT_THAT(m1, IsOk());
  {
    Mounted mnt(*m1, Target("m1"));
    ASSERT_THAT(mnt.status(), IsOk());
    Write(mnt / "foo", "foo v1");
    mkdir((mnt / "dir").c_str(), 0700);
    Write(mnt / "dir/bar", "bar");
    Write(mnt / "dir/moved", "moves");
    Write(mnt / "owned", "x");
    ASSERT_EQ(chown((mnt / "owned").c_str(), 1234, 5678), 0);
    ASSERT_EQ(chmod((mnt / "owned").c_str(), 04751), 0);
  }
  ASSERT_THAT(s_->Commit("layer-1", "prepare-1", {{"c", "1"}}), IsOk());
  auto info = s_->Stat("layer-1");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->kind, SnapshotKind::kCommitted);
  EXPECT_EQ(info->labels, (Labels{{"c", "1"}}));
  EXPECT_EQ(s_->Stat("prepare-1").status().code(), absl::StatusCode::kNotFound);

  auto m2 = s_->Prepare("prepare-2", "layer-1", {});
  ASSERT_THAT(m2, IsOk());
  {
    Mounted mnt(*m2, Target("m2"));
    ASSERT_THAT(mnt.status(), IsOk());
    EXPECT_EQ(Read(mnt / "foo"), "foo v1");
    EXPECT_EQ(Read(mnt / "dir/bar"), "bar");
    struct stat st;
    ASSERT_EQ(lstat((mnt / "owned").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1234u);
    EXPECT_EQ(st.st_gid, 5678u);
    EXPECT_EQ(st.st_mode & 07777, 04751u);
    Write(mnt / "foo", "foo v2");
    ASSERT_EQ(unlink((mnt / "dir/bar").c_str()), 0);
    ASSERT_EQ(rename((mnt / "dir/moved").c_str(), (mnt / "moved-here").c_str()), 0);
  }
  ASSERT_THAT(s_->Commit("layer-2", "prepare-2", {}), IsOk());
  EXPECT_EQ(s_->Stat("layer-2")->parent, "layer-1");

  auto v = s_->View("view-1", "layer-2", {});
  ASSERT_THAT(v, IsOk());
  Mounted mnt(*v, Target("v1"));
  ASSERT_THAT(mnt.status(), IsOk());
  EXPECT_EQ(Read(mnt / "foo"), "foo v2");
  EXPECT_FALSE(Exists(mnt / "dir/bar"));
  EXPECT_FALSE(Exists(mnt / "dir/moved"));
  EXPECT_EQ(Read(mnt / "moved-here"), "moves");
  EXPECT_LT(open((mnt / "new").c_str(), O_CREAT | O_WRONLY, 0644), 0);  // read-only view
}

TEST_P(ConformanceTest, StatKindsAndErrors) {
  ASSERT_THAT(s_->Prepare("a", "", {}), IsOk());
  EXPECT_EQ(s_->Stat("a")->kind, SnapshotKind::kActive);
  EXPECT_EQ(s_->Prepare("a", "", {}).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(s_->Prepare("b", "missing", {}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s_->Prepare("b", "a", {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s_->Commit("c", "missing", {}).code(), absl::StatusCode::kNotFound);
  ASSERT_THAT(s_->Commit("c", "a", {}), IsOk());
  EXPECT_EQ(s_->Commit("c2", "c", {}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_THAT(s_->View("v", "c", {}), IsOk());
  EXPECT_EQ(s_->Stat("v")->kind, SnapshotKind::kView);
  EXPECT_EQ(s_->Commit("c3", "v", {}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_THAT(s_->Prepare("p", "c", {}), IsOk());
  EXPECT_EQ(s_->Commit("c", "p", {}).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(s_->Mounts("c").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s_->Stat("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s_->Mounts("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s_->Prepare("", "", {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s_->Prepare("big", "", {{"k", std::string(5000, 'v')}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A failed Prepare leaves nothing behind.
  EXPECT_EQ(s_->Stat("big").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(ConformanceTest, UpdateLabels) {
  ASSERT_THAT(s_->Prepare("a", "", {{"x", "1"}, {"y", "2"}}), IsOk());
  ASSERT_THAT(s_->Commit("c", "a", {{"x", "1"}, {"y", "2"}}), IsOk());
  absl::Time before = s_->Stat("c")->updated;
  SnapshotInfo info;
  info.name = "c";
  info.labels = {{"x", "10"}, {"z", "3"}};
  auto one = s_->Update(info, {"labels.x"});
  ASSERT_THAT(one, IsOk());
  EXPECT_EQ(one->labels, (Labels{{"x", "10"}, {"y", "2"}}));
  EXPECT_GT(one->updated, before);
  auto del = s_->Update(info, {"labels.y"});  // absent from info: removed
  ASSERT_THAT(del, IsOk());
  EXPECT_EQ(del->labels, (Labels{{"x", "10"}}));
  auto all = s_->Update(info, {});
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->labels, info.labels);
  EXPECT_EQ(s_->Update(info, {"name"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s_->Update(info, {"parent"}).status().code(), absl::StatusCode::kInvalidArgument);
  info.name = "missing";
  EXPECT_EQ(s_->Update(info, {}).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(ConformanceTest, WalkWithFilters) {
  ASSERT_THAT(s_->Prepare("a", "", {}), IsOk());
  ASSERT_THAT(s_->Commit("base", "a", {{"containerd.io/snapshot.ref", "sha256:1"}}), IsOk());
  ASSERT_THAT(s_->Prepare("b", "base", {{"app", "web"}}), IsOk());
  ASSERT_THAT(s_->View("v", "base", {}), IsOk());
  auto names = [&](std::vector<std::string> filters) {
    std::set<std::string> out;
    EXPECT_TRUE(s_->Walk(filters, [&](const SnapshotInfo& i) {
                    out.insert(i.name);
                    return absl::OkStatus();
                  }).ok());
    return out;
  };
  EXPECT_EQ(names({}), (std::set<std::string>{"base", "b", "v"}));
  EXPECT_EQ(names({"parent==base"}), (std::set<std::string>{"b", "v"}));
  EXPECT_EQ(names({"kind==view"}), (std::set<std::string>{"v"}));
  EXPECT_EQ(names({"labels.\"containerd.io/snapshot.ref\"==sha256:1"}),
            (std::set<std::string>{"base"}));
  EXPECT_EQ(names({"labels.app"}), (std::set<std::string>{"b"}));
  EXPECT_EQ(names({"parent==base,kind==active"}), (std::set<std::string>{"b"}));
  EXPECT_EQ(names({"name==v", "name==base"}), (std::set<std::string>{"base", "v"}));  // OR
  EXPECT_EQ(names({"name~=^ba"}), (std::set<std::string>{"base"}));
  EXPECT_EQ(names({"name!=base,parent!=base"}), (std::set<std::string>{}));
  EXPECT_EQ(s_->Walk({"name=="}, [](const SnapshotInfo&) { return absl::OkStatus(); }).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ConformanceTest, RemoveRespectsChildren) {
  ASSERT_THAT(s_->Prepare("a", "", {}), IsOk());
  ASSERT_THAT(s_->Commit("l1", "a", {}), IsOk());
  ASSERT_THAT(s_->Prepare("b", "l1", {}), IsOk());
  ASSERT_THAT(s_->Commit("l2", "b", {}), IsOk());
  ASSERT_THAT(s_->Prepare("c", "l2", {}), IsOk());
  EXPECT_EQ(s_->Remove("l1").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s_->Remove("l2").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_THAT(s_->Remove("c"), IsOk());
  ASSERT_THAT(s_->Remove("l2"), IsOk());  // the intermediate, once childless
  ASSERT_THAT(s_->Remove("l1"), IsOk());
  EXPECT_EQ(s_->Remove("l1").code(), absl::StatusCode::kNotFound);
  std::string snaps = testing::RunCommand("ls " + env_->root + "/root/snapshots | wc -l").value();
  EXPECT_EQ(snaps, "0\n");
}

TEST_P(ConformanceTest, ViewsOfOneAndSeveralParents) {
  ASSERT_THAT(s_->Prepare("a", "", {}), IsOk());
  {
    Mounted m(*s_->Mounts("a"), Target("a"));
    ASSERT_THAT(m.status(), IsOk());
    Write(m / "one", "1");
  }
  ASSERT_THAT(s_->Commit("l1", "a", {}), IsOk());
  auto single = s_->View("v1", "l1", {});
  ASSERT_THAT(single, IsOk());
  EXPECT_EQ((*single)[0].type, "bind");
  ASSERT_THAT(s_->Prepare("b", "l1", {}), IsOk());
  {
    Mounted m(*s_->Mounts("b"), Target("b"));
    ASSERT_THAT(m.status(), IsOk());
    Write(m / "two", "2");
  }
  ASSERT_THAT(s_->Commit("l2", "b", {}), IsOk());
  auto multi = s_->View("v2", "l2", {});
  ASSERT_THAT(multi, IsOk());
  EXPECT_EQ((*multi)[0].type, "overlay");
  Mounted m(*multi, Target("v2"));
  ASSERT_THAT(m.status(), IsOk());
  EXPECT_EQ(Read(m / "one"), "1");
  EXPECT_EQ(Read(m / "two"), "2");
  auto empty = s_->View("v0", "", {});
  ASSERT_THAT(empty, IsOk());
  EXPECT_EQ((*empty)[0].type, "bind");
}

TEST_P(ConformanceTest, Usage) {
  ASSERT_THAT(s_->Prepare("a", "", {}), IsOk());
  auto before = s_->Usage("a");
  ASSERT_THAT(before, IsOk());
  {
    Mounted m(*s_->Mounts("a"), Target("a"));
    ASSERT_THAT(m.status(), IsOk());
    Write(m / "big", std::string(1 << 20, 'x'));
    Write(m / "small", "s");
  }
  auto after = s_->Usage("a");
  ASSERT_THAT(after, IsOk());
  EXPECT_GE(after->size - before->size, 1 << 20);
  EXPECT_EQ(after->inodes - before->inodes, 2);
  ASSERT_THAT(s_->Commit("c", "a", {}), IsOk());
  auto committed = s_->Usage("c");
  ASSERT_THAT(committed, IsOk());
  EXPECT_EQ(committed->size, after->size);
  EXPECT_EQ(committed->inodes, after->inodes);
  EXPECT_EQ(s_->Usage("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(ConformanceTest, OneHundredTwentyEightStackedLayers) {
  std::string parent;
  for (int i = 0; i < 128; ++i) {
    std::string key = absl::StrCat("active-", i), name = absl::StrCat("layer-", i);
    auto mounts = s_->Prepare(key, parent, {});
    ASSERT_THAT(mounts, IsOk()) << i << ": " << mounts.status();
    {
      Mounted m(*mounts, Target("stack"));
      ASSERT_THAT(m.status(), IsOk()) << i << ": " << m.status();
      Write(m / absl::StrCat("file-", i), absl::StrCat(i));
    }
    ASSERT_THAT(s_->Commit(name, key, {}), IsOk());
    parent = name;
  }
  auto view = s_->View("top", parent, {});
  ASSERT_THAT(view, IsOk());
  Mounted m(*view, Target("top"));
  ASSERT_THAT(m.status(), IsOk());
  for (int i = 0; i < 128; ++i) EXPECT_EQ(Read(m / absl::StrCat("file-", i)), absl::StrCat(i));
}

TEST_P(ConformanceTest, CleanupRemovesOnlyStrayDirectories) {
  ASSERT_THAT(s_->Prepare("a", "", {}), IsOk());
  ASSERT_THAT(s_->Commit("keep", "a", {}), IsOk());
  std::string snaps = env_->root + "/root/snapshots";
  ASSERT_EQ(mkdir((snaps + "/rm-77").c_str(), 0700), 0);
  ASSERT_EQ(mkdir((snaps + "/999").c_str(), 0700), 0);
  ASSERT_THAT(s_->Cleanup(), IsOk());
  EXPECT_FALSE(Exists(snaps + "/rm-77"));
  EXPECT_FALSE(Exists(snaps + "/999"));
  EXPECT_THAT(s_->Stat("keep"), IsOk());
  EXPECT_EQ(testing::RunCommand("ls " + snaps + " | wc -l").value(), "1\n");
}

INSTANTIATE_TEST_SUITE_P(Snapshotters, ConformanceTest,
                         ::testing::Values(Param{"core", CoreEnv}, Param{"grpc", GrpcEnv}),
                         [](const auto& info) { return std::string(info.param.name); });

// A process killed in the middle of operations leaves consistent metadata: every
// snapshot has its directory, and Cleanup leaves exactly those.
TEST(CrashSafetyTest, KilledMidOperationLeavesOldOrNewState) {
  std::string root = MakeTempDir("crash") + "/root";
  ASSERT_THAT(OverlaySnapshotter::Open(root), IsOk());
  pid_t child = fork();
  if (child == 0) {
    auto s = OverlaySnapshotter::Open(root).value();
    for (int i = 0;; ++i) {
      std::string k = absl::StrCat("k", i);
      (void)s->Prepare(k, "", {});
      (void)s->Commit(absl::StrCat("c", i), k, {});
      if (i % 3 == 0) (void)s->Remove(absl::StrCat("c", i));
    }
  }
  // Killed once the child is well into its loop (some snapshots made, others removed),
  // however fast this machine is: poll for that state instead of sleeping a fixed time.
  auto snapshots = [&] {
    std::error_code ec;
    size_t n = 0;
    for (auto it = std::filesystem::directory_iterator(root + "/snapshots", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return n;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (snapshots() < 12 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(2));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  auto s = OverlaySnapshotter::Open(root).value();
  std::vector<SnapshotInfo> all;
  ASSERT_TRUE(s->Walk({}, [&](const SnapshotInfo& i) {
                 all.push_back(i);
                 return absl::OkStatus();
               }).ok());
  EXPECT_GT(all.size(), 3u);
  ASSERT_THAT(s->Cleanup(), IsOk());
  int dirs = std::stoi(testing::RunCommand("ls " + root + "/snapshots | wc -l").value());
  EXPECT_EQ(static_cast<size_t>(dirs), all.size());
  for (const auto& i : all) {
    if (i.kind == SnapshotKind::kActive) {
      EXPECT_THAT(s->Mounts(i.name), IsOk()) << i.name;
    }
  }
}

}  // namespace
}  // namespace clip
