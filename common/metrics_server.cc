// Design: one thread runs a poll(2) loop over the listener, an eventfd that stops it,
// and up to max_connections non-blocking connections, each a small state machine
// (read the request head, write the response, drain until the client closes) with one
// deadline from accept. A silent or slow client therefore holds only its own slot, and
// only until its deadline; nothing blocks the loop except rendering the registry.
// After the response the write side is shut down and unread input drained, so the
// client sees the whole response followed by EOF rather than a reset.
#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace clip {
namespace {

// Closes the descriptor unless released.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

struct ParsedAddress {
  bool is_unix = false;
  std::string unix_path;
  sockaddr_storage storage{};
  socklen_t length = 0;
};

bool IsLoopback(const sockaddr_storage& storage) {
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
  return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
}

absl::StatusOr<ParsedAddress> ParseAddress(const std::string& address, bool allow_non_loopback) {
  ParsedAddress parsed;
  absl::string_view rest(address);
  if (absl::ConsumePrefix(&rest, "unix:")) {
    sockaddr_un un{};
    if (rest.empty() || rest.size() >= sizeof(un.sun_path) ||
        rest.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("metrics address \"", address,
                                                     "\": unix socket path empty or longer than ",
                                                     sizeof(un.sun_path) - 1, " bytes"));
    }
    parsed.is_unix = true;
    parsed.unix_path = std::string(rest);
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, rest.data(), rest.size());
    std::memcpy(&parsed.storage, &un, sizeof(un));
    parsed.length = sizeof(un);
    return parsed;
  }

  auto invalid = [&address](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address \"", address, "\": ", why));
  };
  std::string host;
  absl::string_view port_text;
  bool bracketed = false;
  if (absl::ConsumePrefix(&rest, "[")) {
    size_t close = rest.find("]:");
    if (close == absl::string_view::npos) return invalid("expected [ipv6]:port");
    host = std::string(rest.substr(0, close));
    port_text = rest.substr(close + 2);
    bracketed = true;
  } else {
    size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos) return invalid("expected host:port or unix:/path");
    host = std::string(rest.substr(0, colon));
    port_text = rest.substr(colon + 1);
    if (host.find(':') != std::string::npos) return invalid("put an IPv6 address in brackets");
  }
  int port = -1;
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return invalid("port must be a number from 0 to 65535");
  }

  if (bracketed) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&parsed.storage);
    if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) {
      return invalid("not an IPv6 address");
    }
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    parsed.length = sizeof(sockaddr_in6);
  } else {
    if (host == "localhost") host = "127.0.0.1";
    if (host.empty()) host = "0.0.0.0";  // all interfaces
    auto* in = reinterpret_cast<sockaddr_in*>(&parsed.storage);
    if (inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1) {
      return invalid("host must be an IP address or localhost");
    }
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    parsed.length = sizeof(sockaddr_in);
  }
  if (!allow_non_loopback && !IsLoopback(parsed.storage)) {
    return invalid(
        "not a loopback address (set allow_non_loopback to expose metrics beyond "
        "this host)");
  }
  return parsed;
}

// Removes a socket file no process listens on. A live socket or a non-socket file is an
// error: the path is someone else's.
absl::Status RemoveStaleSocket(const ParsedAddress& parsed) {
  struct stat st;
  if (lstat(parsed.unix_path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(errno, absl::StrCat("stat ", parsed.unix_path));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("metrics socket path ", parsed.unix_path, " exists and is not a socket"));
  }
  ScopedFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (probe.get() < 0) return ErrnoToStatus(errno, "socket");
  if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&parsed.storage), parsed.length) ==
          0 ||
      errno == EAGAIN) {
    return absl::AlreadyExistsError(
        absl::StrCat("metrics socket ", parsed.unix_path, " is in use by another process"));
  }
  if (errno != ECONNREFUSED) return absl::OkStatus();  // e.g. removed meanwhile; bind decides
  if (unlink(parsed.unix_path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, absl::StrCat("remove stale socket ", parsed.unix_path));
  }
  return absl::OkStatus();
}

std::string FormatTcpAddress(const sockaddr_storage& storage, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    *port = ntohs(in->sin_port);
    return absl::StrCat(text, ":", *port);
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
  *port = ntohs(in6->sin6_port);
  return absl::StrCat("[", text, "]:", *port);
}

