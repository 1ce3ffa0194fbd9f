// FuseServer's takeover on what a holder hands back: a faithful entry is taken over
// (the same live connection), anything else (truncated or foreign data, an fd that is
// not /dev/fuse) is refused with a log line and the layer mounted again, never a crash.
// Real FUSE mounts, as root.
#include "fs/fuse_server.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/file_blob_reader.h"
#include "common/metrics.h"
#include "common/mountinfo.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "fs/mount_stack.h"
#include "fs/testing/memory_fd_store.h"
#include "gtest/gtest.h"
#include "index/layer_indexer.h"
#include "index/span_inflater.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::MemoryFdStore;

class FuseServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (dir_ != nullptr) return;  // a derived suite: the fixtures are there already
    dir_ = new std::string(testing::MakeTempDir("fuse"));
    std::string script = absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                                      "/index/testdata/make_layers.sh");
    ASSERT_THAT(testing::RunCommand("CLIP_FIXTURES_SKIP_REAL=1 bash " + script + " " + *dir_ +
                                    " >/dev/null 2>&1"),
                IsOk());
    blob_ = FileBlobReader::Open(*dir_ + "/posix.tar.gz").value().release();
    auto index = std::make_shared<const index::v1::LayerIndex>(BuildLayerIndex(*blob_).value());
    fs_ = new std::shared_ptr<const LayerFs>(
        std::make_shared<LayerFs>(index, std::make_shared<SpanInflater>(index, *blob_)));
  }
  void SetUp() override {
    mnt_ = absl::StrCat(*dir_, "/mnt-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mkdir(mnt_.c_str(), 0755);
  }
  void TearDown() override { umount2(mnt_.c_str(), MNT_DETACH); }

  static std::string Read(const std::string& path) { return testing::ReadFileOrEmpty(path); }
  // `server` takes over what `store` holds for mnt_, a connection an earlier server
  // detached: it must count as taken over and detached.
  absl::StatusOr<FuseServer::MountId> TakeOverDetached(FuseServer& server, FdStore& store) {
    server.OfferHeld(*store.List());
    auto id = server.Mount(mnt_, *fs_);
    if (id.ok()) {
      EXPECT_TRUE(server.IsAdopted(*id));
      EXPECT_TRUE(server.Detached(*id));
    }
    return id;
  }
  // How many mounts are stacked at `path` (this namespace's mount table).
  static int MountsAt(const std::string& path) {
    int n = 0;
    for (const MountEntry& e : ParseMountinfo(ReadMountinfo())) n += e.mountpoint == path;
    return n;
  }
  // What DetachFrom binds in the mount's place: a directory with "marker" ("tree\n").
  std::string MakeReplacement() {
    const std::string replacement = mnt_ + "-replacement";
    EXPECT_EQ(mkdir(replacement.c_str(), 0755), 0);
    std::ofstream(replacement + "/marker") << "tree\n";
    return replacement;
  }

  // A first server mounts and hands the connection to `store`; it is detached (as a
  // daemon that was killed) and the entry is returned as a new server would list it.
  HeldFd MountAndDetach(MemoryFdStore& store) {
    FuseServer first(2, &store);
    auto id = first.Mount(mnt_, *fs_);
    EXPECT_THAT(id, IsOk());
    EXPECT_EQ(Read(mnt_ + "/opaque-dir/kept"), "kept\n");
    first.Detach();
    auto listed = store.List();
    EXPECT_THAT(listed, IsOk());
    EXPECT_EQ(listed->size(), 1u);
    return listed->empty() ? HeldFd{} : (*listed)[0];
  }

  static std::string* dir_;
  static FileBlobReader* blob_;
  static std::shared_ptr<const LayerFs>* fs_;
  std::string mnt_;
};
std::string* FuseServerTest::dir_;
FileBlobReader* FuseServerTest::blob_;
std::shared_ptr<const LayerFs>* FuseServerTest::fs_;

TEST_F(FuseServerTest, TakesOverAFaithfulEntry) {
  MemoryFdStore store;
  HeldFd held = MountAndDetach(store);
  FuseServer second(2, &store);
  second.OfferHeld({held});
  auto id = second.Mount(mnt_, *fs_);
  ASSERT_THAT(id, IsOk());
  EXPECT_TRUE(second.IsAdopted(*id));
  EXPECT_FALSE(second.Detached(*id));
  EXPECT_EQ(Read(mnt_ + "/opaque-dir/kept"), "kept\n");
  ASSERT_THAT(second.Unmount(*id), IsOk());
}

