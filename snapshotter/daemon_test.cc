// The Daemon in-process: serves its socket, hands over to a second Daemon (which takes
// the listening socket back from the fd holder and keeps the metadata), and a full stop
// ends the holder. The lazy-layer takeover itself is covered with real mounts by
// remote_test, //fs:takeover_test and //test:takeover_test.
#include "snapshotter/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "snapshotter/grpc_snapshotter.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;
using ::testing::HasSubstr;

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool HolderRunning(pid_t pid) { return testing::ProcessRuns(pid, "clip-fd-holder"); }

// True once the holder `pid` has ended, polled for up to 10 s.
bool HolderGone(pid_t pid) {
  for (int i = 0; i < 1000 && HolderRunning(pid); ++i) absl::SleepFor(absl::Milliseconds(10));
  return !HolderRunning(pid);
}

TEST(DaemonTest, ServesHandsOverAndStops) {
  // Unix socket paths are short: a private directory under /tmp.
  char tmpl[] = "/tmp/clipdXXXXXX";
  const std::string dir = mkdtemp(tmpl);
  DaemonConfig config;
  config.root = dir + "/root";
  config.address = dir + "/clip.sock";
  config.containerd_root = "";
  config.fd_holder_socket = dir + "/holder.sock";
  config.fd_holder_binary =
      std::string(getenv("TEST_SRCDIR")) + "/" + getenv("TEST_WORKSPACE") + "/fs/clip-fd-holder";

  // However the test ends (a failed ASSERT included), the holder its daemons started
  // (found by its pid file, never by name) and the private directory go.
  pid_t holder = 0;
  absl::Cleanup cleanup = [&] {
    if (holder > 0 && !HolderGone(holder)) kill(holder, SIGKILL);
    testing::RunCommand("rm -rf " + dir).IgnoreError();
  };
  auto first = Daemon::Start(config);
  ASSERT_THAT(first, IsOk());
  // (The holder writes its pid file just after it listens: a moment after Start could.)
  for (int i = 0; i < 1000 && !HolderRunning(holder); ++i) {
    std::ifstream(config.fd_holder_socket + ".pid") >> holder;
    if (!HolderRunning(holder)) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(HolderRunning(holder))
      << "no clip-fd-holder from " << config.fd_holder_socket << ".pid";
  EXPECT_TRUE((*first)->has_fd_store());
  EXPECT_FALSE((*first)->listener_taken_over());
  {
    GrpcSnapshotter client("unix:" + config.address);
    auto active = client.Prepare("active-1", "", {});
    ASSERT_THAT(active, IsOk());
  }
  (*first)->Handover();
  first->reset();
  EXPECT_TRUE(Exists(config.address)) << "the socket must stay for the next daemon";

  // A call made while no daemon runs waits in the held socket's backlog.
  int waiting = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, config.address.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(connect(waiting, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(waiting);

  auto second = Daemon::Start(config);
  ASSERT_THAT(second, IsOk());
  EXPECT_TRUE((*second)->listener_taken_over());
  {
    GrpcSnapshotter client("unix:" + config.address);
    auto info = client.Stat("active-1");
    ASSERT_THAT(info, IsOk());
    EXPECT_EQ(info->kind, SnapshotKind::kActive);
    ASSERT_THAT(client.Remove("active-1"), IsOk());
  }
  (*second)->StopAndUnmount();
  second->reset();
  EXPECT_FALSE(Exists(config.address));
  EXPECT_FALSE(Exists(config.fd_holder_socket)) << "the holder outlived a full stop";
  EXPECT_TRUE(HolderGone(holder)) << "clip-fd-holder " << holder << " outlived a full stop";
}

// Two daemons never serve one root at once: the second waits for the first's lock.
TEST(DaemonTest, SecondDaemonOfARootWaits) {
  char tmpl[] = "/tmp/clipdXXXXXX";
  const std::string dir = mkdtemp(tmpl);
  DaemonConfig config;
  config.root = dir + "/root";
  config.address = dir + "/clip.sock";
  config.containerd_root = "";
  config.takeover = false;
  auto first = Daemon::Start(config);
  ASSERT_THAT(first, IsOk());
  std::atomic<bool> started{false};
  std::thread second([&] {
    DaemonConfig other = config;
    auto d = Daemon::Start(other);
    started = true;
    EXPECT_THAT(d, IsOk());
    if (d.ok()) (*d)->StopAndUnmount();
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(started.load());
  (*first)->StopAndUnmount();
  first->reset();
  second.join();
  EXPECT_TRUE(started.load());
  testing::RunCommand("rm -rf " + dir).IgnoreError();
}

// A private directory with the daemon's paths in it; everything the test mounted or
// started under it is undone at the end (even when the test fails).
class BadStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clipbXXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.root = dir_ + "/root";
    config_.address = dir_ + "/clip.sock";
    config_.containerd_root = "";
    config_.fd_holder_binary =
        std::string(getenv("TEST_SRCDIR")) + "/" + getenv("TEST_WORKSPACE") + "/fs/clip-fd-holder";
  }
  void TearDown() override {
    for (pid_t pid : holders_) {  // ours only: read from pid files, checked before a kill
      if (HolderRunning(pid)) kill(pid, SIGKILL);
    }
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
      testing::RunCommand("umount -l " + *it).IgnoreError();
    }
    testing::RunCommand("rm -rf " + dir_).IgnoreError();
  }
  // The pid of the holder serving `socket` (from its pid file; where a full filesystem
  // left that empty, from the socket's peer credentials), remembered for TearDown.
  pid_t HolderPid(const std::string& socket) {
    pid_t pid = 0;
    std::ifstream(socket + ".pid") >> pid;
    if (pid <= 0) {
      int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
      ucred peer{};
      socklen_t len = sizeof(peer);
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0) {
        pid = peer.pid;
      }
      close(fd);
    }
    if (pid > 0) holders_.push_back(pid);
    return pid;
  }
  void MountTmpfs(const std::string& where, const std::string& options) {
    mkdir(where.c_str(), 0700);
    ASSERT_THAT(testing::RunCommand("mount -t tmpfs -o " + options + " tmpfs " + where), IsOk());
    mounts_.push_back(where);
  }
  int ConnectTo(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }
  void ExpectServes() {
    GrpcSnapshotter client("unix:" + config_.address);
    auto active = client.Prepare("active-1", "", {});
    EXPECT_THAT(active, IsOk());
  }

  std::string dir_;
  DaemonConfig config_;
  std::vector<pid_t> holders_;
  std::vector<std::string> mounts_;
};

// The crash: SIGTERM hands over, the root is wiped with the holder's socket in
// it, and a new daemon starts. It takes the listener back from the unreachable holder
// (a call waiting in the backlog is served), ends that holder and serves.
TEST_F(BadStateTest, WipedRootAfterHandover) {
  auto first = Daemon::Start(config_);
  ASSERT_THAT(first, IsOk());
  const pid_t old_holder = HolderPid(config_.root + "/fd-holder.sock");
  ASSERT_GT(old_holder, 0);
  (*first)->Handover();
  first->reset();
  ASSERT_THAT(testing::RunCommand("rm -rf " + config_.root), IsOk());
  const int waiting = ConnectTo(config_.address);  // queued while no daemon runs

  auto second = Daemon::Start(config_);
  ASSERT_THAT(second, IsOk());
  HolderPid(config_.root + "/fd-holder.sock");
  EXPECT_TRUE((*second)->listener_taken_over());
  EXPECT_TRUE((*second)->has_fd_store());
  EXPECT_TRUE(HolderGone(old_holder)) << "the unreachable holder must be ended";
  // gRPC's server speaks first on a connection it accepted (its SETTINGS frame).
  pollfd p{waiting, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 10000), 1) << "the call waiting in the backlog was not served";
  close(waiting);
  ExpectServes();
  (*second)->StopAndUnmount();
}

