// TarParser: a streaming, push-based parser of tar archives (ustar, PAX, GNU).
//
// Layers are parsed in one pass while they are inflated, so the parser never sees the
// whole archive: Feed() takes consecutive chunks of any size and calls back once per
// member with its metadata and the offset of its data in the stream. File data is
// skipped, never copied. PAX extended headers (`x`, and global `g`) and GNU long
// names (`L`, `K`) are folded into the member they describe.
//
//   TarParser parser([&](const TarMember& m) { return table.Add(m); });
//   while (...) CLIP_RETURN_IF_ERROR(parser.Feed(chunk));
//   CLIP_RETURN_IF_ERROR(parser.Finish());
//
// Errors: kDataLoss for a corrupt or truncated archive (bad checksum, bad number,
// malformed PAX record), kUnimplemented for sparse and multi-volume members,
// kInvalidArgument for metadata beyond limits (e.g. a 2 MiB long name). A callback
// error stops the parse and is returned as is.
//
// Thread safety: not safe for concurrent use; one parser per stream.
#ifndef CLIP_INDEX_TAR_PARSER_H_
#define CLIP_INDEX_TAR_PARSER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace clip {

enum class TarType {
  kRegular,
  kHardlink,
  kSymlink,
  kCharDevice,
  kBlockDevice,
  kDirectory,
  kFifo,
};

struct TarMember {
  // The member's name as recorded (PAX `path` / GNU long name applied), not normalised.
  std::string path;
  TarType type = TarType::kRegular;
  uint32_t mode = 0;  // mode & 07777
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string uname;
  std::string gname;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t size = 0;         // bytes of data (regular files)
  uint64_t data_offset = 0;  // offset of the first data byte in the tar stream
  std::string linkname;      // symlink or hardlink target
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;  // in archive order
};

class TarParser {
 public:
  static constexpr size_t kBlockSize = 512;
  // Upper bound for one PAX header or GNU long name/link.
  static constexpr uint64_t kMaxMetadataSize = 1 << 20;

  using MemberCallback = std::function<absl::Status(const TarMember&)>;

  explicit TarParser(MemberCallback on_member);

  // Consumes the next bytes of the stream.
  absl::Status Feed(absl::string_view data);
  // Declares the end of the stream: kDataLoss if it ends inside a member.
  absl::Status Finish();

  // Bytes consumed so far.
  uint64_t offset() const { return offset_; }
  // True once the end-of-archive marker (a zero block) has been seen.
  bool at_end() const { return state_ == State::kEnd; }

 private:
  enum class State { kHeader, kSkip, kMetadata, kEnd };
  enum class MetadataKind { kPax, kPaxGlobal, kLongName, kLongLink };

  absl::Status ParseHeader(const char* block);
  absl::Status FinishMetadata();
  absl::Status ApplyPax(absl::string_view records, std::map<std::string, std::string>* out);
  absl::Status EmitMember(TarMember member, uint64_t data_size);

  MemberCallback on_member_;
  State state_ = State::kHeader;
  uint64_t offset_ = 0;
  std::string header_;           // partial header block across Feed calls
  uint64_t skip_remaining_ = 0;  // data + padding left to skip
  MetadataKind metadata_kind_ = MetadataKind::kPax;
  uint64_t metadata_remaining_ = 0;  // metadata bytes (then padding) still to read
  uint64_t metadata_padding_ = 0;
  std::string metadata_;
  // Pending metadata for the next member.
  std::map<std::string, std::string> pax_;
  std::map<std::string, std::string> pax_global_;
  std::string long_name_;
  std::string long_link_;
  bool have_long_name_ = false;
  bool have_long_link_ = false;
};

}  // namespace clip

#endif  // CLIP_INDEX_TAR_PARSER_H_
