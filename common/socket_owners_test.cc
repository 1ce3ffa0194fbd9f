#include "common/socket_owners.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

class SocketOwnersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clipsoXXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/s.sock";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  int Listen() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd, 4), 0);
    return fd;
  }
  int Connect() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }
  static uint64_t Inode(int fd) {
    struct stat st;
    fstat(fd, &st);
    return st.st_ino;
  }

  std::string dir_, path_;
};

TEST_F(SocketOwnersTest, FindsThisProcessAsHolder) {
  int fd = Listen();
  auto found = FindListeningSocket(path_);
  ASSERT_THAT(found, IsOk());
  EXPECT_EQ(found->inode, Inode(fd));
  ASSERT_EQ(found->holders.size(), 1u);
  EXPECT_EQ(found->holders[0].pid, getpid());
  EXPECT_EQ(found->holders[0].fd, fd);
  close(fd);
}

TEST_F(SocketOwnersTest, StaleMissingAndNonSocketFilesHaveNoListener) {
  EXPECT_THAT(FindListeningSocket(path_), StatusIs(absl::StatusCode::kNotFound));
  close(Listen());  // the file stays, nothing listens
  EXPECT_THAT(FindListeningSocket(path_), StatusIs(absl::StatusCode::kNotFound));
  unlink(path_.c_str());
  close(open(path_.c_str(), O_CREAT | O_WRONLY, 0600));
  EXPECT_THAT(FindListeningSocket(path_), StatusIs(absl::StatusCode::kNotFound));
}

// A socket unlinked and bound again under the same name: only the one the file leads
// to counts (sock_diag matches the file's inode, not the name).
TEST_F(SocketOwnersTest, TheFileDecidesNotTheName) {
  int old_fd = Listen();
  unlink(path_.c_str());
  int new_fd = Listen();
  auto found = FindListeningSocket(path_);
  ASSERT_THAT(found, IsOk());
  EXPECT_EQ(found->inode, Inode(new_fd));
  EXPECT_NE(found->inode, Inode(old_fd));
  close(old_fd);
  close(new_fd);
}

// Another process holds the listener: it is found, and its fd taken over serves the
// connection waiting in the backlog.
TEST_F(SocketOwnersTest, TakesAnotherProcesssListener) {
  int fd = Listen();
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    close(go[1]);
    char c;
    (void)!read(go[0], &c, 1);  // holds fd until the parent is done
    _exit(0);
  }
  const int child_fd = fd;
  close(fd);
  auto found = FindListeningSocket(path_);
  ASSERT_THAT(found, IsOk());
  ASSERT_EQ(found->holders.size(), 1u);
  EXPECT_EQ(found->holders[0].pid, child);
  EXPECT_EQ(found->holders[0].fd, child_fd);
  EXPECT_EQ(ProcessArgs(child), ProcessArgs(getpid()));
  EXPECT_FALSE(HoldsFuseConnection(child));

  int waiting = Connect();  // queued in the backlog while nobody accepts
  auto taken = TakeFd(child, child_fd);
  ASSERT_THAT(taken, IsOk());
  EXPECT_NE(fcntl(*taken, F_GETFD) & FD_CLOEXEC, 0);
  int accepted = accept4(*taken, nullptr, nullptr, SOCK_CLOEXEC);
  EXPECT_GE(accepted, 0);
  EXPECT_EQ(write(waiting, "x", 1), 1);
  char c = 0;
  EXPECT_EQ(read(accepted, &c, 1), 1);
  EXPECT_EQ(c, 'x');
  close(accepted);
  close(waiting);
  close(*taken);
  close(go[1]);
  waitpid(child, nullptr, 0);
  close(go[0]);
  EXPECT_THAT(TakeFd(child, child_fd), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SocketOwnersTest, SeesFuseConnections) {
  int fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fuse < 0) GTEST_SKIP() << "no /dev/fuse";
  EXPECT_TRUE(HoldsFuseConnection(getpid()));
  close(fuse);
  EXPECT_FALSE(HoldsFuseConnection(getpid()));
}

TEST(ProcessArgsTest, GoneProcessHasNone) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(ProcessArgs(child).empty());
}

}  // namespace
}  // namespace clip
