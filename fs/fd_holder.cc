#include "fs/fd_holder.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "fs/fd_passing.h"

namespace clip {
namespace {

constexpr char kMagic[4] = {'C', 'F', 'H', '1'};
constexpr size_t kMaxName = 4096;
constexpr size_t kMaxData = 64 << 10;
constexpr size_t kMaxMessage = 13 + kMaxName + kMaxData;

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("fd holder: ", what, ": ", strerror(errno)));
}

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(p[i]);
  return v;
}

struct Message {
  char op = 0;
  std::string name;
  std::string data;
  int fd = -1;  // received fd (owned by the receiver), or -1
};

absl::Status Send(int sock, char op, absl::string_view name, absl::string_view data, int fd) {
  std::string buf(kMagic, sizeof(kMagic));
  buf.push_back(op);
  PutU32(&buf, static_cast<uint32_t>(name.size()));
  buf.append(name.data(), name.size());
  PutU32(&buf, static_cast<uint32_t>(data.size()));
  buf.append(data.data(), data.size());
  absl::Status sent = SendWithFd(sock, nullptr, 0, buf, fd);
  if (!sent.ok()) return absl::UnavailableError(absl::StrCat("fd holder: ", sent.message()));
  return absl::OkStatus();
}

// kUnavailable on EOF or a socket error, kDataLoss on a malformed message.
absl::StatusOr<Message> Receive(int sock) {
  std::string buf(kMaxMessage, '\0');
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    return absl::UnavailableError("fd holder: no answer in time");
  }
  if (n < 0) return Errno("receive");
  if (n == 0) return absl::UnavailableError("fd holder: connection closed");
  Message m;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (m.fd < 0) {
        m.fd = fd;
      } else {
        close(fd);  // one fd per message; extras are not ours to keep
      }
    }
  }
  auto bad = [&](absl::string_view what) {
    if (m.fd >= 0) close(m.fd);
    return absl::DataLossError(absl::StrCat("fd holder: bad message (", what, ")"));
  };
  if ((msg.msg_flags & MSG_TRUNC) != 0) return bad("too long");
  const size_t size = static_cast<size_t>(n);
  if (size < 13 || std::memcmp(buf.data(), kMagic, sizeof(kMagic)) != 0) return bad("magic");
  m.op = buf[4];
  uint32_t name_len = GetU32(buf.data() + 5);
  if (name_len > kMaxName || 9 + name_len + 4 > size) return bad("name length");
  m.name.assign(buf.data() + 9, name_len);
  uint32_t data_len = GetU32(buf.data() + 9 + name_len);
  if (data_len > kMaxData || 13 + name_len + data_len != size) return bad("data length");
  m.data.assign(buf.data() + 13 + name_len, data_len);
  return m;
}

