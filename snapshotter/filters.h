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
// `~=` takes an RE2 expression: the syntax of containerd's Go regexp (no backreferences,
// no lookaround), matched anywhere in the value as Go's MatchString does. RE2 neither
// recurses nor backtracks, so no pattern or value a client sends can exhaust the stack
// or take exponential time; each expression's compiled program and match caches have a
// memory bound (a pattern over it is refused), and one Parse takes at most
// SnapshotFilter::kMaxExpressions expressions.
//
// Thread safety: a parsed Filter is immutable and safe to share.
#ifndef CLIP_SNAPSHOTTER_FILTERS_H_
#define CLIP_SNAPSHOTTER_FILTERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "snapshotter/snapshotter.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace clip {

class SnapshotFilter {
 public:
  // At most this many `~=` selectors over all the filters of one Parse.
  static constexpr int kMaxExpressions = 16;

  // kInvalidArgument for malformed filters: bad syntax, an expression RE2 rejects (bad
  // syntax, or a compiled program over its memory bound), more than kMaxExpressions.
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
    std::shared_ptr<const re2::RE2> regex;  // for kMatch
  };

 private:
  std::vector<std::vector<Selector>> alternatives_;  // OR of ANDs
};

}  // namespace clip

#endif  // CLIP_SNAPSHOTTER_FILTERS_H_
