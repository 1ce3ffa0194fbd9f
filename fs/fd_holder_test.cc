#include "fs/fd_holder.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "common/testing/status_matchers.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

// Unix socket paths are short (108 bytes): not under TEST_TMPDIR.
std::string TempSocket(const char* name) {
  return "/tmp/clip-fdh-" + std::to_string(getpid()) + "-" + name;
}

// Writes `what` into `fd` and reads it back from `other`: both ends of one pipe.
bool SamePipe(int fd, int other, const std::string& what) {
  if (write(fd, what.data(), what.size()) != static_cast<ssize_t>(what.size())) return false;
  std::string got(what.size(), '\0');
  return read(other, got.data(), got.size()) == static_cast<ssize_t>(got.size()) && got == what;
}

TEST(FdHolderTest, PutListDropQuit) {
  const std::string path = TempSocket("h1.sock");
  std::thread holder([&] { EXPECT_THAT(RunFdHolder(path), IsOk()); });
  absl::StatusOr<std::unique_ptr<FdHolderClient>> c;
  for (int i = 0; i < 200; ++i) {
    c = FdHolderClient::Connect(path);
    if (c.ok()) break;
    usleep(10000);
  }
  ASSERT_THAT(c, IsOk());
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_THAT((*c)->Put("/mnt/a", std::string("init\0bytes", 10), p[1]), IsOk());
  close(p[1]);  // only the holder keeps the write end now
  int q[2];
  ASSERT_EQ(pipe(q), 0);
  ASSERT_THAT((*c)->Put("grpc-listener", "", q[1]), IsOk());
  close(q[1]);
  {
    // A second client (the next daemon) sees both, with their data.
    auto next = FdHolderClient::Connect(path);
    ASSERT_THAT(next, IsOk());
    auto held = (*next)->List();
    ASSERT_THAT(held, IsOk());
    ASSERT_EQ(held->size(), 2u);
    EXPECT_EQ((*held)[0].name, "/mnt/a");
    EXPECT_EQ((*held)[0].data, std::string("init\0bytes", 10));
    EXPECT_TRUE(SamePipe((*held)[0].fd, p[0], "through the holder"));
    EXPECT_EQ((*held)[1].name, "grpc-listener");
    for (auto& h : *held) close(h.fd);
  }
  // Put replaces; drop closes: the read end then sees EOF.
  ASSERT_THAT((*c)->Drop("/mnt/a"), IsOk());
  char b;
  EXPECT_EQ(read(p[0], &b, 1), 0);
  EXPECT_THAT((*c)->Drop("/never/held"), IsOk());
  auto left = (*c)->List();
  ASSERT_THAT(left, IsOk());
  ASSERT_EQ(left->size(), 1u);
  close((*left)[0].fd);
  EXPECT_THAT((*c)->Put("x", "", -1), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT((*c)->Quit(), IsOk());
  holder.join();
  EXPECT_EQ(read(q[0], &b, 1), 0);  // quit closed everything
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  close(p[0]);
  close(q[0]);
}

// Garbage on the socket is refused with an error answer, never a crash; a second holder
// on a live socket refuses to start.
TEST(FdHolderTest, BadMessagesAndSecondHolder) {
  const std::string path = TempSocket("h2.sock");
  std::thread holder([&] { EXPECT_THAT(RunFdHolder(path), IsOk()); });
  absl::StatusOr<std::unique_ptr<FdHolderClient>> c;
  for (int i = 0; i < 200 && !c.ok(); ++i, usleep(10000)) c = FdHolderClient::Connect(path);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(RunFdHolder(path).code(), absl::StatusCode::kAlreadyExists);
  int raw = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(connect(raw, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(send(raw, "XXXXgarbage", 11, 0), 11);
  char answer[256];
  ssize_t n = recv(raw, answer, sizeof(answer), 0);
  ASSERT_GT(n, 5);
  EXPECT_EQ(answer[4], 'E');
  close(raw);
  ASSERT_THAT((*c)->Quit(), IsOk());
  holder.join();
}

// ConnectOrStart starts the real binary in its own session: it outlives its starter.
TEST(FdHolderTest, StartsTheHolderBinary) {
  const std::string path = TempSocket("h3.sock");
  const std::string binary =
      std::string(getenv("TEST_SRCDIR")) + "/" + getenv("TEST_WORKSPACE") + "/fs/clip-fd-holder";
  auto c = FdHolderClient::ConnectOrStart(path, binary);
  ASSERT_THAT(c, IsOk());
  // The holder is the socket's peer; it writes its pid file just after it listens.
  const pid_t pid = (*c)->pid();
  ASSERT_TRUE(testing::ProcessRuns(pid, "clip-fd-holder")) << pid;
  // However the test ends, the holder it started goes (by this PID, while it is still
  // that holder).
  absl::Cleanup stop_holder = [&] {
    if (testing::ProcessRuns(pid, "clip-fd-holder")) kill(pid, SIGKILL);
  };
  pid_t written = 0;
  for (int i = 0; i < 200 && written != pid; ++i) {
    std::ifstream(path + ".pid") >> written;
    if (written != pid) usleep(10000);
  }
  EXPECT_EQ(written, pid) << path << ".pid";
  EXPECT_NE(getsid(pid), getsid(0));
  auto again = FdHolderClient::ConnectOrStart(path, binary);  // connects, starts nothing
  ASSERT_THAT(again, IsOk());
  ASSERT_THAT((*c)->Quit(), IsOk());
  for (int i = 0; i < 200 && testing::ProcessRuns(pid, "clip-fd-holder"); ++i) usleep(10000);
  EXPECT_FALSE(testing::ProcessRuns(pid, "clip-fd-holder")) << "the holder outlived quit";
}

// A peer at the holder's socket that never answers is kUnavailable after the answer
// timeout, never a hang; its pid is the listener's.
TEST(FdHolderTest, SilentHolderTimesOut) {
  const std::string path = TempSocket("h4.sock");
  int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  unlink(path.c_str());
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 4), 0);  // never accepts: requests wait in the backlog
  auto c = FdHolderClient::Connect(path, absl::Milliseconds(200));
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ((*c)->pid(), getpid());
  EXPECT_THAT((*c)->List(), StatusIs(absl::StatusCode::kUnavailable));
  close(listener);
  unlink(path.c_str());
}

}  // namespace
}  // namespace clip
