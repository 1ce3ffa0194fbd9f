// Helpers for tests that run real servers: start a program in its own session with
// its output in a log file, stop it by PID (SIGTERM, then SIGKILL), pick a free
// loopback port, run a shell command.
//
// Thread safety: functions are safe to call from any thread.
#ifndef CLIP_COMMON_TESTING_SUBPROCESS_H_
#define CLIP_COMMON_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace clip::testing {

// Starts argv[0] (looked up in PATH) with stdout and stderr appended to `log`.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log);
// SIGTERM, wait up to 5 s, then SIGKILL; reaps the child.
void Stop(pid_t pid);
// True while `pid` runs (not a zombie) a program whose argv[0] ends with `program`: a PID
// a test recorded (e.g. clip-fd-holder's, from its pid file; not the test's child) still
// names that process, not one that reused the PID. Check it before signalling such a PID.
bool ProcessRuns(pid_t pid, const std::string& program);
// A free TCP port on 127.0.0.1 (bound and released).
absl::StatusOr<int> PickFreePort();
// Runs a shell command; its stdout, or an error naming its exit status.
absl::StatusOr<std::string> RunCommand(const std::string& command);
// A new private directory under $TEST_TMPDIR (or /tmp).
std::string MakeTempDir(const std::string& prefix = "t");
std::string ReadFileOrEmpty(const std::string& path);

}  // namespace clip::testing

#endif  // CLIP_COMMON_TESTING_SUBPROCESS_H_
