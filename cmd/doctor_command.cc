#include "cmd/doctor_command.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "snapshotter/image_fs_link.h"
#include "toml++/toml.h"

namespace clip {
namespace {

// ---------------------------------------------------------------------------------------
// containerd's configuration.

constexpr char kCriV2[] = "io.containerd.grpc.v1.cri";
constexpr char kCriImagesV3[] = "io.containerd.cri.v1.images";
constexpr char kTransfer[] = "io.containerd.transfer.v1.local";
constexpr int64_t kDefaultMaxConcurrentDownloads = 3;

const toml::table* Table(const toml::table* t, std::initializer_list<std::string_view> path) {
  for (std::string_view key : path) {
    if (t == nullptr) return nullptr;
    const toml::node* n = t->get(key);
    t = n != nullptr ? n->as_table() : nullptr;
  }
  return t;
}

std::optional<std::string> String(const toml::table* t, std::string_view key) {
  if (t == nullptr) return std::nullopt;
  const toml::node* n = t->get(key);
  if (n == nullptr || !n->is_string()) return std::nullopt;
  return n->as_string()->get();
}

std::optional<bool> Bool(const toml::table* t, std::string_view key) {
  if (t == nullptr) return std::nullopt;
  const toml::node* n = t->get(key);
  if (n == nullptr || !n->is_boolean()) return std::nullopt;
  return n->as_boolean()->get();
}

std::optional<int64_t> Int(const toml::table* t, std::string_view key) {
  if (t == nullptr) return std::nullopt;
  const toml::node* n = t->get(key);
  if (n == nullptr || !n->is_integer()) return std::nullopt;
  return n->as_integer()->get();
}

bool NonEmptyTable(const toml::table* t, std::string_view key) {
  const toml::table* sub = Table(t, {key});
  return sub != nullptr && !sub->empty();
}

// A socket address as a path ("unix:///run/x.sock" and "/run/x.sock" are the same).
std::string SocketPath(absl::string_view address) {
  if (!absl::ConsumePrefix(&address, "unix://")) absl::ConsumePrefix(&address, "unix:");
  return std::string(address);
}

std::string CleanPath(absl::string_view path) {
  while (path.size() > 1 && absl::EndsWith(path, "/")) path.remove_suffix(1);
  return std::string(path);
}

// ---------------------------------------------------------------------------------------
// How findings name TOML: tables quoted the way the config's version writes them.

struct Toml {
  bool v3;
  std::string Key(absl::string_view key) const {
    return v3 ? absl::StrCat("'", key, "'") : absl::StrCat("\"", key, "\"");
  }
  std::string Str(absl::string_view value) const { return Key(value); }
  std::string CriImages() const {
    return v3 ? absl::StrCat("[plugins.", Key(kCriImagesV3), "]")
              : absl::StrCat("[plugins.", Key(kCriV2), ".containerd]");
  }
  std::string CriRegistry() const {
    return absl::StrCat("[plugins.", Key(v3 ? kCriImagesV3 : kCriV2), ".registry]");
  }
  std::string Proxy(absl::string_view name) const {
    return absl::StrCat("[proxy_plugins.", name, "]");
  }
  std::string Exports(absl::string_view name) const {
    return absl::StrCat("[proxy_plugins.", name, ".exports]");
  }
  std::string UnpackConfig(absl::string_view platform, absl::string_view snapshotter) const {
    return absl::StrCat("[[plugins.", Key(kTransfer), ".unpack_config]] platform = ", Str(platform),
                        ", snapshotter = ", Str(snapshotter));
  }
};

// ---------------------------------------------------------------------------------------
// The facts as findings.

// The containerd release the checks follow: the binary's, else the running one's, else
// a guess from the config's format (said in a finding).
struct Release {
  int major = 1;
  int minor = 6;
  bool known = false;
  bool AtLeast(int ma, int mi) const { return major > ma || (major == ma && minor >= mi); }
};

Release ReleaseOf(const absl::StatusOr<ContainerdVersion>& binary,
                  const absl::StatusOr<RunningContainerd>& running, int config_version) {
  if (binary.ok()) return {binary->major, binary->minor, true};
  if (running.ok()) {
    if (absl::StatusOr<ContainerdVersion> v = ParseContainerdVersion(running->version); v.ok()) {
      return {v->major, v->minor, true};
    }
  }
  return config_version >= 3 ? Release{2, 1, false} : Release{1, 6, false};
}

Release ReleaseOf(const NodeFacts& f) {
  return ReleaseOf(f.version, f.running, f.containerd.ok() ? f.containerd->version : 0);
}

// The proxy plugin that is clip: the snapshot proxy at the daemon's address, else the
// one named "clip", else the one CRI names. Empty when there is none.
std::string ClipPluginName(const ContainerdSettings& c, const std::string& clip_address) {
  for (const auto& [name, p] : c.proxy_plugins) {
    if (p.type == "snapshot" && SocketPath(p.address) == SocketPath(clip_address)) return name;
  }
  if (c.proxy_plugins.count("clip") > 0) return "clip";
  if (c.proxy_plugins.count(c.cri_snapshotter) > 0) return c.cri_snapshotter;
  return "";
}

std::string ExportOf(const ContainerdSettings& c, const std::string& plugin,
                     const std::string& key) {
  auto p = c.proxy_plugins.find(plugin);
  if (p == c.proxy_plugins.end()) return "";
  auto e = p->second.exports.find(key);
  return e == p->second.exports.end() ? "" : e->second;
}

// Platform strings as containerd's matcher reads them: "linux" is the host's arch.
bool PlatformMatches(absl::string_view configured, absl::string_view host) {
  std::vector<absl::string_view> c = absl::StrSplit(configured, '/');
  std::vector<absl::string_view> h = absl::StrSplit(host, '/');
  if (c.empty() || c[0] != h[0]) return false;
  if (c.size() >= 2 && h.size() >= 2 && c[1] != h[1]) return false;
  return c.size() < 3 || h.size() < 3 || c[2] == h[2];
}

bool Unpacks(const ContainerdSettings& c, absl::string_view snapshotter, absl::string_view host) {
  if (!c.unpack_config.has_value()) return snapshotter == "overlayfs";
  for (const UnpackPlatform& u : *c.unpack_config) {
    if (u.snapshotter == snapshotter && PlatformMatches(u.platform, host)) return true;
  }
  return false;
}

class Report {
 public:
  void Ok(std::string what) { Add(Severity::kOk, std::move(what), ""); }
  void Info(std::string what) { Add(Severity::kInfo, std::move(what), ""); }
  void Warn(std::string what, std::string fix) {
    Add(Severity::kWarning, std::move(what), std::move(fix));
  }
  void Error(std::string what, std::string fix) {
    Add(Severity::kError, std::move(what), std::move(fix));
  }
  std::vector<Finding> Take() { return std::move(findings_); }

