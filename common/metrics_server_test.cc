#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace clip {
namespace {

using ::clip::testing::IsOk;
using ::clip::testing::StatusIs;

// A connected client socket, closed on destruction; receives time out after 10 s so a
// server bug fails the test instead of hanging it.
class Client {
 public:
  static Client Tcp(int port, int family = AF_INET) {
    Client c(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage storage{};
    socklen_t length;
    if (family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&storage);
      in->sin_family = AF_INET;
      in->sin_port = htons(static_cast<uint16_t>(port));
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      length = sizeof(*in);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(static_cast<uint16_t>(port));
      in6->sin6_addr = in6addr_loopback;
      length = sizeof(*in6);
    }
    c.Connect(reinterpret_cast<sockaddr*>(&storage), length);
    return c;
  }

  static Client Unix(const std::string& path) {
    Client c(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::strncpy(un.sun_path, path.c_str(), sizeof(un.sun_path) - 1);
    c.Connect(reinterpret_cast<sockaddr*>(&un), sizeof(un));
    return c;
  }

  Client(Client&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), connected_(other.connected_) {}
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }

  bool connected() const { return connected_; }

  bool Send(const std::string& data) {
    return send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }

  // Everything until the server closes.
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    while (true) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }

  std::string Exchange(const std::string& request) {
    EXPECT_TRUE(Send(request));
    return ReadAll();
  }

 private:
  explicit Client(int fd) : fd_(fd) {
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  void Connect(const sockaddr* addr, socklen_t length) {
    connected_ = connect(fd_, addr, length) == 0;
    EXPECT_TRUE(connected_) << std::strerror(errno);
  }

  int fd_;
  bool connected_ = false;
};

struct Reply {
  int code = 0;
  std::string head;
  std::string body;
};

Reply ParseReply(const std::string& raw) {
  Reply r;
  size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || raw.size() < 12) return r;
  r.head = raw.substr(0, end + 2);
  r.body = raw.substr(end + 4);
  r.code = std::atoi(raw.substr(9, 3).c_str());
  return r;
}

