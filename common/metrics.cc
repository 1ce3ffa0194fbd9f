// Design: children are plain atomics owned by the registry through unique_ptr, so the
// references callers keep stay valid and updates take no lock; the registry mutex only
// guards the family maps (registration and rendering). Collectors are shared_ptr'd
// states with their own mutex: Render copies the live ones under the registry mutex,
// releases it, and calls each under its state's mutex, while a handle's destruction
// clears the callback under that same mutex and marks the state dead. A scrape thus
// never calls into a destroyed object, and the two mutexes are never held together, so
// a callback may take locks its owner holds while registering metrics. Dead states are
// dropped from their family the next time that family is registered into.
#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"

namespace clip {
namespace {

[[noreturn]] void DieBecause(const std::string& message) {
  std::fprintf(stderr, "clip metrics: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

void AtomicAdd(std::atomic<double>& target, double d) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + d, std::memory_order_relaxed)) {
  }
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool ValidMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!(IsAlpha(c) || c == '_' || c == ':' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

bool ValidLabelName(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!(IsAlpha(c) || c == '_' || (i > 0 && IsDigit(c)))) return false;
  }
  return true;
}

bool ValidLabels(const MetricLabels& labels, bool histogram) {
  std::set<std::string> seen;
  for (const auto& [name, value] : labels) {
    if (!ValidLabelName(name) || (histogram && name == "le")) return false;
    if (!seen.insert(name).second) return false;
  }
  return true;
}

void CheckNames(const std::string& name, const MetricLabels& labels, bool histogram) {
  if (!ValidMetricName(name)) DieBecause(absl::StrCat("invalid metric name \"", name, "\""));
  if (!ValidLabels(labels, histogram)) {
    DieBecause(absl::StrCat("invalid, duplicate or reserved label name in metric \"", name, "\""));
  }
}

// Shortest text that parses back to `v`, as Prometheus reads it.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, result.ptr);
}