absl::StatusOr<int> ConnectSocket(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("fd holder: socket path too long: ", path));
  }
  int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (sock < 0) return Errno("socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    absl::Status st = Errno(absl::StrCat("connect ", path));
    close(sock);
    return st;
  }
  return sock;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FdHolderClient>> FdHolderClient::Connect(
    const std::string& path, absl::Duration answer_timeout) {
  absl::StatusOr<int> sock = ConnectSocket(path);
  if (!sock.ok()) return sock.status();
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(*sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) cred.pid = 0;
  const timeval timeout = absl::ToTimeval(answer_timeout);
  setsockopt(*sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(*sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  return std::unique_ptr<FdHolderClient>(new FdHolderClient(*sock, cred.pid));
}

absl::StatusOr<std::unique_ptr<FdHolderClient>> FdHolderClient::ConnectOrStart(
    const std::string& path, const std::string& holder_binary, absl::Duration timeout) {
  absl::StatusOr<std::unique_ptr<FdHolderClient>> c = Connect(path);
  if (c.ok() || c.status().code() == absl::StatusCode::kInvalidArgument) return c;
  pid_t child = fork();
  if (child < 0) return Errno("fork");
  if (child == 0) {
    // A grandchild in its own session: not killed with this process or its group.
    setsid();
    if (fork() != 0) _exit(0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) dup2(null, 0);
    close_range(3, ~0U, 0);  // nothing of the daemon's (locks, mounts, sockets)
    execl(holder_binary.c_str(), holder_binary.c_str(), "--socket", path.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  const absl::Time deadline = absl::Now() + timeout;
  do {
    absl::SleepFor(absl::Milliseconds(10));
    c = Connect(path);
  } while (!c.ok() && absl::Now() < deadline);
  if (!c.ok()) {
    return absl::UnavailableError(absl::StrCat("fd holder: started ", holder_binary,
                                               " but nothing listens at ", path, ": ",
                                               c.status().message()));
  }
  return c;
}

FdHolderClient::~FdHolderClient() { close(sock_); }

absl::Status FdHolderClient::Request(char op, const std::string& name, const std::string& data,
                                     int fd, std::vector<HeldFd>* listed) {
  if (name.size() > kMaxName || data.size() > kMaxData) {
    return absl::InvalidArgumentError("fd holder: name or data too long");
  }
  if (absl::Status sent = Send(sock_, op, name, data, fd); !sent.ok()) return sent;
  for (;;) {
    absl::StatusOr<Message> m = Receive(sock_);
    if (!m.ok()) return m.status();
    switch (m->op) {
      case 'K':
        if (m->fd >= 0) close(m->fd);
        return absl::OkStatus();
      case 'E':
        if (m->fd >= 0) close(m->fd);
        return absl::InternalError(absl::StrCat("fd holder: ", m->name));
      case 'I':
        if (listed == nullptr || m->fd < 0) {
          if (m->fd >= 0) close(m->fd);
          return absl::DataLossError("fd holder: unexpected entry");
        }
        listed->push_back(HeldFd{std::move(m->name), std::move(m->data), m->fd});
        continue;
      case 'Z':
        return absl::OkStatus();
      default:
        if (m->fd >= 0) close(m->fd);
        return absl::DataLossError("fd holder: unknown answer");
    }
  }
}

absl::Status FdHolderClient::Put(const std::string& name, const std::string& data, int fd) {
  if (fd < 0) return absl::InvalidArgumentError("fd holder: no fd to put");
  absl::MutexLock lock(&mu_);
  return Request('P', name, data, fd, nullptr);
}

absl::Status FdHolderClient::Drop(const std::string& name) {
  absl::MutexLock lock(&mu_);
  return Request('D', name, "", -1, nullptr);
}

absl::StatusOr<std::vector<HeldFd>> FdHolderClient::List() {
  std::vector<HeldFd> out;
  absl::MutexLock lock(&mu_);
  absl::Status st = Request('L', "", "", -1, &out);
  if (!st.ok()) {
    for (HeldFd& h : out) close(h.fd);
    return st;
  }
  return out;
}

absl::Status FdHolderClient::Quit() {
  absl::MutexLock lock(&mu_);
  return Request('Q', "", "", -1, nullptr);
}

absl::Status RunFdHolder(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", path));
  }
  int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (listener < 0) return Errno("socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  // A socket file nobody answers on is stale (a holder that died): replace it.
  if (absl::StatusOr<int> live = ConnectSocket(path); live.ok()) {
    close(*live);
    close(listener);
    return absl::AlreadyExistsError(absl::StrCat("a holder already listens at ", path));
  }
  unlink(path.c_str());
  mode_t old = umask(0177);
  int bound = bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (bound != 0) return Errno(absl::StrCat("bind ", path));
  // The pid file is complete before anyone can connect: whoever reached this holder
  // can read its pid.
  std::ofstream(path + ".pid") << getpid() << "\n";
  if (listen(listener, 16) != 0) return Errno(absl::StrCat("listen ", path));

  struct Held {
    std::string data;
    int fd;
  };
  std::map<std::string, Held> held;
  std::vector<pollfd> fds = {{listener, POLLIN, 0}};
  bool quit = false;
  while (!quit) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return Errno("poll");
    }
    if (fds[0].revents & POLLIN) {
      int c = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        ucred cred{};
        socklen_t len = sizeof(cred);
        // Root only (the socket is 0600 too): the fds are the node's mounts.
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            (cred.uid != 0 && cred.uid != getuid())) {
          close(c);
        } else {
          fds.push_back({c, POLLIN, 0});
        }
      }
    }
    for (size_t i = 1; i < fds.size() && !quit; ++i) {
      if (fds[i].revents == 0) continue;
      absl::StatusOr<Message> m = Receive(fds[i].fd);
      if (!m.ok()) {
        if (m.status().code() == absl::StatusCode::kDataLoss) {
          (void)Send(fds[i].fd, 'E', m.status().message(), "", -1);
        }
        if (m.status().code() == absl::StatusCode::kUnavailable) {
          close(fds[i].fd);
          fds[i].fd = -1;
        }
        continue;
      }
      absl::Status answered = absl::OkStatus();
      switch (m->op) {
        case 'P': {
          if (m->fd < 0) {
            answered = Send(fds[i].fd, 'E', "put without an fd", "", -1);
            break;
          }
          auto [it, added] = held.try_emplace(m->name, Held{m->data, m->fd});
          if (!added) {
            close(it->second.fd);
            it->second = Held{m->data, m->fd};
          }
          m->fd = -1;
          answered = Send(fds[i].fd, 'K', "", "", -1);
          break;
        }
        case 'D':
          if (auto it = held.find(m->name); it != held.end()) {
            close(it->second.fd);
            held.erase(it);
          }
          answered = Send(fds[i].fd, 'K', "", "", -1);
          break;
        case 'L':
          for (const auto& [name, h] : held) {
            answered.Update(Send(fds[i].fd, 'I', name, h.data, h.fd));
          }
          answered.Update(Send(fds[i].fd, 'Z', "", "", -1));
          break;
        case 'Q':
          (void)Send(fds[i].fd, 'K', "", "", -1);
          quit = true;
          break;
        default:
          answered = Send(fds[i].fd, 'E', "unknown op", "", -1);
      }
      if (m->fd >= 0) close(m->fd);
      (void)answered;  // a client gone mid-answer is seen at its next poll
    }
    std::vector<pollfd> live;
    for (const pollfd& p : fds) {
      if (p.fd >= 0) live.push_back({p.fd, POLLIN, 0});
    }
    fds.swap(live);
  }
  for (auto& [name, h] : held) close(h.fd);
  for (const pollfd& p : fds) close(p.fd);
  unlink(path.c_str());
  unlink((path + ".pid").c_str());
  return absl::OkStatus();
}

}  // namespace clip
