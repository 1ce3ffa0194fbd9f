#include "cmd/doctor_probes.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "common/file_io.h"
#include "fs/fd_holder.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "proto/containerd/services/snapshots/v1/snapshots.grpc.pb.h"

extern char** environ;

namespace clip {

absl::StatusOr<std::vector<RunningContainerd::Plugin>> DecodePluginsResponse(
    const std::string& bytes) {
  // containerd api/services/introspection/v1/introspection.proto:
  //   PluginsResponse { repeated Plugin plugins = 1; }
  //   Plugin { string type = 1; string id = 2; ...; map<string, string> exports = 5; ...;
  //            google.rpc.Status init_err = 7; }   (a map entry: key = 1, value = 2;
  //   google.rpc.Status: int32 code = 1; string message = 2)
  using google::protobuf::UnknownField;
  using google::protobuf::UnknownFieldSet;
  auto strings = [](const std::string& message) -> absl::StatusOr<std::map<int, std::string>> {
    UnknownFieldSet fields;
    if (!fields.ParseFromString(message)) return absl::DataLossError("malformed message");
    std::map<int, std::string> out;
    for (int i = 0; i < fields.field_count(); ++i) {
      if (fields.field(i).type() == UnknownField::TYPE_LENGTH_DELIMITED) {
        out[fields.field(i).number()] = fields.field(i).length_delimited();
      }
    }
    return out;
  };
  UnknownFieldSet response;
  if (!response.ParseFromString(bytes)) {
    return absl::DataLossError("malformed Introspection.Plugins response");
  }
  std::vector<RunningContainerd::Plugin> plugins;
  for (int i = 0; i < response.field_count(); ++i) {
    const UnknownField& f = response.field(i);
    if (f.number() != 1 || f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    UnknownFieldSet plugin;
    if (!plugin.ParseFromString(f.length_delimited())) {
      return absl::DataLossError("malformed plugin in Introspection.Plugins response");
    }
    RunningContainerd::Plugin p;
    for (int j = 0; j < plugin.field_count(); ++j) {
      const UnknownField& pf = plugin.field(j);
      if (pf.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
      if (pf.number() == 1) p.type = pf.length_delimited();
      if (pf.number() == 2) p.id = pf.length_delimited();
      if (pf.number() == 5) {
        absl::StatusOr<std::map<int, std::string>> entry = strings(pf.length_delimited());
        if (!entry.ok()) return entry.status();
        p.exports[(*entry)[1]] = (*entry)[2];
      }
      if (pf.number() == 7) {
        absl::StatusOr<std::map<int, std::string>> status = strings(pf.length_delimited());
        if (!status.ok()) return status.status();
        p.init_error = (*status)[2];
        if (p.init_error.empty()) p.init_error = "failed to load";
      }
    }
    plugins.push_back(std::move(p));
  }
  return plugins;
}

absl::StatusOr<KernelFuse> ParseFuseInit(absl::string_view request) {
  // fuse_in_header (40 bytes: len, opcode, unique, nodeid, uid, gid, pid, ...), then
  // fuse_init_in: major, minor, max_readahead, flags, and since 7.36 flags2.
  constexpr size_t kHeader = 40;
  constexpr uint32_t kOpInit = 26;
  constexpr uint32_t kInitExt = 1u << 30;     // flags2 is valid
  constexpr uint32_t kPassthrough = 1u << 5;  // FUSE_PASSTHROUGH, bit 37
  constexpr uint32_t kHasResend = 1u << 7;    // FUSE_HAS_RESEND, bit 39
  auto u32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, request.data() + at, sizeof(v));
    return v;
  };
  if (request.size() < kHeader + 16 || u32(4) != kOpInit) {
    return absl::DataLossError("not a FUSE_INIT request");
  }
  KernelFuse k;
  k.major = static_cast<int>(u32(kHeader));
  k.minor = static_cast<int>(u32(kHeader + 4));
  const uint32_t flags = u32(kHeader + 12);
  const uint32_t flags2 =
      (flags & kInitExt) && request.size() >= kHeader + 20 ? u32(kHeader + 16) : 0;
  k.resend = (flags2 & kHasResend) != 0;
  k.passthrough = (flags2 & kPassthrough) != 0;
  return k;
}

namespace {

constexpr absl::Duration kProbeTimeout = absl::Seconds(5);

absl::StatusOr<std::string> CallUnary(const std::shared_ptr<grpc::Channel>& channel,
                                      const std::string& method) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kProbeTimeout));
  grpc::ByteBuffer request(nullptr, 0);  // both calls take an empty request
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat(method, ": ", status.error_message()));
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::DataLossError(absl::StrCat(method, ": no reply"));
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes;
}