 private:
  void Add(Severity s, std::string what, std::string fix) {
    findings_.push_back(Finding{s, std::move(what), std::move(fix)});
  }
  std::vector<Finding> findings_;
};

// Everything Diagnose's parts share.
struct Context {
  const NodeFacts& f;
  const ContainerdSettings& c;
  const DaemonConfig* clip;  // null when its config did not load
  Release release;
  Toml toml;
  std::string plugin;     // clip's proxy plugin name, or "clip" when there is none
  std::string cfile;      // "in /etc/containerd/config.toml"
  std::string clip_file;  // "in /etc/containerd-clip-grpc/config.toml"
  std::string clip_address;
};

void DiagnoseContainerdVersion(const Context& x, Report& r) {
  const NodeFacts& f = x.f;
  if (f.version.ok()) {
    r.Ok(absl::StrCat("containerd ", f.version->text, "; config from ", f.containerd_source));
  } else if (x.release.known) {
    r.Ok(absl::StrCat("containerd ", f.running->version, " (its API; `containerd --version`: ",
                      f.version.status().message(), "); config from ", f.containerd_source));
  } else {
    r.Warn(absl::StrCat("cannot tell containerd's version (", f.version.status().message(),
                        "): the checks assume ", x.release.major, ".", x.release.minor,
                        " from the config's format"),
           "pass --containerd-bin PATH (the containerd the node runs)");
  }
  const std::optional<ContainerdSettings>& file = f.containerd_file;
  if (!file.has_value()) return;
  if (file->version >= 3 && !x.release.AtLeast(2, 0)) {
    r.Error(absl::StrCat(f.containerd_config_path, " is version ", file->version,
                         ", which containerd 1.x reads as version 2: its plugin tables "
                         "(io.containerd.cri.v1.images, ...) are ignored"),
            "write the version 2 tables (deploy/containerd-config.toml) with version = 2");
  } else if (file->version <= 2 && x.release.AtLeast(2, 0)) {
    r.Warn(absl::StrCat(f.containerd_config_path, " is version ", file->version,
                        ": containerd 2.x migrates it in memory at every start"),
           absl::StrCat("containerd --config ", f.containerd_config_path,
                        " config migrate > new.toml, check it, and replace the file with it "
                        "(version = 3; or start from deploy/containerd-config-v3.toml)"));
  }
}

void DiagnoseRunningContainerd(const Context& x, Report& r) {
  const NodeFacts& f = x.f;
  if (!f.running.ok()) {
    r.Error(absl::StrCat("containerd does not answer at ", f.containerd_address, ": ",
                         f.running.status().message()),
            "start containerd (systemctl start containerd), or pass --containerd-address "
            "SOCKET");
    return;
  }
  r.Ok(absl::StrCat("containerd ", f.running->version, " answers at ", f.containerd_address));
  if (f.version.ok()) {
    absl::StatusOr<ContainerdVersion> running = ParseContainerdVersion(f.running->version);
    if (running.ok() &&
        (running->major != f.version->major || running->minor != f.version->minor)) {
      r.Warn(absl::StrCat("the running containerd is ", f.running->version, ", the binary ",
                          f.version->text, ": the checks follow the binary"),
             "restart containerd (systemctl restart containerd), or pass --containerd-bin "
             "the running one");
    }
  }
  if (!f.running->plugins.ok()) {
    r.Info(
        absl::StrCat("cannot list containerd's plugins: ", f.running->plugins.status().message()));
    return;
  }
  const RunningContainerd::Plugin* loaded = nullptr;
  for (const RunningContainerd::Plugin& p : *f.running->plugins) {
    if (p.type == "io.containerd.snapshotter.v1" && p.id == x.plugin) loaded = &p;
  }
  if (x.c.proxy_plugins.count(x.plugin) == 0) return;  // the proxy finding says it
  if (loaded == nullptr) {
    r.Error(absl::StrCat("the running containerd has no snapshotter \"", x.plugin,
                         "\": it started before ", x.toml.Proxy(x.plugin), " was configured"),
            "restart containerd (systemctl restart containerd)");
    return;
  }
  if (!loaded->init_error.empty()) {
    r.Error(absl::StrCat("containerd could not load snapshotter \"", x.plugin,
                         "\": ", loaded->init_error),
            absl::StrCat("correct ", x.toml.Proxy(x.plugin), " ", x.cfile,
                         ", then restart containerd"));
    return;
  }
  // Exports the running containerd has that differ from its config: it was not restarted.
  for (const char* key : {"address", "root", "enable_remote_snapshot_annotations"}) {
    auto running = loaded->exports.find(key);
    if (running == loaded->exports.end()) continue;  // 1.6 exports the address only
    const std::string configured = std::string(key) == "address"
                                       ? x.c.proxy_plugins.at(x.plugin).address
                                       : ExportOf(x.c, x.plugin, key);
    if (running->second != configured) {
      r.Warn(
          absl::StrCat("containerd runs with ", x.plugin, " ", key, " = \"", running->second,
                       "\" but its config says \"", configured, "\": it was not restarted since"),
          "restart containerd (systemctl restart containerd)");
    }
  }
}

void DiagnoseProxyPlugin(const Context& x, Report& r) {
  auto it = x.c.proxy_plugins.find(x.plugin);
  if (it == x.c.proxy_plugins.end()) {
    r.Error(
        "containerd has no proxy plugin for the clip daemon: nothing reaches clip",
        absl::StrCat(x.cfile, ": add ", x.toml.Proxy("clip"), " type = ", x.toml.Str("snapshot"),
                     ", address = ", x.toml.Str(x.clip_address), "; then restart containerd"));
    return;
  }
  const ProxyPlugin& p = it->second;
  bool fine = true;
  if (p.type != "snapshot") {
    r.Error(
        absl::StrCat(x.toml.Proxy(x.plugin), " type = \"", p.type, "\", not \"snapshot\""),
        absl::StrCat(x.cfile, ": ", x.toml.Proxy(x.plugin), " type = ", x.toml.Str("snapshot")));
    fine = false;
  }
  if (SocketPath(p.address) != SocketPath(x.clip_address)) {
    r.Error(absl::StrCat(x.toml.Proxy(x.plugin), " address = \"", p.address,
                         "\", but the clip daemon's address is \"", x.clip_address, "\""),
            absl::StrCat(x.cfile, ": ", x.toml.Proxy(x.plugin),
                         " address = ", x.toml.Str(x.clip_address), " (or address = \"", p.address,
                         "\" ", x.clip_file, "); then restart containerd"));
    fine = false;
  }
  for (const auto& [key, value] : p.exports) {
    if (value == "<not a string>") {
      r.Error(absl::StrCat(x.toml.Exports(x.plugin), " ", key,
                           " is not a string: containerd refuses the config"),
              absl::StrCat(x.cfile, ": ", x.toml.Exports(x.plugin), " ", key, " = ",
                           x.toml.Str("true"), " (quoted)"));
      fine = false;
    }
  }
  if (fine) {
    r.Ok(absl::StrCat(x.toml.Proxy(x.plugin), " points at the clip daemon (", x.clip_address, ")"));
  }
}

// Whether and why containerd 2.x's transfer service cannot pull lazily into clip: the
// labels (exports) and the unpack platform.
std::vector<std::pair<std::string, std::string>> TransferGaps(const Context& x) {
  std::vector<std::pair<std::string, std::string>> gaps;
  if (ExportOf(x.c, x.plugin, "enable_remote_snapshot_annotations") != "true") {
    gaps.emplace_back(absl::StrCat("the transfer service passes clip no remote-snapshot labels (",
                                   x.toml.Exports(x.plugin),
                                   " enable_remote_snapshot_annotations is not \"true\")"),
                      absl::StrCat(x.cfile, ": ", x.toml.Exports(x.plugin),
                                   " enable_remote_snapshot_annotations = ", x.toml.Str("true")));
  }
  if (!Unpacks(x.c, x.plugin, x.f.host_platform)) {
    std::string fix =
        absl::StrCat(x.cfile, ": add ", x.toml.UnpackConfig(x.f.host_platform, x.plugin));
    if (!x.c.unpack_config.has_value() || !Unpacks(x.c, "overlayfs", x.f.host_platform)) {
      absl::StrAppend(&fix, " and ", x.toml.UnpackConfig(x.f.host_platform, "overlayfs"),
                      " (the table replaces the default)");
    }
    gaps.emplace_back(absl::StrCat("the transfer service does not unpack ", x.f.host_platform,
                                   " images to \"", x.plugin,
                                   "\" (no unpack_config entry): pulls fail with \"no unpack "
                                   "platforms defined\""),
                      fix);
  }
  return gaps;
}

void DiagnoseCri(const Context& x, Report& r) {
  const ContainerdSettings& c = x.c;
  if (!c.cri_enabled) {
    r.Info("containerd's CRI plugin is disabled (disabled_plugins): no Kubernetes checks");
    return;
  }
  const bool v2x = x.release.AtLeast(2, 0);
  const Toml cri_toml{v2x};  // 2.x: the version 3 tables, whatever the file's version
  if (c.cri_snapshotter != x.plugin) {
    std::string why;
    const std::optional<ContainerdSettings>& file = x.f.containerd_file;
    std::string fix = absl::StrCat(x.cfile, ": ", cri_toml.CriImages(),
                                   " snapshotter = ", cri_toml.Str(x.plugin));
    if (v2x && file.has_value() && file->version <= 2 && file->cri_snapshotter == x.plugin &&
        !file->v2_cri_runtimes) {
      why = absl::StrCat(" (the file's version 2 [plugins.\"", kCriV2,
                         "\".containerd] snapshotter is not migrated: containerd 2.x moves it "
                         "only when [plugins.\"",
                         kCriV2, "\".containerd.runtimes] exists)");
      absl::StrAppend(&fix, " (version 3), or add [plugins.\"", kCriV2,
                      "\".containerd.runtimes.runc] runtime_type = \"io.containerd.runc.v2\"");
    }
    r.Error(absl::StrCat("CRI's snapshotter is \"", c.cri_snapshotter, "\", not \"", x.plugin,
                         "\": Kubernetes pulls never reach clip", why),
            fix);
    return;
  }
  const std::string annotations_fix =
      absl::StrCat(x.cfile, ": ", cri_toml.CriImages(), " disable_snapshot_annotations = false");
  if (!x.release.AtLeast(2, 1)) {
    // 1.6, 1.7 and 2.0: the CRI plugin pulls itself, labels only with annotations.
    if (c.disable_snapshot_annotations) {
      r.Error(
          "CRI passes no snapshot annotations (disable_snapshot_annotations = true): "
          "Kubernetes pulls download every layer",
          annotations_fix);
    } else {
      r.Ok(absl::StrCat("CRI pulls into \"", x.plugin, "\" with snapshot annotations"));
    }
    return;
  }
  if (!c.local_pull_reasons.empty()) {
    const std::string reasons = absl::StrJoin(c.local_pull_reasons, ", ");
    if (c.disable_snapshot_annotations) {
      r.Error(absl::StrCat("CRI pulls locally (", reasons,
                           ") without snapshot annotations: Kubernetes pulls download every "
                           "layer"),
              annotations_fix);
    } else {
      r.Ok(absl::StrCat("CRI pulls into \"", x.plugin, "\" itself (local pull: ", reasons,
                        ") with snapshot annotations"));
    }
    return;
  }
  std::vector<std::pair<std::string, std::string>> gaps = TransferGaps(x);
  for (auto& [what, fix] : gaps) {
    r.Error(absl::StrCat("CRI pulls through the transfer service, and ", what),
            absl::StrCat(fix, "; or make CRI pull locally with ", cri_toml.CriImages(),
                         " disable_snapshot_annotations = false"));
  }
  if (gaps.empty()) {
    r.Ok(absl::StrCat("CRI pulls through the transfer service, which unpacks to \"", x.plugin,
                      "\" with remote-snapshot labels"));
  }
}

// containerd 2.x's `ctr image pull` (the transfer service) when CRI does not depend on it.
void DiagnoseCtrTransfer(const Context& x, Report& r) {
  if (!x.release.AtLeast(2, 0)) return;
  const bool cri_transfer = x.c.cri_enabled && x.c.cri_snapshotter == x.plugin &&
                            x.release.AtLeast(2, 1) && x.c.local_pull_reasons.empty();
  if (!cri_transfer) {
    for (auto& [what, fix] : TransferGaps(x)) {
      r.Warn(absl::StrCat("`ctr image pull --snapshotter ", x.plugin, "`: ", what), fix);
    }
  }
  if (x.c.unpack_config.has_value() && !Unpacks(x.c, "overlayfs", x.f.host_platform)) {
    r.Warn(absl::StrCat("unpack_config has no ", x.f.host_platform,
                        " entry for overlayfs: pulls to the default snapshotter fail with \"no "
                        "unpack platforms defined\""),
           absl::StrCat(x.cfile, ": add ", x.toml.UnpackConfig(x.f.host_platform, "overlayfs")));
  }
}

void DiagnoseHosts(const Context& x, Report& r) {
  if (!x.c.cri_enabled || x.clip == nullptr) return;
  const Toml cri_toml{x.release.AtLeast(2, 0)};
  std::vector<std::string> dirs;
  for (absl::string_view d : absl::StrSplit(x.c.cri_config_path, ':', absl::SkipEmpty())) {
    dirs.push_back(CleanPath(d));
  }
  const std::string clip_dir = CleanPath(x.clip->hosts_dir);
  if (dirs.empty() && clip_dir.empty()) {
    r.Ok("neither CRI nor clip reads a hosts.toml directory: both reach registries directly");
    return;
  }
  if (dirs.size() == 1 && dirs[0] == clip_dir) {
    r.Ok(absl::StrCat("CRI and clip read the same hosts.toml directory (", clip_dir, ")"));
    return;
  }
  const std::string what =
      absl::StrCat("CRI reads registry hosts from \"", x.c.cri_config_path, "\", clip from \"",
                   x.clip->hosts_dir,
                   "\": mirrors, CAs and credentials can differ between the pull and clip's "
                   "lazy reads");
  if (dirs.empty()) {
    r.Warn(what, absl::StrCat(x.cfile, ": ", cri_toml.CriRegistry(),
                              " config_path = ", cri_toml.Str(clip_dir)));
  } else {
    r.Warn(what, absl::StrCat(x.clip_file, ": hosts_dir = \"", dirs[0], "\""));
  }
}

void DiagnoseImageFs(const Context& x, Report& r) {
  if (!x.c.cri_enabled || x.clip == nullptr || x.c.cri_snapshotter != x.plugin) return;
  const NodeFacts& f = x.f;
  if (!f.clip_root_real.ok()) {
    r.Warn(absl::StrCat("cannot check CRI's image filesystem: clip's root ", x.clip->root, ": ",
                        f.clip_root_real.status().message()),
           "start the clip daemon (it creates its root)");
    return;
  }
  if (f.image_fs_real.ok() && *f.image_fs_real == *f.clip_root_real) {
    r.Ok(absl::StrCat("CRI reports ", f.image_fs_path,
                      " as the image filesystem: clip's root, so kubelet's image GC sees clip's "
                      "disk"));
    return;
  }
  const std::string what = absl::StrCat(
      "CRI reports ", f.image_fs_path, " as the image filesystem, which ",
      f.image_fs_real.ok()
          ? absl::StrCat("is ", *f.image_fs_real)
          : absl::StrCat("cannot be resolved (", f.image_fs_real.status().message(), ")"),
      ", not clip's root ", x.clip->root, ": kubelet's image GC and eviction watch the wrong disk");
  if (x.release.AtLeast(1, 7)) {
    r.Warn(what, absl::StrCat(x.cfile, ": ", x.toml.Exports(x.plugin),
                              " root = ", x.toml.Str(x.clip->root)));
  } else if (CleanPath(x.clip->containerd_root) != CleanPath(x.c.root)) {
    r.Warn(what, absl::StrCat(x.clip_file, ": containerd_root = \"", x.c.root,
                              "\" (containerd 1.6 ignores exports.root)"));
  } else if (x.plugin != "clip") {
    r.Warn(what, absl::StrCat("name the proxy plugin clip: ", x.toml.Proxy("clip"),
                              " (the daemon keeps ", x.c.root, "/", kImageFsDirName, ")"));
  } else {
    r.Warn(what, absl::StrCat("restart the clip daemon: it makes ", f.image_fs_path,
                              " a symlink to its root (a real directory there stays: remove it "
                              "first)"));
  }
}

void DiagnoseClipDaemon(const Context& x, Report& r) {
  const NodeFacts& f = x.f;
  if (x.clip == nullptr) {
    r.Error(absl::StrCat("cannot read the clip daemon's config: ", f.clip.status().message()),
            absl::StrCat("correct ", f.clip_config_path, " (the daemon refuses it too)"));
    return;
  }
  if (!f.clip_config_exists) {
    r.Info(absl::StrCat("no ", f.clip_config_path, ": the daemon's defaults apply"));
  }
  if (f.snapshotter.ok()) {
    r.Ok(absl::StrCat("the clip daemon ",
                      f.daemon.ok() ? absl::StrCat("(pid ", f.daemon->pid, ") ") : "",
                      "answers at ", x.clip_address));
  } else {
    r.Error(absl::StrCat("the clip daemon does not answer at ", x.clip_address, ": ",
                         f.snapshotter.message()),
            "start it (systemctl start containerd-clip-grpc), or pass --config with the "
            "daemon's config");
  }
}

void DiagnoseTakeover(const Context& x, Report& r) {
  if (x.clip == nullptr) return;
  const DaemonConfig& d = *x.clip;
  const NodeFacts& f = x.f;
  if (!d.takeover) {
    r.Warn(
        "takeover = false: a restart, crash or upgrade of the clip daemon ends every lazy "
        "mount under running containers",
        absl::StrCat(x.clip_file, ": takeover = true"));
    return;
  }
  if (f.holder.has_value()) {
    const std::string socket =
        d.fd_holder_socket.empty() ? d.root + "/fd-holder.sock" : d.fd_holder_socket;
    if (!f.holder->ok()) {
      r.Error(absl::StrCat("takeover = true, but no fd holder answers at ", socket, " (",
                           f.holder->status().message(),
                           "): mounts die with the daemon at its next restart"),
              absl::StrCat(
                  "restart the clip daemon: it starts clip-fd-holder (fd_holder_binary ",
                  d.fd_holder_binary.empty() ? "beside containerd-clip-grpc" : d.fd_holder_binary,
                  "; install it there)"));
      return;
    }
    const FdHolderState& h = **f.holder;
    if (f.daemon.ok() && !h.holds_listener) {
      r.Warn(absl::StrCat("the fd holder at ", socket, " (pid ", h.pid,
                          ") does not hold the daemon's socket: the daemon uses another store"),
             absl::StrCat(x.clip_file, ": fd_store = \"holder\", fd_holder_socket = \"", socket,
                          "\"; then restart the daemon"));
      return;
    }
    const int mounts = h.entries - (h.holds_listener ? 1 : 0);
    r.Ok(absl::StrCat("fd holder pid ", h.pid, " at ", socket, " keeps ",
                      h.holds_listener ? "the daemon's socket and " : "", mounts,
                      " mount(s) across daemon restarts"));
    return;
  }
  if (!f.daemon.ok()) {
    r.Warn(absl::StrCat("cannot check systemd's fd store: no running daemon (",
                        f.daemon.status().message(), ")"),
           "start the clip daemon (systemctl start containerd-clip-grpc)");
    return;
  }
  if (f.daemon->notify_socket.empty()) {
    r.Error(absl::StrCat("fd_store = \"", d.fd_store,
                         "\" wants systemd's fd store, but the daemon (pid ", f.daemon->pid,
                         ") has no $NOTIFY_SOCKET: mounts die with it"),
            "run it from deploy/systemd/containerd-clip-grpc.service (Type=notify, "
            "FileDescriptorStoreMax=16384), or set fd_store = \"holder\"");
    return;
  }
  const std::string unit = f.daemon->unit.empty() ? "its unit" : f.daemon->unit;
  if (!f.fd_store_max.has_value() || !f.fd_store_max->ok()) {
    r.Warn(absl::StrCat("cannot ask systemd about ", unit, "'s fd store",
                        f.fd_store_max.has_value()
                            ? absl::StrCat(": ", f.fd_store_max->status().message())
                            : ""),
           absl::StrCat("check that ", unit, " sets FileDescriptorStoreMax=16384 in [Service]"));
    return;
  }
  int64_t max = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(**f.fd_store_max), &max) || max <= 0) {
    r.Error(absl::StrCat(
                unit, " has FileDescriptorStoreMax=", absl::StripAsciiWhitespace(**f.fd_store_max),
                ": systemd keeps none of the daemon's fds"),
            absl::StrCat("FileDescriptorStoreMax=16384 in [Service] of ", unit,
                         "; systemctl daemon-reload; restart the daemon"));
    return;
  }
  r.Ok(absl::StrCat("systemd's fd store of ", unit, " (FileDescriptorStoreMax=", max,
                    ") keeps the daemon's fds across restarts"));
}