// The holder's socket file is there, nobody listens on it: a new holder replaces it.
TEST_F(BadStateTest, HolderSocketWithoutAProcess) {
  mkdir(config_.root.c_str(), 0700);
  const std::string socket_path = config_.root + "/fd-holder.sock";
  int dead = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(dead, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(dead);
  std::ofstream(socket_path + ".pid") << "999999999\n";
  auto d = Daemon::Start(config_);
  ASSERT_THAT(d, IsOk());
  EXPECT_GT(HolderPid(socket_path), 0);
  EXPECT_TRUE((*d)->has_fd_store());
  ExpectServes();
  (*d)->StopAndUnmount();
}

// Something at the holder's socket answers garbage: it is ignored (left running, it is
// not known to be ours) and a new holder takes the socket file.
TEST_F(BadStateTest, HolderThatAnswersGarbage) {
  mkdir(config_.root.c_str(), 0700);
  const std::string socket_path = config_.root + "/fd-holder.sock";
  int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  std::thread garbage([listener] {
    int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    char buf[256];
    while (c >= 0 && recv(c, buf, sizeof(buf), 0) > 0) {
      (void)!send(c, "CFH1\x7fgarbage", 12, MSG_NOSIGNAL);
    }
    if (c >= 0) close(c);
  });
  auto d = Daemon::Start(config_);
  ASSERT_THAT(d, IsOk());
  const pid_t holder = HolderPid(socket_path);
  EXPECT_GT(holder, 0);
  EXPECT_NE(holder, getpid());
  EXPECT_TRUE((*d)->has_fd_store());
  ExpectServes();
  (*d)->StopAndUnmount();
  shutdown(listener, SHUT_RDWR);
  close(listener);
  garbage.join();
}

// A lock file left by a dead daemon (flock ends with its process) and junk in it.
TEST_F(BadStateTest, LockFileOfADeadDaemon) {
  mkdir(config_.root.c_str(), 0700);
  const std::string lock = config_.root + "/daemon.lock";
  std::ofstream(lock) << "junk from a daemon that died\n";
  pid_t child = fork();
  if (child == 0) {
    int fd = open(lock.c_str(), O_RDWR);
    flock(fd, LOCK_EX);
    _exit(0);  // dies holding it
  }
  waitpid(child, nullptr, 0);
  auto d = Daemon::Start(config_);
  ASSERT_THAT(d, IsOk());
  HolderPid(config_.root + "/fd-holder.sock");
  ExpectServes();
  (*d)->StopAndUnmount();
}

TEST_F(BadStateTest, RootOnAReadOnlyFilesystem) {
  MountTmpfs(dir_ + "/ro", "ro,size=1m");
  config_.root = dir_ + "/ro/root";  // cannot be created
  auto d = Daemon::Start(config_);
  EXPECT_THAT(d, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("Read-only file system")));
  // A root that exists on a filesystem made read-only later.
  MountTmpfs(dir_ + "/ro2", "size=1m");
  config_.root = dir_ + "/ro2/root";
  mkdir(config_.root.c_str(), 0700);
  ASSERT_THAT(testing::RunCommand("mount -o remount,ro " + dir_ + "/ro2"), IsOk());
  d = Daemon::Start(config_);
  EXPECT_THAT(d, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("Read-only file system")));
}

