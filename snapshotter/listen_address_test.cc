// ClaimListeningAddress against each thing a previous daemon can leave at the address.
// Orphaned holders are forked children named clip-fd-holder (prctl PR_SET_NAME).
#include "snapshotter/listen_address.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "common/socket_owners.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

class ListenAddressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clipla-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/run/clip.sock";  // its directory does not exist yet
  }
  void TearDown() override {
    if (child_ > 0) {
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
    unlink(path_.c_str());
    rmdir((dir_ + "/run").c_str());
    rmdir(dir_.c_str());
  }

  sockaddr_un Addr() const {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    return addr;
  }
  int Listen() {
    mkdir((dir_ + "/run").c_str(), 0700);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = Addr();
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd, 4), 0);
    return fd;
  }
  int Connect() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = Addr();
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }
  // A child that keeps `fd` (and /dev/fuse when `fuse`) and waits to be killed; the
  // parent's copy of `fd` is closed.
  void HandTo(int fd, const char* comm, bool fuse) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    child_ = fork();
    if (child_ == 0) {
      prctl(PR_SET_NAME, comm);
      if (fuse) open("/dev/fuse", O_RDWR);
      (void)!write(ready[1], "r", 1);
      for (;;) pause();
    }
    close(fd);
    char c;
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
  }
  // The signal that ended the child (waits for it).
  int EndedBy() {
    int status = 0;
    if (waitpid(child_, &status, 0) != child_) return -1;
    child_ = 0;
    return WIFSIGNALED(status) ? WTERMSIG(status) : -1;
  }
  // Whether the child runs with no signal on its way (a signal sent before the claim
  // returned would be pending or have ended it already).
  bool Untouched() {
    std::ifstream in("/proc/" + std::to_string(child_) + "/status");
    std::string line;
    bool running = false, pending = false;
    while (std::getline(in, line)) {
      if (line.rfind("State:", 0) == 0) running = line.find('Z') == std::string::npos;
      if (line.rfind("SigPnd:", 0) == 0 || line.rfind("ShdPnd:", 0) == 0) {
        pending = pending || line.find_first_not_of("0", line.find_first_not_of(" \t", 7)) !=
                                 std::string::npos;
      }
    }
    return running && !pending;
  }

  std::string dir_, path_;
  pid_t child_ = 0;
};

TEST_F(ListenAddressTest, BindsANewSocketOwnerOnly) {
  auto claimed = ClaimListeningAddress(path_, 0);
  ASSERT_THAT(claimed, IsOk());
  EXPECT_FALSE(claimed->taken_back);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir_ + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  int c = Connect();
  EXPECT_GE(accept4(claimed->fd, nullptr, nullptr, SOCK_CLOEXEC), 0);
  close(c);
  close(claimed->fd);
}

TEST_F(ListenAddressTest, ReplacesAStaleSocketFile) {
  close(Listen());
  auto claimed = ClaimListeningAddress(path_, 0);
  ASSERT_THAT(claimed, IsOk());
  EXPECT_FALSE(claimed->taken_back);
  auto found = FindListeningSocket(path_);
  ASSERT_THAT(found, IsOk());
  close(claimed->fd);
}

TEST_F(ListenAddressTest, RefusesAFileThatIsNotASocket) {
  mkdir((dir_ + "/run").c_str(), 0700);
  close(open(path_.c_str(), O_CREAT | O_WRONLY, 0600));
  EXPECT_THAT(ClaimListeningAddress(path_, 0), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ListenAddressTest, RefusesAnAddressAnotherProcessServes) {
  HandTo(Listen(), "other-daemon", false);
  EXPECT_THAT(ClaimListeningAddress(path_, 0), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_TRUE(Untouched()) << "a process that is not ours must be left alone";
}

TEST_F(ListenAddressTest, TheCurrentHolderIsNeverAnOrphan) {
  HandTo(Listen(), "clip-fd-holder", false);
  EXPECT_THAT(ClaimListeningAddress(path_, child_), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_TRUE(Untouched());
}

// The crash: the previous daemon's holder keeps the listener but its own socket
// file went with a wiped root. The listener comes back with its backlog; the holder,
// which held nothing else, is ended.
TEST_F(ListenAddressTest, TakesTheListenerBackFromAnOrphanedHolderAndEndsIt) {
  HandTo(Listen(), "clip-fd-holder", false);
  int waiting = Connect();
  auto claimed = ClaimListeningAddress(path_, 0);
  ASSERT_THAT(claimed, IsOk());
  EXPECT_TRUE(claimed->taken_back);
  int accepted = accept4(claimed->fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0) << "the call waiting in the backlog must be served";
  EXPECT_EQ(write(waiting, "x", 1), 1);
  char c = 0;
  EXPECT_EQ(read(accepted, &c, 1), 1);
  EXPECT_EQ(EndedBy(), SIGTERM);
  close(accepted);
  close(waiting);
  close(claimed->fd);
}

TEST_F(ListenAddressTest, LeavesAnOrphanedHolderThatKeepsFuseConnections) {
  if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  HandTo(Listen(), "clip-fd-holder", true);
  auto claimed = ClaimListeningAddress(path_, 0);
  ASSERT_THAT(claimed, IsOk());
  EXPECT_TRUE(claimed->taken_back);
  EXPECT_TRUE(Untouched()) << "its FUSE connections keep running containers' layers";
  close(claimed->fd);
}

}  // namespace
}  // namespace clip
