#include "cache/layer_doc_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"
#include "common/file_io.h"
#include "common/status_macros.h"

namespace clip {

absl::Status LayerDocStore::Create(mode_t mode) const {
  if (mkdir(dir_.c_str(), mode) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", dir_));
  }
  return absl::OkStatus();
}

std::string LayerDocStore::PathOf(const Digest& layer) const {
  return absl::StrCat(dir_, "/", layer.Hex());
}

absl::StatusOr<std::optional<std::string>> LayerDocStore::Get(const Digest& layer) const {
  absl::StatusOr<std::string> read = ReadWholeFile(PathOf(layer));
  if (read.ok()) return std::optional<std::string>(*std::move(read));
  if (read.status().code() == absl::StatusCode::kNotFound) return std::nullopt;
  return read.status();
}

std::string LayerDocStore::RecordPathOf(const Digest& layer) const {
  return absl::StrCat(PathOf(layer), ".origin");
}

absl::Status LayerDocStore::Put(const Digest& layer, const std::string& bytes,
                                absl::string_view origin) const {
  CLIP_RETURN_IF_ERROR(WriteFileAtomically(PathOf(layer), bytes));
  if (origin.empty()) {
    unlink(RecordPathOf(layer).c_str());
    return absl::OkStatus();
  }
  return WriteFileAtomically(RecordPathOf(layer),
                             absl::StrCat(Digest::Of(bytes).ToString(), " ", origin, "\n"));
}

std::optional<LayerDocStore::Record> LayerDocStore::RecordOf(const Digest& layer) const {
  absl::StatusOr<std::string> read = ReadWholeFile(RecordPathOf(layer));
  if (!read.ok()) return std::nullopt;
  std::vector<absl::string_view> words =
      absl::StrSplit(absl::StripAsciiWhitespace(*read), ' ', absl::SkipEmpty());
  if (words.size() != 2) return std::nullopt;
  absl::StatusOr<Digest> digest = Digest::Parse(words[0]);
  if (!digest.ok()) return std::nullopt;
  return Record{*digest, std::string(words[1])};
}

std::optional<uint64_t> LayerDocStore::SizeOf(const Digest& layer) const {
  struct stat st;
  if (stat(PathOf(layer).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

bool LayerDocStore::Remove(const Digest& layer) const {
  unlink(RecordPathOf(layer).c_str());
  return unlink(PathOf(layer).c_str()) == 0;
}

}  // namespace clip
