// DoctorProbes: the questions `clipctl doctor` (cmd/doctor_command.h) asks of a node, as
// one interface, so that its checks run against a fake node in tests; and the system's
// answers (SystemDoctorProbes).
//
// Each probe is narrow and read-only for the node: it runs containerd's own commands
// (`--version`, `config dump`), reads files, asks containerd's Version and Introspection
// APIs and clip's snapshots API, lists the fd holder, reads /proc (the daemon's lock,
// environment and cgroup), and mounts an empty FUSE filesystem on a private directory
// for the kernel's FUSE_INIT, which it never answers (the mount goes at once).
//
//   std::unique_ptr<DoctorProbes> probes = SystemDoctorProbes();
//   absl::StatusOr<RunningContainerd> c = probes->Containerd("/run/containerd/containerd.sock");
//
// Thread safety: a DoctorProbes is used by one thread at a time.
#ifndef CLIP_CMD_DOCTOR_PROBES_H_
#define CLIP_CMD_DOCTOR_PROBES_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace clip {

// What the running containerd says about itself (Version and Introspection APIs).
struct RunningContainerd {
  std::string version;
  struct Plugin {
    std::string type;  // e.g. "io.containerd.snapshotter.v1"
    std::string id;    // e.g. "clip"
    std::map<std::string, std::string> exports;
    std::string init_error;  // empty: loaded
  };
  absl::StatusOr<std::vector<Plugin>> plugins = std::vector<Plugin>{};
};
// Decodes an Introspection.Plugins response (containerd's api/services/introspection/v1).
absl::StatusOr<std::vector<RunningContainerd::Plugin>> DecodePluginsResponse(
    const std::string& bytes);

struct FdHolderState {
  pid_t pid = 0;
  int entries = 0;              // fds held: mounts and the listener
  bool holds_listener = false;  // the daemon's gRPC socket is among them
};

// The clip daemon that holds <root>/daemon.lock.
struct DaemonProcess {
  pid_t pid = 0;
  std::string notify_socket;  // its $NOTIFY_SOCKET (systemd Type=notify); empty: none
  std::string unit;           // its systemd unit, from its cgroup; empty: none
};

// What the kernel's FUSE offers.
struct KernelFuse {
  bool device = true;  // /dev/fuse exists
  int major = 0;       // protocol version (0: not probed)
  int minor = 0;
  std::optional<bool> resend;       // FUSE_NOTIFY_RESEND (7.40, Linux 6.9)
  std::optional<bool> passthrough;  // FUSE_PASSTHROUGH (7.40, CONFIG_FUSE_PASSTHROUGH)
  std::string how;                  // how this was found out
};
// Decodes the kernel's FUSE_INIT request as read from /dev/fuse.
absl::StatusOr<KernelFuse> ParseFuseInit(absl::string_view request);

// Everything doctor reads or probes. Each probe is a narrow question so that tests can
// answer it.
class DoctorProbes {
 public:
  virtual ~DoctorProbes() = default;
  // Runs argv (PATH searched); its standard output. An error when it cannot run, takes
  // too long or exits non-zero (with its standard error in the message).
  virtual absl::StatusOr<std::string> Run(const std::vector<std::string>& argv) = 0;
  // kNotFound when the file does not exist.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // The path with every symlink resolved.
  virtual absl::StatusOr<std::string> RealPath(const std::string& path) = 0;
  // containerd's API at the unix socket `path`.
  virtual absl::StatusOr<RunningContainerd> Containerd(const std::string& path) = 0;
  // OK when a snapshots API answers at the unix socket `path`.
  virtual absl::Status Snapshotter(const std::string& path) = 0;
  virtual absl::StatusOr<FdHolderState> FdHolder(const std::string& socket) = 0;
  // kNotFound when no process holds <root>/daemon.lock.
  virtual absl::StatusOr<DaemonProcess> Daemon(const std::string& root) = 0;
  virtual KernelFuse Fuse() = 0;
  // containerd's name of this host's platform, e.g. "linux/amd64".
  virtual std::string HostPlatform() = 0;
};
std::unique_ptr<DoctorProbes> SystemDoctorProbes();

}  // namespace clip

#endif  // CLIP_CMD_DOCTOR_PROBES_H_