std::string ReadProcFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class SystemProbes final : public DoctorProbes {
 public:
  absl::StatusOr<std::string> Run(const std::vector<std::string>& argv) override {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
    if (pipe2(err, O_CLOEXEC) != 0) {
      close(out[0]);
      close(out[1]);
      return ErrnoToStatus(errno, "pipe");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid;
    const int spawned = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    if (spawned != 0) {
      close(out[0]);
      close(err[0]);
      return absl::NotFoundError(absl::StrCat("cannot run ", argv[0], ": ", strerror(spawned)));
    }
    std::string stdout_text, stderr_text;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    bool timed_out = false;
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) {
        timed_out = true;
        break;
      }
      if (poll(fds, 2, static_cast<int>(left)) < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        char buf[8192];
        const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
        if (n > 0) {
          (i == 0 ? stdout_text : stderr_text).append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          close(fds[i].fd);
          fds[i].fd = -1;
        }
      }
    }
    for (pollfd& p : fds) {
      if (p.fd >= 0) close(p.fd);
    }
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const std::string command = absl::StrJoin(argv, " ");
    if (timed_out) return absl::DeadlineExceededError(absl::StrCat(command, ": timed out"));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::string message(absl::StripAsciiWhitespace(stderr_text));
      if (message.size() > 300) message = message.substr(0, 300) + "...";
      return absl::FailedPreconditionError(
          absl::StrCat(command, " failed", message.empty() ? "" : ": ", message));
    }
    return stdout_text;
  }

  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return ReadWholeFile(path);
  }

  absl::StatusOr<std::string> RealPath(const std::string& path) override {
    char* real = realpath(path.c_str(), nullptr);
    if (real == nullptr) return ErrnoToStatus(errno, path);
    std::string out(real);
    free(real);
    return out;
  }

  absl::StatusOr<RunningContainerd> Containerd(const std::string& address) override {
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateChannel("unix:" + address, grpc::InsecureChannelCredentials());
    absl::StatusOr<std::string> version =
        CallUnary(channel, "/containerd.services.version.v1.Version/Version");
    if (!version.ok()) return version.status();
    // VersionResponse { string version = 1; string revision = 2; }
    google::protobuf::UnknownFieldSet fields;
    RunningContainerd r;
    if (fields.ParseFromString(*version)) {
      for (int i = 0; i < fields.field_count(); ++i) {
        if (fields.field(i).number() == 1 &&
            fields.field(i).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
          r.version = fields.field(i).length_delimited();
        }
      }
    }
    absl::StatusOr<std::string> plugins =
        CallUnary(channel, "/containerd.services.introspection.v1.Introspection/Plugins");
    r.plugins = plugins.ok()
                    ? DecodePluginsResponse(*plugins)
                    : absl::StatusOr<std::vector<RunningContainerd::Plugin>>(plugins.status());
    return r;
  }

  absl::Status Snapshotter(const std::string& address) override {
    auto stub = containerd::services::snapshots::v1::Snapshots::NewStub(
        grpc::CreateChannel("unix:" + address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kProbeTimeout));
    containerd::services::snapshots::v1::StatSnapshotRequest request;
    request.set_key("clip-doctor-probe");  // no such snapshot: any answer of the API will do
    containerd::services::snapshots::v1::StatSnapshotResponse response;
    const grpc::Status s = stub->Stat(&context, request, &response);
    switch (s.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::UNIMPLEMENTED:
        return absl::UnavailableError(s.error_message());
      default:
        return absl::OkStatus();
    }
  }

  absl::StatusOr<FdHolderState> FdHolder(const std::string& socket) override {
    absl::StatusOr<std::unique_ptr<FdHolderClient>> client =
        FdHolderClient::Connect(socket, kProbeTimeout);
    if (!client.ok()) return client.status();
    absl::StatusOr<std::vector<HeldFd>> held = (*client)->List();
    if (!held.ok()) return held.status();
    FdHolderState state;
    state.pid = (*client)->pid();
    state.entries = static_cast<int>(held->size());
    for (const HeldFd& h : *held) {
      // "grpc-listener": the daemon's name for its socket (snapshotter/daemon.h).
      if (h.name == "grpc-listener") state.holds_listener = true;
      close(h.fd);  // duplicates: the holder keeps its own
    }
    return state;
  }

  absl::StatusOr<DaemonProcess> Daemon(const std::string& root) override {
    // The daemon holds an flock on <root>/daemon.lock while it runs; /proc/locks names
    // the holder as "N: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> 0 EOF".
    const std::string lock = root + "/daemon.lock";
    struct stat st;
    if (stat(lock.c_str(), &st) != 0) return ErrnoToStatus(errno, lock);
    const std::string id = absl::StrFormat("%02x:%02x:%u", major(st.st_dev), minor(st.st_dev),
                                           static_cast<unsigned>(st.st_ino));
    for (absl::string_view line : absl::StrSplit(ReadProcFile("/proc/locks"), '\n')) {
      std::vector<absl::string_view> w = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (w.size() < 6 || w[1] != "FLOCK" || w[5] != id) continue;
      DaemonProcess d;
      if (!absl::SimpleAtoi(w[4], &d.pid)) continue;
      for (absl::string_view v :
           absl::StrSplit(ReadProcFile(absl::StrCat("/proc/", d.pid, "/environ")), '\0')) {
        if (absl::ConsumePrefix(&v, "NOTIFY_SOCKET=")) d.notify_socket = std::string(v);
      }
      // cgroup v2 "0::/system.slice/containerd-clip-grpc.service" (v1: the name=systemd line).
      for (absl::string_view l :
           absl::StrSplit(ReadProcFile(absl::StrCat("/proc/", d.pid, "/cgroup")), '\n')) {
        if (!absl::StartsWith(l, "0::") && !absl::StrContains(l, "name=systemd:")) continue;
        for (absl::string_view part : absl::StrSplit(l, '/')) {
          if (absl::EndsWith(part, ".service")) d.unit = std::string(part);
        }
      }
      return d;
    }
    return absl::NotFoundError(absl::StrCat("no process holds ", lock));
  }

  KernelFuse Fuse() override {
    KernelFuse k;
    struct stat st;
    if (stat("/dev/fuse", &st) != 0) {
      k.device = false;
      k.how = "/dev/fuse: " + std::string(strerror(errno));
      return k;
    }
    absl::StatusOr<KernelFuse> probed = ProbeMount();
    if (probed.ok()) return *probed;
    // No mount (not root?): the kernel's release says as much as can be said.
    struct utsname u;
    uname(&u);
    int ma = 0, mi = 0;
    std::vector<absl::string_view> parts = absl::StrSplit(u.release, absl::MaxSplits('.', 2));
    const bool parsed =
        parts.size() >= 2 && absl::SimpleAtoi(parts[0], &ma) &&
        absl::SimpleAtoi(parts[1].substr(0, parts[1].find_first_not_of("0123456789")), &mi);
    k.how = absl::StrCat("Linux ", u.release, " (no probe mount: ", probed.status().message(), ")");
    if (parsed) k.resend = ma > 6 || (ma == 6 && mi >= 9);
    // Passthrough also needs CONFIG_FUSE_PASSTHROUGH, which the release does not say.
    return k;
  }

  std::string HostPlatform() override {
    struct utsname u;
    uname(&u);
    const absl::string_view m = u.machine;
    if (m == "x86_64") return "linux/amd64";
    if (m == "aarch64") return "linux/arm64";
    if (m == "armv7l") return "linux/arm/v7";
    if (m == "i686" || m == "i386") return "linux/386";
    return absl::StrCat("linux/", m);
  }

 private:
  // Mounts an empty FUSE filesystem on a private directory and reads the kernel's
  // FUSE_INIT, which says which protocol and features it offers; never answers it.
  static absl::StatusOr<KernelFuse> ProbeMount() {
    char dir[] = "/tmp/clip-doctor-XXXXXX";
    if (mkdtemp(dir) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
    const int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      const absl::Status s = ErrnoToStatus(errno, "open /dev/fuse");
      rmdir(dir);
      return s;
    }
    const std::string options = absl::StrCat("fd=", fd, ",rootmode=40000,user_id=0,group_id=0");
    if (mount("clip-doctor", dir, "fuse.clip-doctor", MS_NOSUID | MS_NODEV | MS_RDONLY,
              options.c_str()) != 0) {
      const absl::Status s = ErrnoToStatus(errno, "mount fuse");
      close(fd);
      rmdir(dir);
      return s;
    }
    std::string request(1 << 16, '\0');
    pollfd p = {fd, POLLIN, 0};
    ssize_t n = -1;
    if (poll(&p, 1, 2000) == 1) n = read(fd, request.data(), request.size());
    const int read_errno = errno;
    close(fd);  // aborts the connection: nothing waits on it
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    if (n < 0) return ErrnoToStatus(read_errno, "read FUSE_INIT");
    request.resize(static_cast<size_t>(n));
    absl::StatusOr<KernelFuse> k = ParseFuseInit(request);
    if (k.ok()) k->how = "probed with a FUSE mount";
    return k;
  }
};

}  // namespace

std::unique_ptr<DoctorProbes> SystemDoctorProbes() { return std::make_unique<SystemProbes>(); }

}  // namespace clip