void DiagnoseKernel(const Context& x, Report& r) {
  const KernelFuse& k = x.f.fuse;
  if (!k.device) {
    r.Error("/dev/fuse is missing: no layer can be mounted lazily",
            "modprobe fuse (CONFIG_FUSE_FS)");
    return;
  }
  const std::string proto =
      k.major > 0 ? absl::StrCat("FUSE ", k.major, ".", k.minor, ", ", k.how) : k.how;
  if (k.resend.value_or(false)) {
    r.Ok(absl::StrCat("the kernel has FUSE_NOTIFY_RESEND (", proto,
                      "): requests in flight at a daemon restart are resent"));
  } else {
    r.Warn(absl::StrCat(
               k.resend.has_value() ? "the kernel lacks" : "cannot tell whether the kernel has",
               " FUSE_NOTIFY_RESEND (", proto,
               "): requests in flight when the daemon restarts hang forever, "
               "unkillable (D state)"),
           "Linux 6.9 or later");
  }
  if (k.passthrough.value_or(false)) {
    r.Ok(absl::StrCat("the kernel offers FUSE passthrough (", proto,
                      "; this build of clip does not use it yet: Debian's libfuse 3.14 has no "
                      "API for it)"));
  } else {
    r.Warn(absl::StrCat(k.passthrough.has_value() ? "the kernel lacks"
                                                  : "cannot tell whether the kernel has",
                        " FUSE passthrough (", proto,
                        "): once clip serves completed layers through passthrough, their "
                        "reads will still go through the daemon here"),
           "Linux 6.9 or later with CONFIG_FUSE_PASSTHROUGH=y");
  }
}