Reply Get(int port, const std::string& path) {
  return ParseReply(
      Client::Tcp(port).Exchange(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n")));
}

class MetricsServerTest : public ::testing::Test {
 protected:
  MetricsServerTest() {
    registry_.GetCounter("clip_test_requests_total", "Requests.", {{"kind", "a\"b"}}).Increment(7);
    registry_.GetGauge("clip_test_open", "Open.").Set(3);
  }

  std::unique_ptr<MetricsServer> StartTcp(MetricsServer::Options options = {}) {
    auto server = MetricsServer::Start("127.0.0.1:0", &registry_, options);
    EXPECT_THAT(server, IsOk());
    return server.ok() ? *std::move(server) : nullptr;
  }

  MetricsRegistry registry_;
};

TEST_F(MetricsServerTest, ServesMetrics) {
  auto server = StartTcp();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  EXPECT_EQ(server->address(), absl::StrCat("127.0.0.1:", server->port()));

  Reply reply = Get(server->port(), "/metrics");
  EXPECT_EQ(reply.code, 200);
  EXPECT_TRUE(absl::StrContains(reply.head, "Content-Type: text/plain; version=0.0.4"))
      << reply.head;
  EXPECT_TRUE(absl::StrContains(reply.head, "Connection: close\r\n"));
  EXPECT_TRUE(absl::StrContains(reply.head, absl::StrCat("Content-Length: ", reply.body.size())));
  EXPECT_EQ(reply.body, registry_.Render());
  EXPECT_TRUE(absl::StrContains(reply.body, "clip_test_requests_total{kind=\"a\\\"b\"} 7\n"));

  // Values are rendered per request.
  registry_.GetGauge("clip_test_open", "Open.").Set(4);
  EXPECT_TRUE(absl::StrContains(Get(server->port(), "/metrics?x=1").body, "clip_test_open 4\n"));
}

TEST_F(MetricsServerTest, HeadHasNoBody) {
  auto server = StartTcp();
  ASSERT_NE(server, nullptr);
  Reply reply =
      ParseReply(Client::Tcp(server->port()).Exchange("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(reply.code, 200);
  EXPECT_EQ(reply.body, "");
  EXPECT_TRUE(
      absl::StrContains(reply.head, absl::StrCat("Content-Length: ", registry_.Render().size())));
}

TEST_F(MetricsServerTest, RequestInPieces) {
  auto server = StartTcp();
  ASSERT_NE(server, nullptr);
  Client client = Client::Tcp(server->port());
  ASSERT_TRUE(client.Send("GET /met"));
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(client.Send("rics HTTP/1.0\n"));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(ParseReply(client.Exchange("\n")).code, 200);
}

TEST_F(MetricsServerTest, UnknownPathIs404) {
  auto server = StartTcp();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Get(server->port(), "/").code, 404);
  EXPECT_EQ(Get(server->port(), "/metricsx").code, 404);
}

TEST_F(MetricsServerTest, OtherMethodIs405) {
  auto server = StartTcp();
  ASSERT_NE(server, nullptr);
  Reply reply = ParseReply(
      Client::Tcp(server->port()).Exchange("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(reply.code, 405);
  EXPECT_TRUE(absl::StrContains(reply.head, "Allow: GET, HEAD\r\n"));
}

TEST_F(MetricsServerTest, MalformedRequestIs400) {
  auto server = StartTcp();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(ParseReply(Client::Tcp(server->port()).Exchange("GET /metrics\r\n\r\n")).code, 400);
  EXPECT_EQ(ParseReply(Client::Tcp(server->port()).Exchange("hello\r\n\r\n")).code, 400);
}

TEST_F(MetricsServerTest, OversizedRequestIs431) {
  MetricsServer::Options options;
  options.max_request_bytes = 256;
  auto server = StartTcp(options);
  ASSERT_NE(server, nullptr);
  std::string request = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(1000, 'a');
  EXPECT_EQ(ParseReply(Client::Tcp(server->port()).Exchange(request)).code, 431);
  // The server is still fine.
  EXPECT_EQ(Get(server->port(), "/metrics").code, 200);
}

TEST_F(MetricsServerTest, SilentClientDoesNotBlockOthers) {
  auto server = StartTcp();  // default 10 s timeout: the next client must not wait for it
  ASSERT_NE(server, nullptr);
  Client silent = Client::Tcp(server->port());
  Client half = Client::Tcp(server->port());
  ASSERT_TRUE(half.Send("GET /metrics HTTP/1.1\r\n"));
  absl::Time start = absl::Now();
  EXPECT_EQ(Get(server->port(), "/metrics").code, 200);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(MetricsServerTest, SilentClientIsDroppedAtDeadline) {
  MetricsServer::Options options;
  options.connection_timeout = absl::Milliseconds(200);
  auto server = StartTcp(options);
  ASSERT_NE(server, nullptr);
  absl::Time start = absl::Now();
  Client silent = Client::Tcp(server->port());
  EXPECT_EQ(silent.ReadAll(), "");  // EOF, not the 10 s receive timeout
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(MetricsServerTest, TricklingClientCannotExtendDeadline) {
  MetricsServer::Options options;
  options.connection_timeout = absl::Milliseconds(300);
  auto server = StartTcp(options);
  ASSERT_NE(server, nullptr);
  absl::Time start = absl::Now();
  Client slow = Client::Tcp(server->port());
  // One header byte every 20 ms would go on for 4 s; the server must cut it at 300 ms.
  for (int i = 0; i < 200 && slow.Send("X"); ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    if (absl::Now() - start > absl::Seconds(2)) break;
  }
  EXPECT_EQ(slow.ReadAll(), "");
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(MetricsServerTest, ClientsBeyondMaxConnectionsWaitForASlot) {
  MetricsServer::Options options;
  options.connection_timeout = absl::Milliseconds(300);
  options.max_connections = 1;
  auto server = StartTcp(options);
  ASSERT_NE(server, nullptr);
  Client silent = Client::Tcp(server->port());
  absl::SleepFor(absl::Milliseconds(50));  // let the server take it
  absl::Time start = absl::Now();
  EXPECT_EQ(Get(server->port(), "/metrics").code, 200);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(MetricsServerTest, DestructorDoesNotWaitForClients) {
  auto server = StartTcp();
  ASSERT_NE(server, nullptr);
  Client silent = Client::Tcp(server->port());
  absl::SleepFor(absl::Milliseconds(50));
  absl::Time start = absl::Now();
  server.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(silent.ReadAll(), "");
}

TEST_F(MetricsServerTest, LocalhostAndIpv6Loopback) {
  auto server = MetricsServer::Start("localhost:0", &registry_);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(Get((*server)->port(), "/metrics").code, 200);

  auto v6 = MetricsServer::Start("[::1]:0", &registry_);
  if (!v6.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << v6.status();
  EXPECT_EQ((*v6)->address(), absl::StrCat("[::1]:", (*v6)->port()));
  Reply reply =
      ParseReply(Client::Tcp((*v6)->port(), AF_INET6).Exchange("GET /metrics HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(reply.code, 200);
  EXPECT_EQ(reply.body, registry_.Render());
}

TEST_F(MetricsServerTest, NonLoopbackRefusedUnlessAllowed) {
  for (const char* address : {"0.0.0.0:0", ":0", "10.1.2.3:9102", "[::]:0", "[2001:db8::1]:80"}) {
    auto server = MetricsServer::Start(address, &registry_);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_TRUE(absl::StrContains(server.status().message(), "loopback")) << server.status();
  }
  MetricsServer::Options options;
  options.allow_non_loopback = true;
  auto server = MetricsServer::Start("0.0.0.0:0", &registry_, options);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(Get((*server)->port(), "/metrics").code, 200);
}

TEST_F(MetricsServerTest, MalformedAddressesRefused) {
  for (const char* address : {"", "nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                              "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:http", "example.com:80",
                              "::1:80", "[::1]80", "[zz]:80", "unix:"}) {
    EXPECT_EQ(MetricsServer::Start(address, &registry_).status().code(),
              absl::StatusCode::kInvalidArgument)
        << address;
  }
  EXPECT_EQ(MetricsServer::Start("unix:/" + std::string(200, 'a'), &registry_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsServer::Start("127.0.0.1:0", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Unix sockets live in a short private directory under /tmp: TEST_TMPDIR paths can
// exceed sun_path's 108 bytes.
class MetricsServerUnixTest : public MetricsServerTest {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/clip_metrics_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/metrics.sock";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }

  // Leaves a socket file that nothing listens on, as a killed daemon would.
  void MakeStaleSocket() {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::strncpy(un.sun_path, path_.c_str(), sizeof(un.sun_path) - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof(un)), 0) << std::strerror(errno);
    close(fd);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(MetricsServerUnixTest, ServesOnUnixSocket) {
  auto server = MetricsServer::Start("unix:" + path_, &registry_);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ((*server)->port(), 0);
  EXPECT_EQ((*server)->address(), "unix:" + path_);
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  Reply reply = ParseReply(Client::Unix(path_).Exchange("GET /metrics HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(reply.code, 200);
  EXPECT_EQ(reply.body, registry_.Render());

  server->reset();
  EXPECT_NE(lstat(path_.c_str(), &st), 0) << "socket file left behind";
}

TEST_F(MetricsServerUnixTest, ReplacesStaleSocket) {
  MakeStaleSocket();
  auto server = MetricsServer::Start("unix:" + path_, &registry_);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(ParseReply(Client::Unix(path_).Exchange("GET /metrics HTTP/1.1\r\n\r\n")).code, 200);
}

TEST_F(MetricsServerUnixTest, RefusesSocketInUse) {
  auto first = MetricsServer::Start("unix:" + path_, &registry_);
  ASSERT_THAT(first, IsOk());
  auto second = MetricsServer::Start("unix:" + path_, &registry_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  EXPECT_EQ(ParseReply(Client::Unix(path_).Exchange("GET /metrics HTTP/1.1\r\n\r\n")).code, 200);
}

TEST_F(MetricsServerUnixTest, RefusesNonSocketFile) {
  { std::ofstream(path_) << "keep me"; }
  auto server = MetricsServer::Start("unix:" + path_, &registry_);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition) << server.status();
  std::ifstream in(path_);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");
}

TEST_F(MetricsServerUnixTest, CustomSocketMode) {
  MetricsServer::Options options;
  options.unix_socket_mode = 0600;
  auto server = MetricsServer::Start("unix:" + path_, &registry_, options);
  ASSERT_THAT(server, IsOk());
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace clip
