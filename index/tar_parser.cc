#include "index/tar_parser.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace clip {
namespace {

// ustar header field offsets and lengths (POSIX.1-1988 / IEEE 1003.1).
struct Field {
  size_t offset;
  size_t size;
};
constexpr Field kName{0, 100};
constexpr Field kMode{100, 8};
constexpr Field kUid{108, 8};
constexpr Field kGid{116, 8};
constexpr Field kSize{124, 12};
constexpr Field kMtime{136, 12};
constexpr Field kChecksum{148, 8};
constexpr size_t kTypeflag = 156;
constexpr Field kLinkname{157, 100};
constexpr Field kMagic{257, 8};  // magic (6) + version (2)
constexpr Field kUname{265, 32};
constexpr Field kGname{297, 32};
constexpr Field kDevMajor{329, 8};
constexpr Field kDevMinor{337, 8};
constexpr Field kPrefix{345, 155};

constexpr uint64_t kMaxSize = uint64_t{1} << 62;

absl::string_view FieldView(const char* block, Field f) {
  return absl::string_view(block + f.offset, f.size);
}

// A NUL-terminated string field.
std::string FieldString(const char* block, Field f) {
  absl::string_view v = FieldView(block, f);
  size_t nul = v.find('\0');
  return std::string(v.substr(0, nul));
}

// Octal (space/NUL padded) or GNU base-256 (high bit of the first byte set).
absl::StatusOr<int64_t> ParseNumber(const char* block, Field f, absl::string_view what) {
  absl::string_view v = FieldView(block, f);
  auto first = static_cast<unsigned char>(v[0]);
  if (first & 0x80) {
    // Base-256, two's complement, big-endian; 0xff marks a negative number.
    bool negative = first == 0xff;
    uint64_t x = negative ? ~uint64_t{0} : 0;
    for (size_t i = 0; i < v.size(); ++i) {
      auto b = static_cast<unsigned char>(v[i]);
      if (i == 0) b &= 0x7f, b |= negative ? 0x80 : 0;
      if (i + 8 < v.size() && b != (negative ? 0xff : 0)) {
        return absl::DataLossError(absl::StrCat("tar header: ", what, " overflows 64 bits"));
      }
      x = (x << 8) | b;
    }
    return static_cast<int64_t>(x);
  }
  size_t i = 0;
  while (i < v.size() && (v[i] == ' ' || v[i] == '\0')) ++i;
  uint64_t x = 0;
  bool any = false;
  for (; i < v.size() && v[i] >= '0' && v[i] <= '7'; ++i) {
    if (x >> 60) return absl::DataLossError(absl::StrCat("tar header: ", what, " too large"));
    x = x * 8 + static_cast<uint64_t>(v[i] - '0');
    any = true;
  }
  for (; i < v.size(); ++i) {
    if (v[i] != ' ' && v[i] != '\0') {
      return absl::DataLossError(absl::StrCat("tar header: bad octal number in ", what));
    }
  }
  (void)any;  // An all-blank field reads as 0, as GNU tar and Go do.
  return static_cast<int64_t>(x);
}

absl::Status VerifyChecksum(const char* block) {
  CLIP_ASSIGN_OR_RETURN(int64_t want, ParseNumber(block, kChecksum, "checksum"));
  int64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < TarParser::kBlockSize; ++i) {
    bool in_field = i >= kChecksum.offset && i < kChecksum.offset + kChecksum.size;
    char c = in_field ? ' ' : block[i];
    unsigned_sum += static_cast<unsigned char>(c);
    signed_sum += static_cast<signed char>(c);
  }
  if (want != unsigned_sum && want != signed_sum) {
    return absl::DataLossError("tar header: checksum mismatch (corrupt or not a tar archive)");
  }
  return absl::OkStatus();
}

bool IsZeroBlock(const char* block) {
  for (size_t i = 0; i < TarParser::kBlockSize; ++i) {
    if (block[i] != 0) return false;
  }
  return true;
}

uint64_t Padding(uint64_t size) {
  return (TarParser::kBlockSize - size % TarParser::kBlockSize) % TarParser::kBlockSize;
}

