#include "index/entry_tree.h"

#include <algorithm>

#include "absl/strings/str_split.h"

namespace clip {

EntryTree::EntryTree(const index::v1::LayerIndex& index) : index_(index) {
  const auto& entries = index.entries();
  size_t n = static_cast<size_t>(entries.size());
  // Counting sort by parent, then sort each directory's children by name.
  start_.assign(n + 1, 0);
  for (size_t i = 1; i < n; ++i) ++start_[entries[static_cast<int>(i)].parent() + 1];
  for (size_t i = 0; i < n; ++i) start_[i + 1] += start_[i];
  children_.resize(n > 0 ? n - 1 : 0);
  std::vector<uint32_t> fill(start_.begin(), start_.end() - 1);
  for (size_t i = 1; i < n; ++i) {
    children_[fill[entries[static_cast<int>(i)].parent()]++] = static_cast<uint32_t>(i);
  }
  for (size_t d = 0; d < n; ++d) {
    std::sort(children_.begin() + start_[d], children_.begin() + start_[d + 1],
              [&](uint32_t a, uint32_t b) {
                return entries[static_cast<int>(a)].name() < entries[static_cast<int>(b)].name();
              });
  }
}

absl::Span<const uint32_t> EntryTree::Children(uint32_t dir) const {
  if (dir + 1 >= start_.size()) return {};
  return absl::MakeConstSpan(children_).subspan(start_[dir], start_[dir + 1] - start_[dir]);
}

std::optional<uint32_t> EntryTree::Lookup(uint32_t dir, absl::string_view name) const {
  auto kids = Children(dir);
  auto it = std::lower_bound(kids.begin(), kids.end(), name, [&](uint32_t id, absl::string_view n) {
    return absl::string_view(index_.entries(static_cast<int>(id)).name()) < n;
  });
  if (it == kids.end() || index_.entries(static_cast<int>(*it)).name() != name) return std::nullopt;
  return *it;
}

std::optional<uint32_t> EntryTree::Resolve(absl::string_view path) const {
  uint32_t id = 0;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    auto next = Lookup(id, part);
    if (!next) return std::nullopt;
    id = *next;
  }
  return id;
}

std::string EntryTree::Path(uint32_t id) const {
  std::vector<absl::string_view> parts;
  while (id != 0) {
    const auto& e = index_.entries(static_cast<int>(id));
    parts.push_back(e.name());
    id = e.parent();
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!out.empty()) out.push_back('/');
    out.append(it->data(), it->size());
  }
  return out;
}

}  // namespace clip
