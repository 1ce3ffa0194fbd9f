// Filters: containerd's filter syntax for List/Walk, evaluated over snapshot Info.
//
//   name==foo                      parent!=sha256:abc
//   kind==committed                labels."containerd.io/snapshot.ref"==sha256:x
//   labels.app                     (presence)        name~=^extract-   (regular expression)
//
// Selectors inside one filter string are joined by ',' (all must match); separate
// filter strings are alternatives (any may match). Field path segments and values may
// be double-quoted with backslash escapes.
//
// Thread safety: a parsed Filter is immutable and safe to share.
#ifndef CLIP_SNAPSHOTTER_FILTERS_H_
#define CLIP_SNAPSHOTTER_FILTERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "snapshotter/snapshotter.h"

namespace clip {

class SnapshotFilter {
 public:
  // kInvalidArgument for malformed filters.
  static absl::StatusOr<SnapshotFilter> Parse(const std::vector<std::string>& filters);
  bool Match(const SnapshotInfo& info) const;

  // The filter as an SQL condition over metadata_store.h's tables (a row of
  // `snapshots`, its labels in `labels`), with its `?` parameters in order: name,
  // parent and label selectors become SQL; kind and regular expressions are TRUE there
  // and left to Match. So it never drops a snapshot Match keeps: a prefilter, after
  // which Match still decides. Empty `where`: no condition.
  struct Sql {
    std::string where;
    std::vector<std::string> params;
  };
  Sql ToSql() const;

  struct Selector {
    std::vector<std::string> path;
    enum Op { kPresent, kEqual, kNotEqual, kMatch } op = kPresent;
    std::string value;
    std::shared_ptr<const void> regex;  // std::regex for kMatch
  };

 private:
  std::vector<std::vector<Selector>> alternatives_;  // OR of ANDs
};

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_FILTERS_H_
