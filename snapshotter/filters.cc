#include "snapshotter/filters.h"

#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "re2/re2.h"

namespace clip {
namespace {

// RE2's memory bound for one expression: its compiled programs and its DFA caches (a
// DFA out of room falls back to the slower but still linear NFA). A pattern whose
// program does not fit fails to compile. With kMaxExpressions, one request's
// expressions hold at most 64 MiB.
constexpr int64_t kExpressionMemory = 4 << 20;

// One filter string. `expressions` counts the `~=` selectors of the whole Parse.
class Parser {
 public:
  Parser(absl::string_view s, int& expressions) : s_(s), expressions_(expressions) {}

  absl::StatusOr<std::vector<SnapshotFilter::Selector>> Parse() {
    std::vector<SnapshotFilter::Selector> out;
    for (;;) {
      SkipSpace();
      SnapshotFilter::Selector sel;
      // field path: segment ('.' segment)*
      for (;;) {
        auto seg = Segment();
        if (!seg.ok()) return seg.status();
        sel.path.push_back(*seg);
        if (Peek() == '.') {
          ++pos_;
          continue;
        }
        break;
      }
      SkipSpace();
      if (Consume("==")) {
        sel.op = SnapshotFilter::Selector::kEqual;
      } else if (Consume("!=")) {
        sel.op = SnapshotFilter::Selector::kNotEqual;
      } else if (Consume("~=")) {
        sel.op = SnapshotFilter::Selector::kMatch;
      }
      if (sel.op != SnapshotFilter::Selector::kPresent) {
        SkipSpace();
        auto v = Value();
        if (!v.ok()) return v.status();
        sel.value = *v;
        if (sel.op == SnapshotFilter::Selector::kMatch) {
          if (++expressions_ > SnapshotFilter::kMaxExpressions) {
            return Error(absl::StrCat("more than ", SnapshotFilter::kMaxExpressions,
                                      " regular expressions"));
          }
          RE2::Options options;
          options.set_max_mem(kExpressionMemory);
          options.set_log_errors(false);  // the client gets the error
          auto re = std::make_shared<const RE2>(sel.value, options);
          if (!re->ok()) {
            return Error(absl::StrCat("bad regular expression: ", re->error().substr(0, 200)));
          }
          sel.regex = std::move(re);
        }
      }
      out.push_back(std::move(sel));
      SkipSpace();
      if (pos_ == s_.size()) return out;
      if (Peek() != ',') return Error("expected ','");
      ++pos_;
    }
  }

 private:
  absl::Status Error(absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter \"", s_.substr(0, 200), "\": ", what, " at ", pos_));
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool Consume(absl::string_view t) {
    if (s_.substr(pos_, t.size()) == t) {
      pos_ += t.size();
      return true;
    }
    return false;
  }
  absl::StatusOr<std::string> Quoted() {
    std::string out;
    ++pos_;  // opening quote
    while (pos_ < s_.size() && s_[pos_] != '"') {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
      out.push_back(s_[pos_++]);
    }
    if (pos_ >= s_.size()) return Error("unterminated quote");
    ++pos_;
    return out;
  }
  absl::StatusOr<std::string> Segment() {
    if (Peek() == '"') return Quoted();
    size_t start = pos_;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '/') {
        ++pos_;
      } else {
        break;
      }
    }
    if (pos_ == start) return Error("expected a field name");
    return std::string(s_.substr(start, pos_ - start));
  }
  absl::StatusOr<std::string> Value() {
    if (Peek() == '"') return Quoted();
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ',') ++pos_;
    std::string v(s_.substr(start, pos_ - start));
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
    if (v.empty()) return Error("expected a value");
    return v;
  }

  absl::string_view s_;
  int& expressions_;
  size_t pos_ = 0;
};

const char* KindName(SnapshotKind k) {
  switch (k) {
    case SnapshotKind::kView:
      return "view";
    case SnapshotKind::kActive:
      return "active";
    case SnapshotKind::kCommitted:
      return "committed";
    default:
      return "unknown";
  }
}

