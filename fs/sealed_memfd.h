// Sealed memfds: bytes kept in memory only (never in a file), in an fd another process
// can be handed (the fd store, systemd's or clip's holder) and read back, but not change.
//
//   CLIP_ASSIGN_OR_RETURN(int fd, SealedMemfd("clip-cri-credentials", bytes));
//   CLIP_ASSIGN_OR_RETURN(std::string again, ReadSealedMemfd(fd, 1 << 20));
//
// Thread safety: free functions, no shared state.
#ifndef CLIP_FS_SEALED_MEMFD_H_
#define CLIP_FS_SEALED_MEMFD_H_

#include <string>

#include "absl/status/statusor.h"

namespace clip {

// A new memfd holding `bytes`, sealed against writes, growth and shrinking; the caller
// owns the fd (close-on-exec).
absl::StatusOr<int> SealedMemfd(const char* name, const std::string& bytes);

// The bytes of `fd` from its start; kFailedPrecondition when it is not a memfd sealed
// against writes (someone could still change it), kResourceExhausted above `max_bytes`.
absl::StatusOr<std::string> ReadSealedMemfd(int fd, size_t max_bytes);

}  // namespace clip

#endif  // CLIP_FS_SEALED_MEMFD_H_