void DiagnoseTrust(const Context& x, Report& r) {
  if (x.clip == nullptr) return;
  const DaemonConfig& d = *x.clip;
  if (d.index_trust == "referrers") {
    r.Warn(
        "index_trust = \"referrers\": the node believes any OCI referrer's index, so anyone "
        "who can push to an image's repository can change what its containers see",
        absl::StrCat(x.clip_file,
                     ": index_trust = \"bound\" (publish with `clipctl index "
                     "--push`)"));
  } else if (d.index_trust == "fleet") {
    r.Info(absl::StrCat(
        "index_trust = \"fleet\": the node also believes indexes and profiles other nodes put "
        "in the remote cache; whoever can write to ",
        d.remote_cache.empty() ? "it (no remote_cache set: none now)" : d.remote_cache,
        " can change what containers see"));
  } else {
    r.Ok(absl::StrCat("index_trust = \"", d.index_trust,
                      "\": only indexes an image's binding proves, or this node built"));
  }
}

}  // namespace

std::string FormatFinding(const Finding& finding) {
  static constexpr const char* kNames[] = {"ok", "info", "warning", "error"};
  std::string line = absl::StrCat(kNames[static_cast<int>(finding.severity)], ": ", finding.what);
  if (!finding.fix.empty()) absl::StrAppend(&line, " -- fix: ", finding.fix);
  return line;
}

