// clipctl: the command line of clip. Each subcommand is a thin adapter over a library
// function; errors reach the user on stderr with a non-zero exit status.
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "cmd/build_info.h"
#include "cmd/index_commands.h"
#include "cmd/mount_command.h"

namespace {

int Report(const absl::Status& status) {
  if (status.ok()) return 0;
  std::cerr << "clipctl: " << status.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  CLI::App app{"clipctl: lazy container images for containerd (the clip snapshotter)"};
  app.require_subcommand(1);
  int rc = 0;

  CLI::App* version = app.add_subcommand("version", "Print clip's version and its libraries'");
  version->callback([] { std::cout << clip::BuildInfo(); });

  CLI::App* index = app.add_subcommand("index", "Build and examine clip indexes");
  index->require_subcommand(1);

  std::string layer, output, index_file, path;
  CLI::App* build = index->add_subcommand("build", "Build the index of a layer file");
  build->add_option("--layer", layer, "Layer blob (gzip or plain tar)")->required();
  build->add_option("-o,--output", output, "Index file to write")->required();
  build->callback([&] { rc = Report(clip::IndexBuildCommand(layer, output, std::cout)); });

  CLI::App* inspect = index->add_subcommand("inspect", "List an index like tar -tv");
  inspect->add_option("index", index_file, "Index file")->required();
  inspect->callback([&] { rc = Report(clip::IndexInspectCommand(index_file, std::cout)); });

  CLI::App* cat = index->add_subcommand("cat", "Print one file of a layer through its index");
  cat->add_option("index", index_file, "Index file")->required();
  cat->add_option("--layer", layer, "Layer blob the index was built from")->required();
  cat->add_option("path", path, "Path inside the layer")->required();
  cat->callback([&] { rc = Report(clip::IndexCatCommand(index_file, layer, path, std::cout)); });

  clip::MountCommandOptions mount_options;
  CLI::App* mount = app.add_subcommand(
      "mount", "Serve one layer through FUSE in the foreground (until unmounted or Ctrl-C)");
  mount->add_option("--index", mount_options.index_path, "Index file")->required();
  mount->add_option("--layer", mount_options.layer,
                    "Layer file, or blob URL http[s]://HOST/v2/REPO/blobs/sha256:HEX")
      ->required();
  mount->add_option("--cache-dir", mount_options.cache_dir, "Disk cache directory");
  mount->add_option("--threads", mount_options.threads, "FUSE worker threads");
  mount->add_option("mountpoint", mount_options.mountpoint, "Where to mount")->required();
  mount->callback([&] { rc = Report(clip::MountCommand(mount_options)); });

  CLI11_PARSE(app, argc, argv);
  return rc;
}
