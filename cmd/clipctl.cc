// clipctl: the command line of clip. Each subcommand is a thin adapter over a library
// target; errors reach the user on stderr with a non-zero exit status.
#include <iostream>

#include "CLI/CLI.hpp"
#include "cmd/build_info.h"

int main(int argc, char** argv) {
  CLI::App app{"clipctl: lazy container images for containerd (the clip snapshotter)"};
  app.require_subcommand(1);

  CLI::App* version = app.add_subcommand("version", "Print clip's version and its libraries'");
  version->callback([] { std::cout << clip::BuildInfo(); });

  CLI11_PARSE(app, argc, argv);
  return 0;
}