absl::StatusOr<ContainerdVersion> ParseContainerdVersion(absl::string_view output) {
  std::vector<absl::string_view> words = absl::StrSplit(
      absl::StripAsciiWhitespace(output), absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  // `containerd --version`: "containerd <module> <version> <revision>"; the API: "<version>".
  absl::string_view v;
  if (words.size() >= 3 && words[0] == "containerd") {
    v = words[2];
  } else if (!words.empty()) {
    v = words[0];
  }
  ContainerdVersion out;
  out.text = std::string(v);
  absl::ConsumePrefix(&v, "v");
  std::vector<absl::string_view> parts = absl::StrSplit(v, absl::MaxSplits('.', 2));
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &out.major)) {
    return absl::InvalidArgumentError(absl::StrCat("not a containerd version: \"", output, "\""));
  }
  absl::string_view minor = parts[1];
  size_t digits = 0;
  while (digits < minor.size() && absl::ascii_isdigit(minor[digits])) ++digits;
  if (digits == 0 || !absl::SimpleAtoi(minor.substr(0, digits), &out.minor)) {
    return absl::InvalidArgumentError(absl::StrCat("not a containerd version: \"", output, "\""));
  }
  return out;
}

absl::StatusOr<ContainerdSettings> ParseContainerdConfig(const std::string& text,
                                                         const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", std::string(e.description())));
  }
  ContainerdSettings s;
  s.version = static_cast<int>(Int(&root, "version").value_or(1));
  s.root = String(&root, "root").value_or(s.root);
  s.address = String(Table(&root, {"grpc"}), "address").value_or(s.address);
  if (const toml::node* n = root.get("disabled_plugins"); n != nullptr && n->is_array()) {
    for (const toml::node& p : *n->as_array()) {
      const std::string id = p.value_or(std::string());
      if (id == kCriV2 || id == "cri" || id == kCriImagesV3) s.cri_enabled = false;
    }
  }
  const toml::table* plugins = Table(&root, {"plugins"});
  // The CRI image settings: one table in version 3; in 1 and 2 the CRI plugin's table
  // (pull settings) and its `containerd` table (snapshotter, annotations).
  const toml::table* images;
  const toml::table* snapshot;
  if (s.version >= 3) {
    images = snapshot = Table(plugins, {kCriImagesV3});
  } else {
    images = Table(plugins, {s.version == 2 ? kCriV2 : "cri"});
    snapshot = Table(images, {"containerd"});
    s.v2_cri_runtimes = Table(snapshot, {"runtimes"}) != nullptr;
  }
  s.cri_snapshotter = String(snapshot, "snapshotter").value_or(s.cri_snapshotter);
  s.disable_snapshot_annotations =
      Bool(snapshot, "disable_snapshot_annotations").value_or(s.disable_snapshot_annotations);
  const toml::table* registry = Table(images, {"registry"});
  s.cri_config_path = String(registry, "config_path").value_or("");
  // What containerd 2.1 names when it falls back to the local pull (verified with 2.1.9).
  if (Bool(images, "use_local_image_pull").value_or(false)) {
    s.local_pull_reasons.push_back("use_local_image_pull");
  }
  if (!s.disable_snapshot_annotations) s.local_pull_reasons.push_back("DisableSnapshotAnnotations");
  if (Bool(snapshot, "discard_unpacked_layers").value_or(false)) {
    s.local_pull_reasons.push_back("DiscardUnpackedLayers");
  }
  if (Bool(images, "image_pull_with_sync_fs").value_or(false)) {
    s.local_pull_reasons.push_back("ImagePullWithSyncFs");
  }
  if (Int(images, "max_concurrent_downloads").value_or(kDefaultMaxConcurrentDownloads) !=
      kDefaultMaxConcurrentDownloads) {
    s.local_pull_reasons.push_back("MaxConcurrentDownloads");
  }
  if (NonEmptyTable(registry, "mirrors")) s.local_pull_reasons.push_back("Registry.Mirrors");
  if (NonEmptyTable(registry, "configs") || NonEmptyTable(registry, "auths")) {
    s.local_pull_reasons.push_back("Registry.Configs");
  }
  if (const toml::table* transfer = Table(plugins, {kTransfer})) {
    if (const toml::node* n = transfer->get("unpack_config"); n != nullptr && n->is_array()) {
      s.unpack_config.emplace();
      for (const toml::node& e : *n->as_array()) {
        const toml::table* t = e.as_table();
        s.unpack_config->push_back(UnpackPlatform{String(t, "platform").value_or(""),
                                                  String(t, "snapshotter").value_or("")});
      }
    }
  }
  if (const toml::table* proxies = Table(&root, {"proxy_plugins"})) {
    for (const auto& [name, node] : *proxies) {
      const toml::table* t = node.as_table();
      if (t == nullptr) continue;
      ProxyPlugin p;
      p.type = String(t, "type").value_or("");
      p.address = String(t, "address").value_or("");
      if (const toml::table* e = Table(t, {"exports"})) {
        for (const auto& [key, value] : *e) {
          p.exports[std::string(key.str())] =
              value.is_string() ? value.as_string()->get() : "<not a string>";
        }
      }
      s.proxy_plugins[std::string(name.str())] = std::move(p);
    }
  }
  return s;
}