// Each damaged entry: refused, the layer mounted again and served.
TEST_F(FuseServerTest, MountsAgainWhenTheHeldEntryIsDamaged) {
  MemoryFdStore store;
  HeldFd good = MountAndDetach(store);
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  struct Case {
    const char* what;
    std::string data;
    int fd;
  };
  std::vector<Case> cases = {
      {"truncated INIT", good.data.substr(0, good.data.size() / 2), dup(good.fd)},
      {"prefix only", good.data.substr(0, good.data.find('\n') + 1), dup(good.fd)},
      {"unknown version", "clip-fuse-init-v9\n" + good.data.substr(good.data.find('\n') + 1),
       dup(good.fd)},
      {"empty", "", dup(good.fd)},
      {"not /dev/fuse", good.data, pipe_fds[0]},
  };
  close(pipe_fds[1]);
  for (Case& c : cases) {
    SCOPED_TRACE(c.what);
    umount2(mnt_.c_str(), MNT_DETACH);  // the previous case's mount (or the first's)
    FuseServer server(2, &store);
    server.OfferHeld({HeldFd{mnt_, c.data, c.fd}});
    auto id = server.Mount(mnt_, *fs_);
    ASSERT_THAT(id, IsOk());
    EXPECT_FALSE(server.IsAdopted(*id));
    EXPECT_EQ(Read(mnt_ + "/opaque-dir/kept"), "kept\n");
    ASSERT_THAT(server.Unmount(*id), IsOk());
  }
  close(good.fd);
}

double OpsOf(const std::string& op) {
  return DefaultMetrics()
      .GetCounter("clip_fuse_ops_total", "FUSE operations served", {{"op", op}})
      .Value();
}

// Without passthrough, opens are zero-message: the connection's first open reaches the
// server (answered ENOSYS), every later one is the kernel's alone, and none is released.
TEST_F(FuseServerTest, OpensWithoutPassthroughAreZeroMessage) {
  FuseServer server(2);
  auto id = server.Mount(mnt_, *fs_, /*passthrough=*/false);
  ASSERT_THAT(id, IsOk());
  const double opens = OpsOf("open"), releases = OpsOf("release");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Read(mnt_ + "/opaque-dir/kept"), "kept\n");
    EXPECT_FALSE(Read(mnt_ + "/etc/hello.txt").empty());
  }
  ASSERT_THAT(server.Unmount(*id), IsOk());
  EXPECT_EQ(OpsOf("open") - opens, 1);
  EXPECT_EQ(OpsOf("release") - releases, 0);
}

