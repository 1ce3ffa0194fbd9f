// clip-fd-holder: holds the clip daemon's FUSE and listening-socket fds across daemon
// restarts (see fd_holder.h). Started by the daemon when none runs (or by its own
// container in the DaemonSet); ends on `quit` (a full stop) or a signal.
//
//   clip-fd-holder --socket /var/lib/containerd-clip-grpc/fd-holder.sock
#include <signal.h>

#include <cstring>
#include <iostream>
#include <string>

#include "fs/fd_holder.h"

int main(int argc, char** argv) {
  std::string path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
      path = argv[++i];
    } else {
      std::cerr << "usage: clip-fd-holder --socket PATH\n";
      return 2;
    }
  }
  if (path.empty()) {
    std::cerr << "usage: clip-fd-holder --socket PATH\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  absl::Status st = clip::RunFdHolder(path);
  if (!st.ok()) {
    std::cerr << "clip-fd-holder: " << st.message() << "\n";
    return st.code() == absl::StatusCode::kAlreadyExists ? 0 : 1;
  }
  return 0;
}