NodeFacts GatherNodeFacts(const DoctorOptions& o, DoctorProbes& probes) {
  NodeFacts f;
  f.containerd_config_path = o.containerd_config;
  f.clip_config_path = o.clip_config;
  f.host_platform = probes.HostPlatform();

  // containerd: its release, the file as written and the effective config.
  absl::StatusOr<std::string> version = probes.Run({o.containerd_bin, "--version"});
  f.version = version.ok() ? ParseContainerdVersion(*version) : version.status();
  absl::StatusOr<std::string> file = probes.ReadFile(o.containerd_config);
  absl::StatusOr<ContainerdSettings> from_file =
      file.ok() ? ParseContainerdConfig(*file, o.containerd_config)
                : absl::StatusOr<ContainerdSettings>(file.status());
  if (from_file.ok()) f.containerd_file = *from_file;
  std::vector<std::string> dump = {o.containerd_bin};
  if (o.containerd_config_explicit || file.ok()) {
    dump.insert(dump.end(), {"--config", o.containerd_config});
  }
  dump.insert(dump.end(), {"config", "dump"});
  absl::StatusOr<std::string> dumped = probes.Run(dump);
  if (dumped.ok()) {
    f.containerd = ParseContainerdConfig(*dumped, "containerd config dump");
    f.containerd_source = "`containerd config dump`";
  } else if (f.version.ok() && file.ok()) {
    // containerd runs but refuses its config: so would the daemon.
    f.containerd = absl::InvalidArgumentError(
        absl::StrCat("containerd refuses ", o.containerd_config, ": ", dumped.status().message()));
    f.containerd_source = o.containerd_config;
  } else if (file.ok()) {
    f.containerd = from_file;
    f.containerd_source = absl::StrCat(
        o.containerd_config, " (no `containerd config dump`: ", dumped.status().message(), ")");
  } else if (absl::IsNotFound(file.status()) && !o.containerd_config_explicit) {
    f.containerd = ContainerdSettings{};
    f.containerd_source = absl::StrCat("containerd's defaults (no ", o.containerd_config, ")");
  } else {
    f.containerd = file.status();
  }
  f.containerd_address = !o.containerd_address.empty() ? o.containerd_address
                         : f.containerd.ok()           ? f.containerd->address
                                                       : ContainerdSettings{}.address;
  f.running = probes.Containerd(SocketPath(f.containerd_address));
  if (f.containerd.ok() && !dumped.ok() && f.containerd->version <= 2) {
    // Without a dump, do as containerd 2.x's migration of a version 2 file does: the CRI
    // snapshotter settings move only when the runtimes table exists.
    if (ReleaseOf(f).AtLeast(2, 0) && !f.containerd->v2_cri_runtimes) {
      const ContainerdSettings defaults;
      f.containerd->cri_snapshotter = defaults.cri_snapshotter;
      f.containerd->disable_snapshot_annotations = defaults.disable_snapshot_annotations;
    }
  }

  // The clip daemon.
  absl::StatusOr<std::string> clip_text = probes.ReadFile(o.clip_config);
  f.clip_config_exists = clip_text.ok();
  if (clip_text.ok()) {
    f.clip = ParseDaemonConfig(*clip_text, o.clip_config);
  } else if (absl::IsNotFound(clip_text.status()) && !o.clip_config_explicit) {
    f.clip = DaemonConfig{};
  } else {
    f.clip = clip_text.status();
  }
  if (f.clip.ok()) {
    const DaemonConfig& d = *f.clip;
    f.snapshotter = probes.Snapshotter(SocketPath(d.address));
    f.daemon = probes.Daemon(d.root);
    if (d.takeover) {
      const bool systemd = d.fd_store == "systemd" || (d.fd_store == "auto" && f.daemon.ok() &&
                                                       !f.daemon->notify_socket.empty());
      if (!systemd) {
        f.holder = probes.FdHolder(d.fd_holder_socket.empty() ? d.root + "/fd-holder.sock"
                                                              : d.fd_holder_socket);
      } else if (f.daemon.ok() && !f.daemon->unit.empty()) {
        f.fd_store_max = probes.Run(
            {"systemctl", "show", "--property=FileDescriptorStoreMax", "--value", f.daemon->unit});
      }
    }
    f.clip_root_real = probes.RealPath(d.root);
    if (f.containerd.ok()) {
      const ContainerdSettings& c = *f.containerd;
      std::string plugin = ClipPluginName(c, d.address);
      if (plugin.empty()) plugin = "clip";
      const std::string root_export = ExportOf(c, plugin, "root");
      f.image_fs_path = ReleaseOf(f).AtLeast(1, 7) && !root_export.empty()
                            ? root_export
                            : absl::StrCat(c.root, "/io.containerd.snapshotter.v1.", plugin);
      f.image_fs_real = probes.RealPath(f.image_fs_path);
    }
  }
  f.fuse = probes.Fuse();
  return f;
}