// DetachFrom: the mountpoint shows the replacement at once, a file held open keeps
// reading through the connection, and when it is closed (the kernel lets go) the
// session ends and the holder's entry goes; Unmount then takes the replacement away.
TEST_F(FuseServerTest, ADetachedMountIsServedUntilTheKernelLetsGo) {
  MemoryFdStore store;
  FuseServer server(2, &store);
  auto id = server.Mount(mnt_, *fs_);
  ASSERT_THAT(id, IsOk());
  const std::string replacement = MakeReplacement();
  int held = open((mnt_ + "/etc/hello.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_THAT(server.DetachFrom(*id, replacement), IsOk());
  ASSERT_THAT(server.DetachFrom(*id, replacement), IsOk());  // once is enough
  EXPECT_EQ(Read(mnt_ + "/marker"), "tree\n");
  EXPECT_FALSE(server.Ended(*id));
  char buf[64];
  ssize_t n = pread(held, buf, sizeof(buf), 0);
  EXPECT_GT(n, 0) << strerror(errno);
  EXPECT_EQ(store.size(), 1u);
  close(held);
  EXPECT_TRUE(server.WaitUnmounted(*id, absl::Seconds(30)));
  EXPECT_EQ(store.size(), 0u);
  ASSERT_THAT(server.Unmount(*id), IsOk());
  EXPECT_EQ(Read(mnt_ + "/marker"), "");
}

// While DetachFrom replaces the mount, every lookup at the mountpoint finds the layer or
// the replacement: the replacement goes beneath the FUSE mount before it leaves (an
// unmount then a bind left a moment with an empty directory, long enough for a
// container to start on it).
TEST_F(FuseServerTest, DetachFromNeverShowsAnEmptyMountpoint) {
  FuseServer server(2);
  auto id = server.Mount(mnt_, *fs_);
  ASSERT_THAT(id, IsOk());
  const std::string replacement = MakeReplacement();
  std::atomic<bool> done{false};
  std::atomic<int> lookups{0}, empty{0};
  std::thread probe([&] {
    struct stat st;
    while (!done) {
      if (stat((mnt_ + "/etc/hello.txt").c_str(), &st) != 0 &&
          stat((mnt_ + "/marker").c_str(), &st) != 0) {
        ++empty;
      }
      ++lookups;
    }
  });
  while (lookups < 100) std::this_thread::yield();
  absl::Status detached = server.DetachFrom(*id, replacement);
  const int during = lookups;
  while (lookups < during + 100) std::this_thread::yield();
  done = true;
  probe.join();
  ASSERT_THAT(detached, IsOk());
  EXPECT_EQ(empty, 0) << "of " << lookups << " lookups";
  EXPECT_EQ(Read(mnt_ + "/marker"), "tree\n");
  EXPECT_EQ(MountsAt(mnt_), 1);  // the replacement alone
  ASSERT_THAT(server.Unmount(*id), IsOk());
  EXPECT_EQ(MountsAt(mnt_), 0);
}

// A server killed with the replacement beneath the FUSE mount, not yet unmounted: the
// next one finishes the detach without binding a second replacement; or, if the
// snapshot goes first, Unmount takes both away. Nothing is left at the mountpoint.
TEST_F(FuseServerTest, ADetachKilledWithTheReplacementBeneathIsFinished) {
  const std::string replacement = MakeReplacement();
  for (bool detach : {true, false}) {
    SCOPED_TRACE(detach ? "detached by the next server" : "unmounted by the next server");
    MemoryFdStore store;
    {
      FuseServer first(2, &store);
      ASSERT_THAT(first.Mount(mnt_, *fs_), IsOk());
      ASSERT_THAT(BindBeneath(replacement, mnt_), IsOk());
      first.Detach();  // killed
    }
    FuseServer second(2, &store);
    second.OfferHeld(*store.List());
    auto id = second.Mount(mnt_, *fs_);
    ASSERT_THAT(id, IsOk());
    EXPECT_TRUE(second.IsAdopted(*id));
    EXPECT_FALSE(second.Detached(*id));
    EXPECT_EQ(Read(mnt_ + "/opaque-dir/kept"), "kept\n");  // the FUSE mount is on top
    if (detach) {
      ASSERT_THAT(second.DetachFrom(*id, replacement), IsOk());
      EXPECT_EQ(Read(mnt_ + "/marker"), "tree\n");
      EXPECT_EQ(MountsAt(mnt_), 1);
      EXPECT_TRUE(second.WaitUnmounted(*id, absl::Seconds(30)));  // nobody held it
      EXPECT_EQ(store.size(), 0u);
    }
    ASSERT_THAT(second.Unmount(*id), IsOk());
    EXPECT_EQ(MountsAt(mnt_), 0);
    EXPECT_EQ(store.size(), 0u);
  }
}

// A connection taken over after an earlier server detached it: when the kernel lets go
// (its last file closed), the holder lets go too, even if the new server has not been
// asked to DetachFrom yet (it had not, when a container stopped right after a restart,
// and the holder kept the dead connection until the image was removed).
TEST_F(FuseServerTest, ATakenOverDetachedMountLetsGoWithTheKernel) {
  MemoryFdStore store;
  const std::string replacement = MakeReplacement();
  int held;
  {
    FuseServer first(2, &store);
    auto id = first.Mount(mnt_, *fs_);
    ASSERT_THAT(id, IsOk());
    held = open((mnt_ + "/etc/hello.txt").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(held, 0);
    ASSERT_THAT(first.DetachFrom(*id, replacement), IsOk());
    first.Detach();  // killed
  }
  FuseServer second(2, &store);
  auto id = TakeOverDetached(second, store);
  ASSERT_THAT(id, IsOk());
  EXPECT_EQ(Read(mnt_ + "/marker"), "tree\n");
  char buf[64];
  EXPECT_GT(pread(held, buf, sizeof(buf), 0), 0) << strerror(errno);
  close(held);
  EXPECT_TRUE(second.WaitUnmounted(*id, absl::Seconds(30)));
  EXPECT_EQ(store.size(), 0u);
  ASSERT_THAT(second.DetachFrom(*id, replacement), IsOk());  // late: changes nothing
  EXPECT_EQ(Read(mnt_ + "/marker"), "tree\n");
  ASSERT_THAT(second.Unmount(*id), IsOk());
  EXPECT_EQ(Read(mnt_ + "/marker"), "");
}

// An earlier server detached the connection but died before binding the tree there:
// the server that takes it over binds it, even once the kernel has let go.
TEST_F(FuseServerTest, ADetachInterruptedBeforeTheBindIsFinishedByTheNextServer) {
  MemoryFdStore store;
  const std::string replacement = MakeReplacement();
  {
    FuseServer first(2, &store);
    ASSERT_THAT(first.Mount(mnt_, *fs_), IsOk());
    first.Detach();  // killed between the lazy unmount and the bind:
    ASSERT_EQ(umount2(mnt_.c_str(), MNT_DETACH), 0);
  }
  FuseServer second(2, &store);
  auto id = TakeOverDetached(second, store);
  ASSERT_THAT(id, IsOk());
  EXPECT_TRUE(second.WaitUnmounted(*id, absl::Seconds(30)));  // nobody held it
  ASSERT_THAT(second.DetachFrom(*id, replacement), IsOk());
  EXPECT_EQ(Read(mnt_ + "/marker"), "tree\n");
  EXPECT_EQ(store.size(), 0u);
  ASSERT_THAT(second.Unmount(*id), IsOk());
  EXPECT_EQ(Read(mnt_ + "/marker"), "");
}

// FUSE passthrough (fs/passthrough.h) on this kernel: once the layer has a tree, a file
// not open in cached mode opens onto the tree's file and its reads never reach the
// server; a file open before stays cached until its last close; the table survives a
// takeover, so the next server opens an inode already open in passthrough with the same
// backing id (a different one would be EIO for the caller).
class FusePassthroughTest : public FuseServerTest {
 protected:
  void SetUp() override {
    FuseServerTest::SetUp();
    tree_ = mnt_ + "-tree";
    ASSERT_THAT(testing::RunCommand(absl::StrCat("mkdir -p ", tree_, " && tar -xzf ", *dir_,
                                                 "/posix.tar.gz -C ", tree_)),
                IsOk());
    auto index = std::make_shared<const index::v1::LayerIndex>(BuildLayerIndex(*blob_).value());
    fs_ = std::make_shared<LayerFs>(index, std::make_shared<SpanInflater>(index, *blob_));
    expected = testing::ReadFileOrEmpty(tree_ + "/usr/bin/random700k");
    ASSERT_FALSE(expected.empty());
  }
  static double Reads() { return OpsOf("read"); }
  // Reads `file` through a new open: its bytes, or what failed.
  std::string ReadNew(const std::string& file) {
    int fd = open((mnt_ + "/" + file).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::StrCat("open: ", strerror(errno));
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    if (n < 0) out = absl::StrCat("read: ", strerror(errno));
    close(fd);
    return out;
  }

  // A first server (passthrough, layer with its tree) mounts, random700k is opened (in
  // passthrough), and the server is detached as if killed: the store keeps the
  // connection and its table. The open fd, or -1.
  int OpenInPassthroughAndDetach(MemoryFdStore& store) {
    if (!fs_->UseTree(tree_).ok()) return -1;
    FuseServer first(2, &store);
    if (!first.Mount(mnt_, fs_, /*passthrough=*/true).ok()) return -1;
    int fd = open((mnt_ + "/usr/bin/random700k").c_str(), O_RDONLY | O_CLOEXEC);
    first.Detach();
    return fd;
  }
  static std::string ReadAll(int fd, size_t size) {
    std::string out(size, '\0');
    ssize_t n = pread(fd, out.data(), out.size(), 0);
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }

  std::string tree_;
  std::shared_ptr<LayerFs> fs_;
  std::string expected;  // random700k's bytes
};

TEST_F(FusePassthroughTest, LocalFilesOpenOntoTheTreeAndCachedOpensStayCached) {
  MemoryFdStore store;
  FuseServer server(2, &store);
  auto id = server.Mount(mnt_, fs_, /*passthrough=*/true);
  ASSERT_THAT(id, IsOk());
  // Before the tree: cached opens, reads through the server.
  double reads = Reads();
  int held = open((mnt_ + "/etc/hello.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  char c;
  ASSERT_EQ(pread(held, &c, 1, 0), 1);
  EXPECT_GT(Reads(), reads);

  ASSERT_THAT(fs_->UseTree(tree_), IsOk());
  reads = Reads();
  EXPECT_EQ(ReadNew("usr/bin/random700k"), expected);
  EXPECT_EQ(ReadNew("usr/bin/random700k"), expected);
  EXPECT_EQ(Reads(), reads) << "a file of the tree was read through the server";
  // The file open in cached mode: a second open stays cached (the kernel would refuse a
  // passthrough open: EIO), and reads right.
  EXPECT_EQ(ReadNew("etc/hello.txt"), testing::ReadFileOrEmpty(tree_ + "/etc/hello.txt"));
  close(held);
  // Its last close came back as a RELEASE: the next open is in passthrough. The release
  // is asynchronous; the table shows it once served.
  ASSERT_EQ(system(("sync " + mnt_).c_str()), 0);
  ASSERT_EQ(system("echo 3 > /proc/sys/vm/drop_caches"), 0);
  bool passthrough = false;
  for (int i = 0; i < 200 && !passthrough; ++i) {
    reads = Reads();
    EXPECT_EQ(ReadNew("etc/hello.txt"), testing::ReadFileOrEmpty(tree_ + "/etc/hello.txt"));
    passthrough = Reads() == reads;
    if (!passthrough) {
      ASSERT_EQ(system("echo 3 > /proc/sys/vm/drop_caches"), 0);
      usleep(10000);
    }
  }
  EXPECT_TRUE(passthrough);
  ASSERT_THAT(server.Unmount(*id), IsOk());
}

TEST_F(FusePassthroughTest, ATakeoverKeepsPassthroughOpensValid) {
  MemoryFdStore store;
  const int held = OpenInPassthroughAndDetach(store);
  ASSERT_GE(held, 0);
  auto listed = store.List();
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 2u);  // the connection and its passthrough table
  FuseServer second(2, &store);
  second.OfferHeld(*std::move(listed));
  auto id = second.Mount(mnt_, fs_);
  ASSERT_THAT(id, IsOk());
  EXPECT_TRUE(second.IsAdopted(*id));
  const double reads = Reads();
  EXPECT_EQ(ReadNew("usr/bin/random700k"), expected);  // inode open in passthrough: same backing id
  EXPECT_EQ(ReadAll(held, expected.size()), expected);
  EXPECT_EQ(Reads(), reads);
  close(held);
  ASSERT_THAT(second.Unmount(*id), IsOk());
  auto left = store.List();
  ASSERT_THAT(left, IsOk());
  EXPECT_TRUE(left->empty()) << "the unmount left " << left->size() << " held entries";
}

TEST_F(FusePassthroughTest, ATakeoverWithoutTheTableOpensWithoutPassthrough) {
  MemoryFdStore store;
  const int held = OpenInPassthroughAndDetach(store);
  ASSERT_GE(held, 0);
  auto listed = store.List();
  ASSERT_THAT(listed, IsOk());
  std::vector<HeldFd> without_table;
  for (HeldFd& h : *listed) {
    if (h.name == mnt_) {
      without_table.push_back(h);
    } else {
      close(h.fd);
    }
  }
  ASSERT_EQ(without_table.size(), 1u);
  FuseServer second(2, &store);
  second.OfferHeld(std::move(without_table));
  auto id = second.Mount(mnt_, fs_);
  ASSERT_THAT(id, IsOk());
  EXPECT_TRUE(second.IsAdopted(*id));
  // Files not open in passthrough open (zero-message) and read right; the held file too.
  EXPECT_EQ(ReadNew("etc/hello.txt"), testing::ReadFileOrEmpty(tree_ + "/etc/hello.txt"));
  EXPECT_EQ(ReadAll(held, expected.size()), expected);
  // The kernel refuses a non-passthrough open of an inode open in passthrough: without
  // the table, its id is unknown (why the table is held beside the connection, and a
  // mount whose table the store did not take never opens in passthrough).
  EXPECT_EQ(ReadNew("usr/bin/random700k"), "open: Input/output error");
  close(held);
  EXPECT_EQ(ReadNew("usr/bin/random700k"), expected);
  ASSERT_THAT(second.Unmount(*id), IsOk());
}

}  // namespace
}  // namespace clip
