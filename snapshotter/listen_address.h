// ClaimListeningAddress: the daemon's listening unix socket at its configured address,
// whatever a previous daemon left there.
//
// A daemon hands its listener to clip-fd-holder and a new daemon normally gets it back
// from the holder's list. This handles everything else at the address, so a daemon never
// fails to start (or crashes) because of what is left on disk or in another process:
//
// | at the address | outcome |
// |---|---|
// | nothing | bound anew |
// | a socket file nobody listens on (a daemon died without a holder) | replaced |
// | a listener held only by clip-fd-holder processes that no daemon can reach (their own socket
// file is gone, e.g. a wiped root) | taken back with pidfd_getfd, so calls waiting in its backlog
// are served; each such holder is ended when it holds nothing else, else left running (it keeps
// running containers' FUSE connections) with a log line | | a listener held by any other live
// process (another daemon) | kAlreadyExists | | a file that is not a socket | kFailedPrecondition |
//
//   CLIP_ASSIGN_OR_RETURN(ClaimedListener l, ClaimListeningAddress(address, holder_pid));
//
// Thread safety: a plain function; it binds, takes fds and signals orphaned holders.
#ifndef CLIP_SNAPSHOTTER_LISTEN_ADDRESS_H_
#define CLIP_SNAPSHOTTER_LISTEN_ADDRESS_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"

namespace clip {

struct ClaimedListener {
  int fd = -1;              // listening, close-on-exec; the caller owns it
  bool taken_back = false;  // from an unreachable holder (else bound anew)
};

// `current_holder` is the pid of the holder this daemon uses (0: none); it is never
// treated as orphaned. The socket is created 0600 and its directory 0700 when missing.
absl::StatusOr<ClaimedListener> ClaimListeningAddress(const std::string& path,
                                                      pid_t current_holder);

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_LISTEN_ADDRESS_H_
