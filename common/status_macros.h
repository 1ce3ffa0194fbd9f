// Status propagation macros for absl::Status / absl::StatusOr.
//
// Debian's abseil (20220623) ships no RETURN_IF_ERROR / ASSIGN_OR_RETURN, so clip
// defines its own, prefixed CLIP_ to avoid clashing with any later abseil version.
//
//   absl::StatusOr<Index> LoadIndex(const std::string& path) {
//     CLIP_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
//     CLIP_RETURN_IF_ERROR(CheckMagic(bytes));
//     return Decode(bytes);
//   }
//
// WithContext says where an error happened without losing what it was:
//
//     if (!index.ok()) return WithContext(index.status(), path);  // "<path>: <message>"
//
// Thread safety: macros only, they evaluate their argument once; WithContext is pure.
#ifndef CLIP_COMMON_STATUS_MACROS_H_
#define CLIP_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace clip {

// `status` with "<context>: " before its message; same code and payloads. OK stays OK.
inline absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  absl::Status out(status.code(), absl::StrCat(context, ": ", status.message()));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace clip

// Evaluates `expr` (an absl::Status); returns it from the enclosing function if not OK.
#define CLIP_RETURN_IF_ERROR(expr)                                   \
  do {                                                               \
    ::absl::Status clip_status_ = (expr);                            \
    if (ABSL_PREDICT_FALSE(!clip_status_.ok())) return clip_status_; \
  } while (0)

#define CLIP_STATUS_CONCAT_INNER_(a, b) a##b
#define CLIP_STATUS_CONCAT_(a, b) CLIP_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from the
// enclosing function, else moves the value into `lhs`, which may be a declaration:
//   CLIP_ASSIGN_OR_RETURN(auto reader, FileBlobReader::Open(path));
//   CLIP_ASSIGN_OR_RETURN(size, reader->Size());
#define CLIP_ASSIGN_OR_RETURN(lhs, rexpr) \
  CLIP_ASSIGN_OR_RETURN_IMPL_(CLIP_STATUS_CONCAT_(clip_statusor_, __LINE__), lhs, rexpr)

#define CLIP_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)                      \
  auto statusor = (rexpr);                                                     \
  if (ABSL_PREDICT_FALSE(!statusor.ok())) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // CLIP_COMMON_STATUS_MACROS_H_