TEST_F(BadStateTest, RootOnAFullFilesystem) {
  MountTmpfs(dir_ + "/full", "size=256k");
  config_.root = dir_ + "/full/root";
  mkdir(config_.root.c_str(), 0700);
  (void)testing::RunCommand("dd if=/dev/zero of=" + dir_ + "/full/fill bs=4k 2>/dev/null");
  auto d = Daemon::Start(config_);
  HolderPid(config_.root + "/fd-holder.sock");
  EXPECT_THAT(d, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr(config_.root)))
      << "a full root cannot hold the metadata";
}

TEST_F(BadStateTest, RootThatIsNotADirectory) {
  std::ofstream(config_.root) << "a file\n";
  EXPECT_THAT(Daemon::Start(config_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a directory")));
}

TEST_F(BadStateTest, CorruptMetadataDatabase) {
  mkdir(config_.root.c_str(), 0700);
  std::ofstream(config_.root + "/metadata.db") << std::string(8192, 'x');
  auto d = Daemon::Start(config_);
  HolderPid(config_.root + "/fd-holder.sock");
  EXPECT_THAT(d, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("metadata.db is damaged")));
  std::ifstream kept(config_.root + "/metadata.db");
  std::string bytes((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, std::string(8192, 'x')) << "a damaged database must be left as it was";
}

}  // namespace
}  // namespace clip