std::string Response(int code, absl::string_view reason, absl::string_view content_type,
                     absl::string_view body, bool head_only, absl::string_view extra_headers = "") {
  std::string out = absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Type: ", content_type,
                                 "\r\nContent-Length: ", body.size(), "\r\n", extra_headers,
                                 "Connection: close\r\n\r\n");
  if (!head_only) out.append(body.data(), body.size());
  return out;
}

std::string ErrorResponse(int code, absl::string_view reason, absl::string_view extra = "") {
  return Response(code, reason, "text/plain; charset=utf-8", absl::StrCat(code, " ", reason, "\n"),
                  false, extra);
}

// The response to a complete request head.
std::string Respond(absl::string_view head, const MetricsRegistry& registry) {
  absl::string_view line = head.substr(0, head.find('\n'));
  absl::ConsumeSuffix(&line, "\r");
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() ||
      !absl::StartsWith(parts[2], "HTTP/1.")) {
    return ErrorResponse(400, "Bad Request");
  }
  absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path != "/metrics") return ErrorResponse(404, "Not Found");
  bool head_only = parts[0] == "HEAD";
  if (parts[0] != "GET" && !head_only) {
    return ErrorResponse(405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
  }
  return Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", registry.Render(),
                  head_only);
}

struct Connection {
  enum class State { kReading, kWriting, kDraining };
  int fd = -1;
  absl::Time deadline;
  State state = State::kReading;
  std::string in;
  std::string out;
  size_t sent = 0;
};

// How long a finished connection waits for the client to close before it is dropped.
constexpr absl::Duration kDrainTime = absl::Seconds(1);

