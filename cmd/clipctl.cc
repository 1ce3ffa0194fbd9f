// clipctl: the command line of clip. Each subcommand is a thin adapter over a library
// function; errors reach the user on stderr with a non-zero exit status.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "cmd/doctor_command.h"
#include "cmd/image_index_command.h"
#include "cmd/index_commands.h"
#include "cmd/layers_command.h"
#include "cmd/lazy_pull.h"
#include "cmd/mount_command.h"
#include "cmd/record_command.h"
#include "common/build_info.h"
#include "common/mountinfo.h"
#include "snapshotter/daemon_config.h"
#include "snapshotter/registry_setup.h"

namespace {

int Report(const absl::Status& status) {
  if (status.ok()) return 0;
  std::cerr << "clipctl: " << status.message() << "\n";
  return 1;
}

// Checkpoint placement, shared by `index IMAGE` and `index build`.
void AddIndexOptions(CLI::App* app, clip::IndexOptions& options) {
  app->add_option("--small-file-interval", options.small_file_interval,
                  "Also a checkpoint every SIZE of small files (e.g. 256K; 0: off), within "
                  "--max-index-ratio")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app->add_option("--max-index-ratio", options.max_index_ratio,
                  "Small-file checkpoints stop where the index would pass this share of the layer")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  CLI::App app{"clipctl: lazy container images for containerd (the clip snapshotter)"};
  app.require_subcommand(1);
  int rc = 0;

  CLI::App* version = app.add_subcommand("version", "Print clip's version and its libraries'");
  version->callback([] { std::cout << clip::BuildInfo(); });

  CLI::App* index = app.add_subcommand(
      "index", "Index an image from its registry (IMAGE_REF [--push]); build and examine indexes");
  index->require_subcommand(0, 1);
  clip::ImageIndexOptions image_index;
  std::string config_path = clip::kDefaultConfigPath;
  std::vector<std::string> plain_http;
  auto* config_opt =
      index->add_option("--config", config_path, "The daemon's TOML (registry hosts, credentials)");
  index->add_option("image", image_index.image, "Image reference (e.g. registry:5000/app:v1)");
  index->add_flag("--push", image_index.push, "Publish the indexes to the image's registry");
  index->add_option("--bind-tag", image_index.bind_tag,
                    "With --push: the tag moved to the bound image index (default: the "
                    "image's own tag)");
  bool no_bind = false;
  index->add_flag("--no-bind", no_bind, "With --push: publish no bound image index");
  index->add_option("--platform", image_index.platform, "os/arch[/variant] (default: the host's)");
  index->add_option("--store", image_index.store_dir,
                    "Also write each index to DIR/<layer hex> (the daemon's <root>/indexes)");
  index->add_option("--profiles", image_index.profiles_dir,
                    "With --push: also publish access profiles from DIR/<layer hex> (the "
                    "daemon's <root>/profiles)");
  index->add_option("--plain-http", plain_http, "Registry host reached over plain HTTP");
  index->add_option("-j,--jobs", image_index.jobs, "Layers indexed at a time");
  AddIndexOptions(index, image_index.index);
  index->callback([&] {
    if (!index->get_subcommands().empty()) return;
    if (image_index.image.empty()) {
      rc = Report(absl::InvalidArgumentError("index: an IMAGE_REF or a subcommand is needed"));
      return;
    }
    absl::StatusOr<clip::DaemonConfig> config =
        clip::LoadDaemonConfig(config_path, config_opt->count() > 0);
    if (!config.ok()) {
      rc = Report(config.status());
      return;
    }
    for (auto& h : plain_http) config->plain_http.push_back(h);
    clip::RegistryClient registry(clip::RegistryOptionsFrom(*config));
    image_index.progress = isatty(STDERR_FILENO);
    image_index.bind = !no_bind;
    rc = Report(clip::ImageIndexCommand(image_index, registry, std::cout, std::cerr));
  });

  std::string layer, output, index_file, path;
  CLI::App* build = index->add_subcommand("build", "Build the index of a layer file");
  build->add_option("--layer", layer, "Layer blob (gzip or plain tar)")->required();
  build->add_option("-o,--output", output, "Index file to write")->required();
  clip::IndexOptions build_index;
  AddIndexOptions(build, build_index);
  build->callback(
      [&] { rc = Report(clip::IndexBuildCommand(layer, output, build_index, std::cout)); });

  CLI::App* inspect = index->add_subcommand("inspect", "List an index like tar -tv");
  inspect->add_option("index", index_file, "Index file")->required();
  bool inspect_spans = false;
  inspect->add_flag("--spans", inspect_spans,
                    "List the spans (N UOFF ULEN COFF CLEN WINDOW), not the entries");
  inspect->callback(
      [&] { rc = Report(clip::IndexInspectCommand(index_file, inspect_spans, std::cout)); });

  CLI::App* cat = index->add_subcommand("cat", "Print one file of a layer through its index");
  cat->add_option("index", index_file, "Index file")->required();
  cat->add_option("--layer", layer, "Layer blob the index was built from")->required();
  cat->add_option("path", path, "Path inside the layer")->required();
  cat->callback([&] { rc = Report(clip::IndexCatCommand(index_file, layer, path, std::cout)); });

  clip::LazyPullOptions pull_options;
  std::vector<std::string> pull_plain_http;
  std::string pull_config = clip::kDefaultConfigPath;
  CLI::App* pull = app.add_subcommand(
      "pull",
      "Pull an image into containerd lazily: layers with a clip index are mounted, not downloaded");
  pull->add_option("image", pull_options.image, "Image reference")->required();
  pull->add_option("--address,-a", pull_options.containerd_address, "containerd's socket");
  pull->add_option("--namespace,-n", pull_options.ns, "containerd namespace");
  pull->add_option("--snapshotter", pull_options.snapshotter, "containerd snapshotter name");
  pull->add_option("--platform", pull_options.platform, "os/arch[/variant] (default: the host's)");
  pull->add_option("--plain-http", pull_plain_http, "Registry host reached over plain HTTP");
  auto* pull_config_opt =
      pull->add_option("--config", pull_config, "The daemon's TOML (registry hosts, credentials)");
  pull->callback([&] {
    absl::StatusOr<clip::DaemonConfig> config =
        clip::LoadDaemonConfig(pull_config, pull_config_opt->count() > 0);
    if (!config.ok()) {
      rc = Report(config.status());
      return;
    }
    for (auto& h : pull_plain_http) config->plain_http.push_back(h);
    clip::RegistryClient registry(clip::RegistryOptionsFrom(*config));
    absl::StatusOr<clip::LazyPullReport> r = clip::LazyPull(pull_options, registry, std::cout);
    if (!r.ok()) {
      rc = Report(r.status());
      return;
    }
    std::cout << "pulled " << pull_options.image << ": " << r->layers << " layers, " << r->lazy
              << " lazy, " << r->extracted << " unpacked, " << r->present << " already present; "
              << r->downloaded_bytes << " layer bytes downloaded\n";
  });

  clip::RecordOptions record_options;
  std::vector<std::string> record_plain_http;
  std::string record_config = clip::kDefaultConfigPath;
  double record_wait = 30;
  CLI::App* record = app.add_subcommand(
      "record",
      "Record an image's access profiles on this node: pull it lazily, run one container of "
      "it (ctr run), keep what each layer read at start (IMAGE [-- CMD...])");
  record->add_option("image", record_options.pull.image, "Image reference")->required();
  record->add_option("command", record_options.command,
                     "The container's command (default: the image's own)");
  record->add_option("--address,-a", record_options.pull.containerd_address, "containerd's socket");
  record->add_option("--namespace,-n", record_options.pull.ns, "containerd namespace");
  record->add_option("--snapshotter", record_options.pull.snapshotter,
                     "containerd snapshotter name");
  record->add_option("--platform", record_options.pull.platform, "os/arch[/variant]");
  record->add_option("--plain-http", record_plain_http, "Registry host reached over plain HTTP");
  record->add_option("--root", record_options.daemon_root,
                     "The clip daemon's root (its profiles are in <root>/profiles)");
  record->add_option("--ctr", record_options.ctr, "containerd's client (default: ctr on PATH)");
  record->add_option("-o,--output", record_options.output_dir,
                     "Copy the profiles to DIR/<layer hex> (for index --push --profiles)");
  record->add_flag("--keep-image", record_options.keep_image,
                   "Keep the image (then wait for the recordings to end)");
  record->add_option("--wait", record_wait, "With --keep-image: seconds to wait (30)");
  auto* record_config_opt = record->add_option("--config", record_config,
                                               "The daemon's TOML (registry hosts, credentials)");
  record->callback([&] {
    absl::StatusOr<clip::DaemonConfig> config =
        clip::LoadDaemonConfig(record_config, record_config_opt->count() > 0);
    if (!config.ok()) {
      rc = Report(config.status());
      return;
    }
    for (auto& h : record_plain_http) config->plain_http.push_back(h);
    if (record_config_opt->count() > 0 && record->get_option("--root")->count() == 0) {
      record_options.daemon_root = config->root;
    }
    record_options.wait = absl::Seconds(record_wait);
    clip::RegistryClient registry(clip::RegistryOptionsFrom(*config));
    rc = Report(clip::RecordCommand(record_options, registry, std::cout));
  });

  clip::MountCommandOptions mount_options;
  CLI::App* mount = app.add_subcommand(
      "mount", "Serve one layer through FUSE in the foreground (until unmounted or Ctrl-C)");
  mount->add_option("--index", mount_options.index_path, "Index file")->required();
  mount
      ->add_option("--layer", mount_options.layer,
                   "Layer file, or blob URL http[s]://HOST/v2/REPO/blobs/sha256:HEX")
      ->required();
  mount->add_option("--cache-dir", mount_options.cache_dir, "Disk cache directory");
  mount->add_option("--threads", mount_options.threads, "FUSE worker threads");
  mount->add_option("--holder", mount_options.holder_socket,
                    "fd holder socket: the mount survives this process (SIGTERM hands over)");
  mount->add_option("--holder-binary", mount_options.holder_binary,
                    "clip-fd-holder to start when none listens at --holder");
  mount->add_flag("--systemd-fd-store", mount_options.systemd_fd_store,
                  "keep the mount's fd in systemd's fd store (under a Type=notify unit)");
  mount->add_option("mountpoint", mount_options.mountpoint, "Where to mount")->required();
  mount->callback([&] { rc = Report(clip::MountCommand(mount_options)); });

  clip::DoctorOptions doctor_options;
  CLI::App* doctor = app.add_subcommand(
      "doctor",
      "Check this node for lazy pulls and restart survival: containerd's and clip's configs, "
      "both sockets, the fd store, the kernel's FUSE (exit 1 on an error)");
  auto* doctor_config_opt =
      doctor->add_option("--config", doctor_options.clip_config, "The clip daemon's TOML");
  auto* doctor_containerd_config_opt = doctor->add_option(
      "--containerd-config", doctor_options.containerd_config, "containerd's config file");
  doctor->add_option("--containerd-bin", doctor_options.containerd_bin,
                     "The containerd binary the node runs (config dump, version)");
  doctor->add_option("--containerd-address", doctor_options.containerd_address,
                     "containerd's socket (default: [grpc] address of its config)");
  doctor->callback([&] {
    doctor_options.clip_config_explicit = doctor_config_opt->count() > 0;
    doctor_options.containerd_config_explicit = doctor_containerd_config_opt->count() > 0;
    rc = clip::DoctorCommand(doctor_options, *clip::SystemDoctorProbes(), std::cout);
  });

  std::string layers_root = "/var/lib/containerd-clip-grpc";
  CLI::App* layers = app.add_subcommand(
      "layers",
      "Each lazily mounted layer of a clip root: lazy, filling (n% on disk) or local (a tree), "
      "its bytes on this node, its FUSE mount, the overlays reading it");
  layers->add_option("--root", layers_root, "The daemon's root");
  layers->callback([&] {
    absl::StatusOr<std::vector<clip::LayerState>> listed =
        clip::ListLayers(layers_root, clip::ReadMountinfo());
    if (listed.ok()) std::cout << clip::FormatLayers(*listed);
    rc = Report(listed.status());
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // app.exit prints the error (or the help); doctor's usage errors exit with 2.
    const int code = app.exit(e);
    return code != 0 && doctor->parsed() ? 2 : code;
  }
  return rc;
}