// The field's value, or nullopt when absent.
std::optional<std::string> Field(const SnapshotInfo& info, const std::vector<std::string>& path) {
  if (path.empty()) return std::nullopt;
  if (path.size() == 1) {
    if (path[0] == "name") return info.name;
    if (path[0] == "parent") return info.parent;
    if (path[0] == "kind") return std::string(KindName(info.kind));
    if (path[0] == "labels")
      return info.labels.empty() ? std::nullopt : std::optional<std::string>("");
    return std::nullopt;
  }
  if (path[0] == "labels") {
    // Unquoted keys with dots arrive as several segments: join them back.
    std::vector<std::string> rest(path.begin() + 1, path.end());
    auto it = info.labels.find(absl::StrJoin(rest, "."));
    if (it == info.labels.end()) return std::nullopt;
    return it->second;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<SnapshotFilter> SnapshotFilter::Parse(const std::vector<std::string>& filters) {
  SnapshotFilter f;
  int expressions = 0;
  for (const std::string& s : filters) {
    if (s.empty()) continue;
    Parser p(s, expressions);
    auto sels = p.Parse();
    if (!sels.ok()) return sels.status();
    f.alternatives_.push_back(*std::move(sels));
  }
  return f;
}

SnapshotFilter::Sql SnapshotFilter::ToSql() const {
  Sql sql;
  if (alternatives_.empty()) return sql;
  std::vector<std::string> any;
  for (const auto& all : alternatives_) {
    std::vector<std::string> each;
    for (const Selector& sel : all) {
      const std::vector<std::string>& p = sel.path;
      if (p.empty() || sel.op == Selector::kMatch) continue;  // Match decides
      if (p.size() == 1 && (p[0] == "name" || p[0] == "parent")) {
        if (sel.op == Selector::kPresent) continue;  // always present
        each.push_back(absl::StrCat(p[0], sel.op == Selector::kEqual ? " = ?" : " != ?"));
        sql.params.push_back(sel.value);
        continue;
      }
      if (p[0] != "labels") continue;  // kind, unknown fields: Match decides
      constexpr char kLabel[] = "SELECT 1 FROM labels WHERE snapshot_id = snapshots.id";
      if (p.size() == 1) {  // "labels": any label at all
        if (sel.op == Selector::kPresent) each.push_back(absl::StrCat("EXISTS (", kLabel, ")"));
        continue;
      }
      sql.params.push_back(absl::StrJoin(std::vector<std::string>(p.begin() + 1, p.end()), "."));
      switch (sel.op) {
        case Selector::kPresent:
          each.push_back(absl::StrCat("EXISTS (", kLabel, " AND key = ?)"));
          break;
        case Selector::kEqual:
          each.push_back(absl::StrCat("EXISTS (", kLabel, " AND key = ? AND value = ?)"));
          sql.params.push_back(sel.value);
          break;
        case Selector::kNotEqual:  // absent or different
          each.push_back(absl::StrCat("NOT EXISTS (", kLabel, " AND key = ? AND value = ?)"));
          sql.params.push_back(sel.value);
          break;
        case Selector::kMatch:
          break;
      }
    }
    if (each.empty()) return Sql{};  // this alternative admits every row
    any.push_back(absl::StrCat("(", absl::StrJoin(each, " AND "), ")"));
  }
  sql.where = absl::StrJoin(any, " OR ");
  return sql;
}

bool SnapshotFilter::Match(const SnapshotInfo& info) const {
  if (alternatives_.empty()) return true;
  for (const auto& all : alternatives_) {
    bool ok = true;
    for (const Selector& sel : all) {
      std::optional<std::string> v = Field(info, sel.path);
      switch (sel.op) {
        case Selector::kPresent:
          ok = v.has_value();
          break;
        case Selector::kEqual:
          ok = v.has_value() && *v == sel.value;
          break;
        case Selector::kNotEqual:
          ok = !v.has_value() || *v != sel.value;
          break;
        case Selector::kMatch:
          ok = v.has_value() && RE2::PartialMatch(*v, *sel.regex);
          break;
      }
      if (!ok) break;
    }
    if (ok) return true;
  }
  return false;
}

}  // namespace clip
