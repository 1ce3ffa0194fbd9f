// Build information: clip's version and the versions of the libraries it runs with,
// as `clipctl version` and the daemon's `--version` print them. Bug reports need
// the runtime versions (Debian upgrades shared libraries under a built binary).
//
// Thread safety: pure functions.
#ifndef CLIP_COMMON_BUILD_INFO_H_
#define CLIP_COMMON_BUILD_INFO_H_

#include <string>

namespace clip {

inline constexpr char kClipVersion[] = "0.1.0-dev";

// One "name version" line per component, clip first.
std::string BuildInfo();

}  // namespace clip

#endif  // CLIP_COMMON_BUILD_INFO_H_
