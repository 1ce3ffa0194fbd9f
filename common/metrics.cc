// Design: children are prometheus-cpp metrics (atomic updates, stable addresses for
// the registry's lifetime) in prometheus-cpp families; the registry mutex guards clip's
// family table (types, help, bounds, collectors) and every family registration.
// Collectors are shared_ptr'd states with their own mutex: Render collects the
// children, copies the live collectors under the registry mutex, releases it, and
// calls each under its state's mutex, while a handle's destruction clears the callback
// under that same mutex and marks the state dead. A scrape thus never calls into a
// destroyed object, and the two mutexes are never held together, so a callback may
// take locks its owner holds while registering metrics. Dead states are dropped from
// their family the next time that family is registered into.
#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace clip {
namespace {

[[noreturn]] void DieBecause(const std::string& message) {
  std::fprintf(stderr, "clip metrics: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
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

// HELP texts escaped as the text format requires (`\\` and newline): prometheus-cpp
// 1.0's serializer writes them as given, and a newline would end the line early.
std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

prometheus::Labels ToLabels(const MetricLabels& labels) {
  return prometheus::Labels(labels.begin(), labels.end());
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

std::vector<double> NormalizeBuckets(std::vector<double> bounds) {
  bounds.erase(
      std::remove_if(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); }),
      bounds.end());
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

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

MetricsRegistry::MetricsRegistry() : registry_(std::make_unique<prometheus::Registry>()) {}

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
    bool empty = family.counters == nullptr && family.gauges == nullptr &&
                 family.histograms == nullptr && collectors.empty();
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
  family.help = EscapeHelp(help);
  return family;
}

Counter& MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const MetricLabels& labels) {
  CheckNames(name, labels, false);
  absl::MutexLock lock(&mu_);
  Family& family = FamilyLocked(name, help, FamilyType::kCounter);
  if (family.counters == nullptr) {
    family.counters = &prometheus::BuildCounter().Name(name).Help(family.help).Register(*registry_);
  }
  return family.counters->Add(ToLabels(labels));
}

Gauge& MetricsRegistry::GetGauge(const std::string& name, const std::string& help,
                                 const MetricLabels& labels) {
  CheckNames(name, labels, false);
  absl::MutexLock lock(&mu_);
  Family& family = FamilyLocked(name, help, FamilyType::kGauge);
  if (family.gauges == nullptr) {
    family.gauges = &prometheus::BuildGauge().Name(name).Help(family.help).Register(*registry_);
  }
  return family.gauges->Add(ToLabels(labels));
}

Histogram& MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const MetricLabels& labels, std::vector<double> bounds) {
  CheckNames(name, labels, true);
  bounds = NormalizeBuckets(std::move(bounds));
  absl::MutexLock lock(&mu_);
  Family& family = FamilyLocked(name, help, FamilyType::kHistogram);
  if (family.histograms == nullptr) {
    family.bounds = bounds;
    family.histograms =
        &prometheus::BuildHistogram().Name(name).Help(family.help).Register(*registry_);
  } else if (family.bounds != bounds) {
    DieBecause(absl::StrCat("histogram \"", name, "\" registered with different bucket bounds"));
  }
  return family.histograms->Add(ToLabels(labels), family.bounds);
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
  // Children first (prometheus-cpp collects them), then the live collectors, called
  // with the registry mutex released; samples join their family by name.
  struct Pending {
    std::string name, help;
    FamilyType type;
    std::vector<std::shared_ptr<CollectorState>> collectors;
  };
  std::vector<Pending> pending;
  std::map<std::string, prometheus::MetricFamily> out;
  {
    absl::MutexLock lock(&mu_);
    for (prometheus::MetricFamily& f : registry_->Collect()) {
      if (!f.metric.empty()) out[f.name] = std::move(f);
    }
    for (const auto& [name, family] : families_) {
      Pending p{name, family.help, family.type, {}};
      for (const auto& c : family.collectors) {
        if (!c->dead()) p.collectors.push_back(c);
      }
      if (!p.collectors.empty()) pending.push_back(std::move(p));
    }
  }
  for (const Pending& p : pending) {
    prometheus::MetricFamily& f = out[p.name];
    f.name = p.name;
    f.help = p.help;
    f.type = p.type == FamilyType::kCounter ? prometheus::MetricType::Counter
                                            : prometheus::MetricType::Gauge;
    for (const auto& collector : p.collectors) {
      std::vector<Sample> samples;
      collector->Collect(&samples);
      for (const Sample& s : samples) {
        if (!ValidLabels(s.labels, false)) continue;
        prometheus::ClientMetric m;
        for (const auto& [k, v] : ToLabels(s.labels)) m.label.push_back({k, v});
        (p.type == FamilyType::kCounter ? m.counter.value : m.gauge.value) = s.value;
        f.metric.push_back(std::move(m));
      }
    }
  }
  std::vector<prometheus::MetricFamily> families;
  for (auto& [name, f] : out) {
    if (f.metric.empty()) continue;
    std::stable_sort(f.metric.begin(), f.metric.end(),
                     [](const auto& a, const auto& b) { return a.label < b.label; });
    families.push_back(std::move(f));
  }
  return prometheus::TextSerializer().Serialize(families);
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
