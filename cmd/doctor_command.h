// `clipctl doctor`: checks a node as an operator would before trusting it with lazy
// pulls, and says for each problem the exact change that fixes it.
//
// It reads containerd's effective configuration (`containerd config dump`, which applies
// containerd's own defaults and its migration of version 2 files; else the file), the
// clip daemon's configuration, and probes what runs: containerd's API (version, loaded
// plugins and their exports), clip's snapshotter socket, the fd holder (or systemd's fd
// store) that keeps mounts alive across daemon restarts, and the kernel's FUSE protocol
// (a throwaway FUSE mount whose INIT request says what the kernel offers).
//
// Design: two steps. GatherNodeFacts does all the I/O, through DoctorProbes
// (cmd/doctor_probes.h: the system's in production, a fake in tests); Diagnose is a pure
// function of those facts, so every finding is unit-tested from a TOML string and a few
// probe results. The checks follow the containerd release the node runs (1.6, 1.7, 2.0,
// 2.1+): what each reads of its config was verified with 1.6.20, 1.7.24 and 2.1.9.
//
//   std::unique_ptr<DoctorProbes> probes = SystemDoctorProbes();
//   NodeFacts facts = GatherNodeFacts(options, *probes);
//   for (const Finding& f : Diagnose(facts)) std::cout << FormatFinding(f) << "\n";
//
// Output, one line per finding: `ok|info|warning|error: <what> -- fix: <exact change>`.
// An error blocks lazy pulls or the survival of mounts across a daemon restart: the exit
// status is then 1 (else 0).
//
// Thread safety: plain functions and values; a DoctorProbes is used by one thread.
#ifndef CLIP_CMD_DOCTOR_COMMAND_H_
#define CLIP_CMD_DOCTOR_COMMAND_H_

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cmd/doctor_probes.h"
#include "snapshotter/daemon_config.h"

namespace clip {

enum class Severity { kOk, kInfo, kWarning, kError };

struct Finding {
  Severity severity = Severity::kOk;
  std::string what;
  std::string fix;  // the exact change (TOML table, key and value); empty when none is needed
};

// "ok: ...", "warning: ... -- fix: ...".
std::string FormatFinding(const Finding& finding);

// containerd's release, from `containerd --version` ("containerd github.com/containerd/
// containerd 1.6.20~ds1 ...") or the Version API ("1.6.20~ds1", "v2.1.9").
struct ContainerdVersion {
  int major = 0;
  int minor = 0;
  std::string text;  // as containerd printed it
};
absl::StatusOr<ContainerdVersion> ParseContainerdVersion(absl::string_view output);

struct ProxyPlugin {
  std::string type;
  std::string address;
  // exports (containerd reads them as strings); a value that is not a TOML string is
  // kept as "<not a string>" (containerd then refuses the whole file).
  std::map<std::string, std::string> exports;
};

struct UnpackPlatform {
  std::string platform;
  std::string snapshotter;
};

// What doctor needs of a containerd config, whatever its version. Absent keys take
// containerd's defaults (the same in 1.6, 1.7 and 2.x).
struct ContainerdSettings {
  int version = 1;  // the format: 1 or 2 (containerd 1.x), 3 (2.x)
  std::string root = "/var/lib/containerd";
  std::string address = "/run/containerd/containerd.sock";
  bool cri_enabled = true;  // not in disabled_plugins
  // CRI's image settings: v2 plugins."io.containerd.grpc.v1.cri".containerd (and
  // .registry), v3 plugins."io.containerd.cri.v1.images" (and .registry).
  std::string cri_snapshotter = "overlayfs";
  bool disable_snapshot_annotations = true;
  std::string cri_config_path;  // registry hosts directories, ':'-separated
  // v3: the settings that make containerd 2.1+'s CRI pull locally (with the snapshot
  // annotations) instead of through the transfer service, as containerd names them:
  // use_local_image_pull, DisableSnapshotAnnotations, DiscardUnpackedLayers,
  // ImagePullWithSyncFs, MaxConcurrentDownloads, Registry.Mirrors, Registry.Configs.
  std::vector<std::string> local_pull_reasons;
  // v2 only: whether [plugins."io.containerd.grpc.v1.cri".containerd.runtimes] exists
  // (containerd 2.1 migrates the v2 snapshotter settings only when it does).
  bool v2_cri_runtimes = false;
  // plugins."io.containerd.transfer.v1.local".unpack_config; unset: containerd's default
  // (the host platform to overlayfs).
  std::optional<std::vector<UnpackPlatform>> unpack_config;
  std::map<std::string, ProxyPlugin> proxy_plugins;
};
absl::StatusOr<ContainerdSettings> ParseContainerdConfig(const std::string& toml,
                                                         const std::string& source);

struct DoctorOptions {
  std::string containerd_bin = "containerd";
  std::string containerd_config = "/etc/containerd/config.toml";
  bool containerd_config_explicit = false;
  std::string containerd_address;  // empty: [grpc] address of the config
  std::string clip_config = kDefaultConfigPath;
  bool clip_config_explicit = false;
};

struct NodeFacts {
  std::string containerd_config_path;  // named in fixes
  std::string clip_config_path;
  // `containerd --version`, else the Version API's answer.
  absl::StatusOr<ContainerdVersion> version = absl::UnknownError("not read");
  // The effective config and where it came from ("containerd config dump", the file,
  // or containerd's defaults).
  absl::StatusOr<ContainerdSettings> containerd = absl::UnknownError("not read");
  std::string containerd_source;
  // The file as written (its version; the v2 settings before 2.x's migration).
  std::optional<ContainerdSettings> containerd_file;
  std::string containerd_address;  // probed: --containerd-address, else the config's
  absl::StatusOr<RunningContainerd> running = absl::UnknownError("not probed");
  absl::StatusOr<DaemonConfig> clip = absl::UnknownError("not read");
  bool clip_config_exists = false;
  absl::Status snapshotter = absl::UnknownError("not probed");
  absl::StatusOr<DaemonProcess> daemon = absl::UnknownError("not probed");
  std::optional<absl::StatusOr<FdHolderState>> holder;  // probed when the holder is the store
  // systemd's FileDescriptorStoreMax of the daemon's unit (when systemd is the store).
  std::optional<absl::StatusOr<std::string>> fd_store_max;
  KernelFuse fuse;
  // The image filesystem containerd's CRI reports for clip, resolved; and clip's root.
  std::string image_fs_path;
  absl::StatusOr<std::string> image_fs_real = absl::UnknownError("not resolved");
  absl::StatusOr<std::string> clip_root_real = absl::UnknownError("not resolved");
  std::string host_platform = "linux/amd64";
};

NodeFacts GatherNodeFacts(const DoctorOptions& options, DoctorProbes& probes);
std::vector<Finding> Diagnose(const NodeFacts& facts);

// Gathers, diagnoses and prints every finding and a summary; the exit status (0: no
// error, 1: an error).
int DoctorCommand(const DoctorOptions& options, DoctorProbes& probes, std::ostream& out);

}  // namespace clip

#endif  // CLIP_CMD_DOCTOR_COMMAND_H_
