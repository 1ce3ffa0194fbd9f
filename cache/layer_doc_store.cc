#include "cache/layer_doc_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/file_io.h"

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

absl::Status LayerDocStore::Put(const Digest& layer, const std::string& bytes) const {
  return WriteFileAtomically(PathOf(layer), bytes);
}

std::optional<uint64_t> LayerDocStore::SizeOf(const Digest& layer) const {
  struct stat st;
  if (stat(PathOf(layer).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

bool LayerDocStore::Remove(const Digest& layer) const { return unlink(PathOf(layer).c_str()) == 0; }

}  // namespace clip
