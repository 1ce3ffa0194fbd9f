// Whole-file helpers: read a file into memory, and write one atomically (temporary name,
// fsync, rename), so a reader never sees half a file, also after a crash.
//
//   CLIP_RETURN_IF_ERROR(WriteFileAtomically("/var/lib/x/index", bytes));
//   CLIP_ASSIGN_OR_RETURN(std::string back, ReadWholeFile("/var/lib/x/index"));
//
// Thread safety: safe for concurrent use (temporary names are unique per process+call).
#ifndef CLIP_COMMON_FILE_IO_H_
#define CLIP_COMMON_FILE_IO_H_

#include <string>

#include "absl/status/statusor.h"

namespace clip {

// kNotFound when `path` does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);
absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes);

}  // namespace clip

#endif  // CLIP_COMMON_FILE_IO_H_
