// The Daemon in-process: serves its socket, hands over to a second Daemon (which takes
// the listening socket back from the fd holder and keeps the metadata), and a full stop
// ends the holder. The lazy-layer takeover itself is covered with real mounts by
// remote_test, //fs:takeover_test and //test:takeover_test.
#include "snapshotter/daemon.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "snapshotter/grpc_snapshotter.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
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

  auto first = Daemon::Start(config);
  ASSERT_THAT(first, IsOk());
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
  testing::RunCommand("rm -rf " + dir).IgnoreError();
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

}  // namespace
}  // namespace clip