std::vector<Finding> Diagnose(const NodeFacts& f) {
  Report r;
  if (!f.containerd.ok()) {
    r.Error(absl::StrCat("cannot read containerd's config: ", f.containerd.status().message()),
            absl::StrCat("correct ", f.containerd_config_path,
                         " (containerd refuses it too), or pass --containerd-config"));
  }
  const ContainerdSettings fallback;
  const ContainerdSettings& c = f.containerd.ok() ? *f.containerd : fallback;
  const DaemonConfig* clip = f.clip.ok() ? &*f.clip : nullptr;
  const std::string clip_address = clip != nullptr ? clip->address : kDefaultAddress;
  std::string plugin = ClipPluginName(c, clip_address);
  if (plugin.empty()) plugin = "clip";
  const Release release = ReleaseOf(f);
  const Context x{f,
                  c,
                  clip,
                  release,
                  Toml{release.AtLeast(2, 0)},
                  plugin,
                  absl::StrCat("in ", f.containerd_config_path),
                  absl::StrCat("in ", f.clip_config_path),
                  clip_address};
  if (f.containerd.ok()) {
    DiagnoseContainerdVersion(x, r);
    DiagnoseProxyPlugin(x, r);
  }
  DiagnoseRunningContainerd(x, r);
  if (f.containerd.ok()) {
    DiagnoseCri(x, r);
    DiagnoseCtrTransfer(x, r);
    DiagnoseHosts(x, r);
    DiagnoseImageFs(x, r);
  }
  DiagnoseClipDaemon(x, r);
  DiagnoseTakeover(x, r);
  DiagnoseKernel(x, r);
  DiagnoseTrust(x, r);
  return r.Take();
}

int DoctorCommand(const DoctorOptions& options, DoctorProbes& probes, std::ostream& out) {
  const std::vector<Finding> findings = Diagnose(GatherNodeFacts(options, probes));
  int counts[4] = {0, 0, 0, 0};
  for (const Finding& f : findings) {
    out << FormatFinding(f) << "\n";
    ++counts[static_cast<int>(f.severity)];
  }
  out << "doctor: " << counts[0] << " ok, " << counts[1] << " info, " << counts[2]
      << " warning(s), " << counts[3] << " error(s)";
  if (counts[3] > 0) {
    out << ": this node is not ready for lazy pulls or loses mounts at a daemon restart\n";
  } else {
    out << ": ready for lazy pulls\n";
  }
  out.flush();
  return counts[3] > 0 ? 1 : 0;
}

}  // namespace clip