// Advances `c` as far as its socket allows; returns false once it should be closed.
bool Advance(Connection& c, const MetricsRegistry& registry, const MetricsServerOptions& options) {
  char buf[4096];
  while (c.state == Connection::State::kReading) {
    ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    if (n == 0) return false;  // closed before finishing its request
    c.in.append(buf, static_cast<size_t>(n));
    size_t end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) end = c.in.find("\n\n");
    if (end != std::string::npos && end <= options.max_request_bytes) {
      c.out = Respond(absl::string_view(c.in).substr(0, end), registry);
    } else if (c.in.size() > options.max_request_bytes) {
      c.out = ErrorResponse(431, "Request Header Fields Too Large");
    } else {
      continue;
    }
    c.in.clear();
    c.state = Connection::State::kWriting;
  }
  while (c.state == Connection::State::kWriting) {
    ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    c.sent += static_cast<size_t>(n);
    if (c.sent == c.out.size()) {
      shutdown(c.fd, SHUT_WR);
      c.out.clear();
      c.state = Connection::State::kDraining;
      c.deadline = std::min(c.deadline, absl::Now() + kDrainTime);
    }
  }
  while (true) {  // draining
    ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    if (n == 0) return false;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                                    const MetricsRegistry* registry,
                                                                    Options options) {
  if (registry == nullptr) return absl::InvalidArgumentError("metrics server needs a registry");
  if (options.max_connections < 1) options.max_connections = 1;
  CLIP_ASSIGN_OR_RETURN(ParsedAddress parsed, ParseAddress(address, options.allow_non_loopback));
  if (parsed.is_unix) CLIP_RETURN_IF_ERROR(RemoveStaleSocket(parsed));

  ScopedFd listener(
      socket(parsed.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (listener.get() < 0) return ErrnoToStatus(errno, "metrics socket");
  if (!parsed.is_unix) {
    int one = 1;
    setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (parsed.storage.ss_family == AF_INET6) {
      setsockopt(listener.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
  }
  if (bind(listener.get(), reinterpret_cast<const sockaddr*>(&parsed.storage), parsed.length) !=
      0) {
    return ErrnoToStatus(errno, absl::StrCat("bind metrics address ", address));
  }

  std::string bound;
  int port = 0;
  struct stat st {};
  if (parsed.is_unix) {
    // Permissions are set before listen(), so no client connects under looser ones.
    absl::Status status;
    if (chmod(parsed.unix_path.c_str(), options.unix_socket_mode) != 0) {
      status = ErrnoToStatus(errno, absl::StrCat("chmod ", parsed.unix_path));
    } else if (lstat(parsed.unix_path.c_str(), &st) != 0) {
      status = ErrnoToStatus(errno, absl::StrCat("stat ", parsed.unix_path));
    }
    if (!status.ok()) {
      unlink(parsed.unix_path.c_str());
      return status;
    }
    bound = absl::StrCat("unix:", parsed.unix_path);
  } else {
    sockaddr_storage actual{};
    socklen_t length = sizeof(actual);
    if (getsockname(listener.get(), reinterpret_cast<sockaddr*>(&actual), &length) != 0) {
      return ErrnoToStatus(errno, "getsockname");
    }
    bound = FormatTcpAddress(actual, &port);
  }
  absl::Status status;
  ScopedFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (listen(listener.get(), 64) != 0) {
    status = ErrnoToStatus(errno, absl::StrCat("listen on metrics address ", address));
  } else if (wake.get() < 0) {
    status = ErrnoToStatus(errno, "eventfd");
  }
  if (!status.ok()) {
    if (parsed.is_unix) unlink(parsed.unix_path.c_str());
    return status;
  }

  std::unique_ptr<MetricsServer> server(new MetricsServer(listener.release(), wake.release(), port,
                                                          std::move(bound), parsed.unix_path,
                                                          registry, options));
  server->unix_dev_ = st.st_dev;
  server->unix_ino_ = st.st_ino;
  server->thread_ = std::thread(&MetricsServer::Serve, server.get());
  return server;
}

MetricsServer::MetricsServer(int listen_fd, int wake_fd, int port, std::string address,
                             std::string unix_path, const MetricsRegistry* registry,
                             Options options)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port),
      address_(std::move(address)),
      unix_path_(std::move(unix_path)),
      registry_(registry),
      options_(options) {}

MetricsServer::~MetricsServer() {
  uint64_t one = 1;
  while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(wake_fd_);
  struct stat st;
  // Only our own socket file: another server may have replaced it since.
  if (!unix_path_.empty() && lstat(unix_path_.c_str(), &st) == 0 && st.st_dev == unix_dev_ &&
      st.st_ino == unix_ino_) {
    unlink(unix_path_.c_str());
  }
}

void MetricsServer::Serve() {
  std::vector<Connection> connections;
  absl::Time listener_paused_until = absl::InfinitePast();
  std::vector<pollfd> fds;
  while (true) {
    absl::Time now = absl::Now();
    const bool accepting = static_cast<int>(connections.size()) < options_.max_connections &&
                           now >= listener_paused_until;
    absl::Time wake_at = accepting ? absl::InfiniteFuture() : listener_paused_until;
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});  // fd -1 is ignored
    for (const Connection& c : connections) {
      fds.push_back(
          {c.fd, static_cast<short>(c.state == Connection::State::kWriting ? POLLOUT : POLLIN), 0});
      wake_at = std::min(wake_at, c.deadline);
    }
    int timeout_ms = -1;
    if (wake_at != absl::InfiniteFuture()) {
      double ms = std::ceil(absl::ToDoubleMilliseconds(wake_at - now));
      timeout_ms = static_cast<int>(std::clamp(ms, 0.0, static_cast<double>(INT_MAX)));
    }
    int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      absl::SleepFor(absl::Milliseconds(10));  // cannot happen with valid fds; do not spin
      continue;
    }
    if (ready > 0 && fds[0].revents != 0) break;

    now = absl::Now();
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = connections[i];
      bool keep = now < c.deadline;
      if (keep && ready > 0 && fds[i + 2].revents != 0) keep = Advance(c, *registry_, options_);
      if (!keep) {
        close(c.fd);
        c.fd = -1;
      }
    }
    connections.erase(std::remove_if(connections.begin(), connections.end(),
                                     [](const Connection& c) { return c.fd < 0; }),
                      connections.end());

    if (ready > 0 && fds[1].revents != 0) {
      while (static_cast<int>(connections.size()) < options_.max_connections) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            listener_paused_until = now + absl::Milliseconds(100);  // let descriptors free up
          }
          break;  // EAGAIN, or a connection that died in the backlog
        }
        Connection& c = connections.emplace_back();
        c.fd = fd;
        c.deadline = now + options_.connection_timeout;
      }
    }
  }
  for (const Connection& c : connections) close(c.fd);
}

}  // namespace clip