// `\` and newline are escaped in help texts; label values also escape `"`.
std::string Escape(const std::string& s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}`, or nothing for no labels. `le`, if given, goes last.
std::string FormatLabels(const MetricLabels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    absl::StrAppend(&out, first ? "" : ",", name, "=\"", Escape(value, true), "\"");
    first = false;
  }
  if (le != nullptr) absl::StrAppend(&out, first ? "" : ",", "le=\"", *le, "\"");
  out += "}";
  return out;
}

void AppendSample(std::string* out, const std::string& name, const MetricLabels& labels,
                  double value, const std::string* le = nullptr) {
  absl::StrAppend(out, name, FormatLabels(labels, le), " ", FormatValue(value), "\n");
}

const char* TypeName(int type) {
  switch (type) {
    case 0:
      return "counter";
    case 1:
      return "gauge";
    default:
      return "histogram";
  }
}

}  // namespace

void Counter::Increment(double n) {
  if (!(n >= 0)) return;  // also rejects NaN
  AtomicAdd(value_, n);
}

void Gauge::Add(double d) { AtomicAdd(value_, d); }

std::vector<double> Histogram::NormalizeBounds(std::vector<double> bounds) {
  bounds.erase(
      std::remove_if(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); }),
      bounds.end());
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(NormalizeBounds(std::move(bounds))),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  size_t i = std::isnan(v)
                 ? bounds_.size()
                 : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                       bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    counts[i] = total;
  }
  return counts;
}

uint64_t Histogram::count() const { return CumulativeCounts().back(); }

class MetricsRegistry::CollectorState {
 public:
  explicit CollectorState(std::function<void(std::vector<Sample>*)> collect)
      : collect_(std::move(collect)) {}

  void Collect(std::vector<Sample>* out) {
    absl::MutexLock lock(&mu_);
    if (collect_) collect_(out);
  }

  // After this returns, no call is in flight and none will start.
  void Kill() {
    std::function<void(std::vector<Sample>*)> old;
    {
      absl::MutexLock lock(&mu_);
      old.swap(collect_);
      dead_.store(true, std::memory_order_release);
    }
    // `old` (and whatever its captures own) is destroyed here, outside the lock.
  }

  bool dead() const { return dead_.load(std::memory_order_acquire); }

 private:
  absl::Mutex mu_;
  std::function<void(std::vector<Sample>*)> collect_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> dead_{false};
};

MetricsRegistry::CollectorHandle& MetricsRegistry::CollectorHandle::operator=(
    CollectorHandle&& other) noexcept {
  if (this != &other) {
    Reset();
    state_ = std::move(other.state_);
  }
  return *this;
}

void MetricsRegistry::CollectorHandle::Reset() {
  if (state_ == nullptr) return;
  state_->Kill();
  state_.reset();
}

MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::FamilyLocked(const std::string& name,
                                                       const std::string& help, FamilyType type) {
  auto it = families_.find(name);
  if (it != families_.end()) {
    Family& family = it->second;
    auto& collectors = family.collectors;
    collectors.erase(std::remove_if(collectors.begin(), collectors.end(),
                                    [](const auto& c) { return c->dead(); }),
                     collectors.end());
    bool empty = family.counters.empty() && family.gauges.empty() && family.histograms.empty() &&
                 collectors.empty();
    if (!empty) {
      if (family.type != type) {
        DieBecause(absl::StrCat("metric \"", name, "\" registered as ",
                                TypeName(static_cast<int>(family.type)), " and as ",
                                TypeName(static_cast<int>(type))));
      }
      return family;
    }
    families_.erase(it);
  }
  Family& family = families_[name];
  family.type = type;
  family.help = help;
  return family;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const MetricLabels& labels) {
  CheckNames(name, labels, false);
  absl::MutexLock lock(&mu_);
  auto& child = FamilyLocked(name, help, FamilyType::kCounter).counters[labels];
  if (child == nullptr) child = std::make_unique<Counter>();
  return *child;
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help,
                                 const MetricLabels& labels) {
  CheckNames(name, labels, false);
  absl::MutexLock lock(&mu_);
  auto& child = FamilyLocked(name, help, FamilyType::kGauge).gauges[labels];
  if (child == nullptr) child = std::make_unique<Gauge>();
  return *child;
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const MetricLabels& labels, std::vector<double> bounds) {
  CheckNames(name, labels, true);
  bounds = Histogram::NormalizeBounds(std::move(bounds));
  absl::MutexLock lock(&mu_);
  Family& family = FamilyLocked(name, help, FamilyType::kHistogram);
  if (family.histograms.empty()) {
    family.bounds = bounds;
  } else if (family.bounds != bounds) {
    DieBecause(absl::StrCat("histogram \"", name, "\" registered with different bucket bounds"));
  }
  auto& child = family.histograms[labels];
  if (child == nullptr) child = std::make_unique<Histogram>(std::move(bounds));
  return *child;
}

MetricsRegistry::CollectorHandle MetricsRegistry::AddCollector(
    const std::string& name, const std::string& help, Type type,
    std::function<void(std::vector<Sample>*)> collect) {
  CheckNames(name, {}, false);
  auto state = std::make_shared<CollectorState>(std::move(collect));
  absl::MutexLock lock(&mu_);
  FamilyLocked(name, help, type == Type::kCounter ? FamilyType::kCounter : FamilyType::kGauge)
      .collectors.push_back(state);
  return CollectorHandle(std::move(state));
}

std::string MetricsRegistry::Render() const {
  // What Render needs of a family once the registry mutex is released.
  struct Pending {
    std::string text;  // header and the registry-owned children, already rendered
    std::string name;
    std::vector<std::shared_ptr<CollectorState>> collectors;
  };
  std::vector<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    pending.reserve(families_.size());
    for (const auto& [name, family] : families_) {
      Pending p;
      p.name = name;
      for (const auto& c : family.collectors) {
        if (!c->dead()) p.collectors.push_back(c);
      }
      if (family.counters.empty() && family.gauges.empty() && family.histograms.empty() &&
          p.collectors.empty()) {
        continue;
      }
      absl::StrAppend(&p.text, "# HELP ", name, " ", Escape(family.help, false), "\n", "# TYPE ",
                      name, " ", TypeName(static_cast<int>(family.type)), "\n");
      for (const auto& [labels, counter] : family.counters) {
        AppendSample(&p.text, name, labels, counter->value());
      }
      for (const auto& [labels, gauge] : family.gauges) {
        AppendSample(&p.text, name, labels, gauge->value());
      }
      for (const auto& [labels, histogram] : family.histograms) {
        std::vector<uint64_t> counts = histogram->CumulativeCounts();
        const std::string bucket = name + "_bucket";
        for (size_t i = 0; i < counts.size(); ++i) {
          std::string le =
              i < family.bounds.size() ? FormatValue(family.bounds[i]) : std::string("+Inf");
          AppendSample(&p.text, bucket, labels, static_cast<double>(counts[i]), &le);
        }
        AppendSample(&p.text, name + "_sum", labels, histogram->sum());
        AppendSample(&p.text, name + "_count", labels, static_cast<double>(counts.back()));
      }
      pending.push_back(std::move(p));
    }
  }
  std::string out;
  for (Pending& p : pending) {
    out += p.text;
    for (const auto& collector : p.collectors) {
      std::vector<Sample> samples;
      collector->Collect(&samples);
      for (const Sample& s : samples) {
        if (ValidLabels(s.labels, false)) AppendSample(&out, p.name, s.labels, s.value);
      }
    }
  }
  return out;
}

std::vector<double> MetricsRegistry::DefaultLatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

MetricsRegistry& DefaultMetrics() {
  static MetricsRegistry* const registry = new MetricsRegistry();
  return *registry;
}

}  // namespace clip