// "1700000000.123456789" (PAX mtime; may be negative, fraction optional).
absl::Status ParsePaxTime(absl::string_view v, int64_t* sec, uint32_t* nsec) {
  bool negative = absl::ConsumePrefix(&v, "-");
  absl::string_view whole = v;
  absl::string_view frac;
  size_t dot = v.find('.');
  if (dot != absl::string_view::npos) {
    whole = v.substr(0, dot);
    frac = v.substr(dot + 1);
  }
  uint64_t s = 0;
  if (whole.empty() || !absl::SimpleAtoi(whole, &s) || s > (uint64_t{1} << 62)) {
    return absl::DataLossError("PAX header: bad mtime");
  }
  uint32_t ns = 0;
  for (size_t i = 0; i < frac.size(); ++i) {
    if (frac[i] < '0' || frac[i] > '9') return absl::DataLossError("PAX header: bad mtime");
    if (i < 9) ns = ns * 10 + static_cast<uint32_t>(frac[i] - '0');
  }
  for (size_t i = frac.size(); i < 9; ++i) ns *= 10;
  if (negative) {
    // -1.5 is 1.5 s before the epoch: seconds -2, nanoseconds 5e8.
    *sec = -static_cast<int64_t>(s) - (ns ? 1 : 0);
    *nsec = ns ? 1000000000 - ns : 0;
  } else {
    *sec = static_cast<int64_t>(s);
    *nsec = ns;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ParsePaxNumber(absl::string_view v, absl::string_view key) {
  uint64_t x = 0;
  if (!absl::SimpleAtoi(v, &x) || x > kMaxSize) {
    return absl::DataLossError(absl::StrCat("PAX header: bad ", key));
  }
  return x;
}

}  // namespace

TarParser::TarParser(MemberCallback on_member) : on_member_(std::move(on_member)) {
  header_.reserve(kBlockSize);
}

absl::Status TarParser::Feed(absl::string_view data) {
  while (!data.empty()) {
    switch (state_) {
      case State::kEnd:
        // Anything after the end-of-archive marker (more zero blocks) is ignored.
        offset_ += data.size();
        return absl::OkStatus();
      case State::kSkip: {
        uint64_t n = std::min<uint64_t>(skip_remaining_, data.size());
        skip_remaining_ -= n;
        offset_ += n;
        data.remove_prefix(static_cast<size_t>(n));
        if (skip_remaining_ == 0) state_ = State::kHeader;
        break;
      }
      case State::kMetadata: {
        if (metadata_remaining_ > 0) {
          uint64_t n = std::min<uint64_t>(metadata_remaining_, data.size());
          metadata_.append(data.data(), static_cast<size_t>(n));
          metadata_remaining_ -= n;
          offset_ += n;
          data.remove_prefix(static_cast<size_t>(n));
          if (metadata_remaining_ > 0) break;
        }
        uint64_t n = std::min<uint64_t>(metadata_padding_, data.size());
        metadata_padding_ -= n;
        offset_ += n;
        data.remove_prefix(static_cast<size_t>(n));
        if (metadata_padding_ == 0) {
          state_ = State::kHeader;
          CLIP_RETURN_IF_ERROR(FinishMetadata());
        }
        break;
      }
      case State::kHeader: {
        const char* block;
        if (header_.empty() && data.size() >= kBlockSize) {
          block = data.data();  // Whole block available: parse in place.
          data.remove_prefix(kBlockSize);
        } else {
          size_t n = std::min(kBlockSize - header_.size(), data.size());
          header_.append(data.data(), n);
          data.remove_prefix(n);
          if (header_.size() < kBlockSize) {
            offset_ += n;
            return absl::OkStatus();
          }
          offset_ -= kBlockSize - n;  // Re-based below: the block started earlier.
          block = header_.data();
        }
        offset_ += kBlockSize;
        absl::Status s = ParseHeader(block);
        header_.clear();
        CLIP_RETURN_IF_ERROR(s);
        break;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status TarParser::Finish() {
  if (state_ == State::kEnd) return absl::OkStatus();
  if (state_ == State::kHeader && header_.empty()) {
    // Ended on a member boundary without the end-of-archive blocks. GNU tar and Go
    // accept this; pending PAX/long-name metadata without its member does not.
    if (!pax_.empty() || have_long_name_ || have_long_link_) {
      return absl::DataLossError("tar: archive ends after an extended header, before its member");
    }
    return absl::OkStatus();
  }
  return absl::DataLossError(
      absl::StrCat("tar: archive truncated at offset ", offset_, " inside a member"));
}

absl::Status TarParser::ParseHeader(const char* block) {
  if (IsZeroBlock(block)) {
    // The end-of-archive marker is two zero blocks; one is enough to stop (GNU tar
    // warns, Go stops too), and what follows is padding.
    state_ = State::kEnd;
    return absl::OkStatus();
  }
  CLIP_RETURN_IF_ERROR(VerifyChecksum(block));
  char typeflag = block[kTypeflag];
  CLIP_ASSIGN_OR_RETURN(int64_t size, ParseNumber(block, kSize, "size"));
  if (size < 0 || static_cast<uint64_t>(size) > kMaxSize) {
    return absl::DataLossError("tar header: bad size");
  }
  uint64_t usize = static_cast<uint64_t>(size);

  switch (typeflag) {
    case 'x':
    case 'g':
    case 'L':
    case 'K':
      if (usize > kMaxMetadataSize) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tar: extended header of ", usize, " bytes exceeds the limit of ", kMaxMetadataSize));
      }
      metadata_kind_ = typeflag == 'x'   ? MetadataKind::kPax
                       : typeflag == 'g' ? MetadataKind::kPaxGlobal
                       : typeflag == 'L' ? MetadataKind::kLongName
                                         : MetadataKind::kLongLink;
      metadata_.clear();
      metadata_remaining_ = usize;
      metadata_padding_ = Padding(usize);
      state_ = State::kMetadata;
      if (usize == 0) {
        state_ = State::kHeader;
        return FinishMetadata();
      }
      return absl::OkStatus();
    case 'S':
      return absl::UnimplementedError("tar: GNU sparse files are not supported");
    case 'M':
      return absl::UnimplementedError("tar: multi-volume archives are not supported");
    case 'N':
      return absl::UnimplementedError("tar: old GNU long names ('N') are not supported");
    case 'V':  // GNU volume label: not a member.
      skip_remaining_ = usize + Padding(usize);
      if (skip_remaining_ > 0) state_ = State::kSkip;
      return absl::OkStatus();
    default:
      break;
  }

  TarMember m;
  bool posix_ustar = std::memcmp(block + kMagic.offset, "ustar\0", 6) == 0;
  bool gnu = std::memcmp(block + kMagic.offset, "ustar  \0", 8) == 0;
  m.path = FieldString(block, kName);
  if (posix_ustar) {
    std::string prefix = FieldString(block, kPrefix);
    if (!prefix.empty()) m.path = absl::StrCat(prefix, "/", m.path);
  }
  m.linkname = FieldString(block, kLinkname);
  CLIP_ASSIGN_OR_RETURN(int64_t mode, ParseNumber(block, kMode, "mode"));
  CLIP_ASSIGN_OR_RETURN(int64_t uid, ParseNumber(block, kUid, "uid"));
  CLIP_ASSIGN_OR_RETURN(int64_t gid, ParseNumber(block, kGid, "gid"));
  CLIP_ASSIGN_OR_RETURN(m.mtime_sec, ParseNumber(block, kMtime, "mtime"));
  if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX) {
    return absl::DataLossError("tar header: uid/gid out of range");
  }
  m.mode = static_cast<uint32_t>(mode) & 07777;
  m.uid = static_cast<uint32_t>(uid);
  m.gid = static_cast<uint32_t>(gid);
  if (posix_ustar || gnu) {
    m.uname = FieldString(block, kUname);
    m.gname = FieldString(block, kGname);
    if (typeflag == '3' || typeflag == '4') {
      CLIP_ASSIGN_OR_RETURN(int64_t major, ParseNumber(block, kDevMajor, "devmajor"));
      CLIP_ASSIGN_OR_RETURN(int64_t minor, ParseNumber(block, kDevMinor, "devminor"));
      if (major < 0 || major > UINT32_MAX || minor < 0 || minor > UINT32_MAX) {
        return absl::DataLossError("tar header: device number out of range");
      }
      m.dev_major = static_cast<uint32_t>(major);
      m.dev_minor = static_cast<uint32_t>(minor);
    }
  }

  bool header_only = true;
  switch (typeflag) {
    case '1':
      m.type = TarType::kHardlink;
      break;
    case '2':
      m.type = TarType::kSymlink;
      break;
    case '3':
      m.type = TarType::kCharDevice;
      break;
    case '4':
      m.type = TarType::kBlockDevice;
      break;
    case '5':
      m.type = TarType::kDirectory;
      break;
    case '6':
      m.type = TarType::kFifo;
      break;
    case 'D':  // GNU dumpdir: a directory whose data lists its contents.
      m.type = TarType::kDirectory;
      header_only = false;
      break;
    case '\0':
      // Pre-POSIX archives mark directories by a trailing slash.
      m.type = absl::EndsWith(m.path, "/") ? TarType::kDirectory : TarType::kRegular;
      header_only = m.type == TarType::kDirectory;
      break;
    default:
      // '0', '7' (contiguous) and unknown types are regular files (POSIX).
      m.type = TarType::kRegular;
      header_only = false;
      break;
  }
  return EmitMember(std::move(m), header_only ? 0 : usize);
}

absl::Status TarParser::EmitMember(TarMember m, uint64_t data_size) {
  // Extended attributes and overrides: global PAX, then per-member PAX, then GNU.
  for (const auto* pax : {&pax_global_, &pax_}) {
    for (const auto& [key, value] : *pax) {
      if (value.empty() && !absl::StartsWith(key, "SCHILY.xattr.")) {
        continue;  // An empty value means "use the header's field".
      }
      if (key == "path") {
        m.path = value;
      } else if (key == "linkpath") {
        m.linkname = value;
      } else if (key == "size") {
        CLIP_ASSIGN_OR_RETURN(uint64_t s, ParsePaxNumber(value, key));
        if (m.type == TarType::kRegular || data_size > 0) data_size = s;
      } else if (key == "uid" || key == "gid") {
        CLIP_ASSIGN_OR_RETURN(uint64_t id, ParsePaxNumber(value, key));
        if (id > UINT32_MAX) return absl::DataLossError("PAX header: uid/gid out of range");
        (key == "uid" ? m.uid : m.gid) = static_cast<uint32_t>(id);
      } else if (key == "uname") {
        m.uname = value;
      } else if (key == "gname") {
        m.gname = value;
      } else if (key == "mtime") {
        CLIP_RETURN_IF_ERROR(ParsePaxTime(value, &m.mtime_sec, &m.mtime_nsec));
      } else if (absl::StartsWith(key, "SCHILY.xattr.")) {
        std::string name = key.substr(13);
        m.xattrs.erase(std::remove_if(m.xattrs.begin(), m.xattrs.end(),
                                      [&](const auto& x) { return x.first == name; }),
                       m.xattrs.end());
        m.xattrs.emplace_back(std::move(name), value);
      } else if (absl::StartsWith(key, "GNU.sparse.")) {
        return absl::UnimplementedError("tar: PAX sparse files are not supported");
      }
      // Other keys (atime, ctime, charset, comment, LIBARCHIVE.*) do not change what
      // an extraction produces and are ignored, as containerd's applier ignores them.
    }
  }
  if (have_long_name_) m.path = long_name_;
  if (have_long_link_) m.linkname = long_link_;
  pax_.clear();
  long_name_.clear();
  long_link_.clear();
  have_long_name_ = have_long_link_ = false;

  if (m.path.find('\0') != std::string::npos || m.linkname.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("tar: member name contains a NUL byte");
  }
  if (m.path.empty()) return absl::DataLossError("tar: member with an empty name");
  m.size = m.type == TarType::kRegular ? data_size : 0;
  m.data_offset = offset_;
  CLIP_RETURN_IF_ERROR(on_member_(m));
  skip_remaining_ = data_size + Padding(data_size);
  if (skip_remaining_ > 0) state_ = State::kSkip;
  return absl::OkStatus();
}

absl::Status TarParser::FinishMetadata() {
  switch (metadata_kind_) {
    case MetadataKind::kLongName:
    case MetadataKind::kLongLink: {
      // The data is the NUL-terminated name.
      std::string name = metadata_.substr(0, metadata_.find('\0'));
      if (metadata_kind_ == MetadataKind::kLongName) {
        long_name_ = std::move(name);
        have_long_name_ = true;
      } else {
        long_link_ = std::move(name);
        have_long_link_ = true;
      }
      return absl::OkStatus();
    }
    case MetadataKind::kPax:
      return ApplyPax(metadata_, &pax_);
    case MetadataKind::kPaxGlobal:
      return ApplyPax(metadata_, &pax_global_);
  }
  return absl::OkStatus();
}

absl::Status TarParser::ApplyPax(absl::string_view records,
                                 std::map<std::string, std::string>* out) {
  // Each record is "<length> <key>=<value>\n", length counting the whole record.
  while (!records.empty()) {
    size_t space = records.find(' ');
    uint64_t len = 0;
    if (space == absl::string_view::npos || space == 0 ||
        !absl::SimpleAtoi(records.substr(0, space), &len) || len <= space + 1 ||
        len > records.size() || records[len - 1] != '\n') {
      // Some writers pad the header with NULs after the last record.
      if (records.find_first_not_of('\0') == absl::string_view::npos) break;
      return absl::DataLossError("PAX header: malformed record");
    }
    absl::string_view record = records.substr(space + 1, len - space - 2);
    records.remove_prefix(len);
    size_t eq = record.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::DataLossError("PAX header: record without key=value");
    }
    std::string key(record.substr(0, eq));
    std::string value(record.substr(eq + 1));
    if (value.empty() && out == &pax_global_) {
      out->erase(key);  // An empty global value deletes the key.
    } else {
      (*out)[key] = std::move(value);
    }
  }
  return absl::OkStatus();
}

}  // namespace clip
