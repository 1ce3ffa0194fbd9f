// Metrics: Prometheus counters, gauges and histograms in a registry that renders the
// text exposition format 0.0.4 (served by MetricsServer, common/metrics_server.h).
// The metrics, their families and the text format are prometheus-cpp's (core library);
// this adds what clip needs around it: collectors sampled at scrape time with a
// handle that unregisters them safely, one family shared by children and collectors,
// "first help wins", and aborting on registration bugs.
//
// A metric family is a name, a help text and a type; its children are the values for
// each combination of label values. Hot paths look a child up once and keep the
// reference; updating a counter or gauge is then an atomic operation, no lock (a
// histogram observation takes the histogram's own short mutex):
//
//   Counter& fetched = DefaultMetrics().GetCounter(
//       "clip_registry_bytes_fetched_total", "Bytes fetched from registries.",
//       {{"kind", "blob"}});
//   fetched.Increment(n);
//
// Values that another object already counts are sampled at scrape time by a collector.
// The handle unregisters it; keep it as the last-declared member so it goes first:
//
//   handle_ = DefaultMetrics().AddCollector(
//       "clip_cache_entries", "Entries in the disk cache.", MetricsRegistry::Type::kGauge,
//       [this](std::vector<MetricsRegistry::Sample>* out) {
//         out->push_back({{{"tier", "disk"}}, static_cast<double>(Entries())});
//       });
//
// Programming errors abort the process with a message on stderr: an invalid metric or
// label name, one name registered with two types, or a histogram registered twice with
// different bucket bounds. They are bugs in fixed registration code, found by the
// first test that runs it; returning a Status would burden every hot-path caller.
//
// Thread safety: everything here is safe for concurrent use. Counter and Gauge are
// lock-free; Histogram::Observe locks that histogram only (prometheus-cpp). A collector
// callback runs with no registry lock held, under
// its own collector's mutex: destroying a CollectorHandle waits for an in-flight call
// of that callback to return, and no call starts afterwards. So a callback must not
// destroy its own handle, and an owner must not destroy the handle while holding a
// lock that its callback takes. A callback may call the registry (GetCounter, ...).
#ifndef CLIP_COMMON_METRICS_H_
#define CLIP_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace clip {

// Label name/value pairs. Names match [a-zA-Z_][a-zA-Z0-9_]* and do not start with
// "__"; values are any bytes (escaped when rendered). Rendered sorted by name.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// The metric types are prometheus-cpp's (Debian's prometheus-cpp-dev, core library):
// Counter::Increment(n) ignores a negative n; Gauge Set/Increment/Decrement;
// Histogram::Observe. Their Value()/Collect() read them.
using Counter = prometheus::Counter;
using Gauge = prometheus::Gauge;
using Histogram = prometheus::Histogram;

// Histogram bounds as the registry keeps them: sorted, deduplicated, finite (the +Inf
// bucket always exists).
std::vector<double> NormalizeBuckets(std::vector<double> bounds);

class MetricsRegistry {
 public:
  struct Sample {
    MetricLabels labels;
    double value;
  };
  enum class Type { kCounter, kGauge };

 private:
  class CollectorState;

 public:
  // Unregisters its collector when destroyed or Reset. Movable; may outlive the
  // registry (it then only drops its callback).
  class CollectorHandle {
   public:
    CollectorHandle() = default;
    CollectorHandle(CollectorHandle&& other) noexcept = default;
    CollectorHandle& operator=(CollectorHandle&& other) noexcept;
    ~CollectorHandle() { Reset(); }

    // Unregisters now; waits for an in-flight call of the callback to return.
    void Reset();

   private:
    friend class MetricsRegistry;
    explicit CollectorHandle(std::shared_ptr<CollectorState> state) : state_(std::move(state)) {}

    std::shared_ptr<CollectorState> state_;
  };

  MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;
  ~MetricsRegistry();

  // The child of family `name` for these label values, created (with the family) on
  // first use. The reference stays valid for the registry's lifetime. `help` of the
  // first registration wins. Aborts if `name` has another type (see the banner).
  Counter& GetCounter(const std::string& name, const std::string& help,
                      const MetricLabels& labels = {});
  Gauge& GetGauge(const std::string& name, const std::string& help,
                  const MetricLabels& labels = {});
  // Bounds are fixed by the family's first registration; a later call with other
  // (normalized) bounds aborts. The label name "le" is reserved.
  Histogram& GetHistogram(const std::string& name, const std::string& help,
                          const MetricLabels& labels = {},
                          std::vector<double> bounds = DefaultLatencyBuckets());

  // Registers a callback that appends samples of family `name` at each Render. Several
  // collectors, and children from GetCounter/GetGauge of the same type, may share a
  // family; they render under one header. Samples with an invalid label name are
  // skipped. Aborts if `name` has another type.
  [[nodiscard]] CollectorHandle AddCollector(const std::string& name, const std::string& help,
                                             Type type,
                                             std::function<void(std::vector<Sample>*)> collect);

  // Prometheus text format 0.0.4 (prometheus-cpp's TextSerializer): per family, sorted
  // by name, `# HELP`, `# TYPE`, then samples sorted by labels; histograms as `_count`,
  // `_sum` and `_bucket{le=...}` (cumulative, ending with +Inf).
  std::string Render() const;

  // Seconds, 0.0001 to 10 in 1-2.5-5 steps.
  static std::vector<double> DefaultLatencyBuckets();

 private:
  enum class FamilyType { kCounter, kGauge, kHistogram };
  struct Family {
    FamilyType type;
    std::string help;
    std::vector<double> bounds;  // histograms only, normalized
    // The prometheus-cpp family of the children (null until the first one), by type.
    prometheus::Family<Counter>* counters = nullptr;
    prometheus::Family<Gauge>* gauges = nullptr;
    prometheus::Family<Histogram>* histograms = nullptr;
    std::vector<std::shared_ptr<CollectorState>> collectors;
  };

  // Finds or creates family `name`; aborts on a type mismatch. Drops dead collectors.
  Family& FamilyLocked(const std::string& name, const std::string& help, FamilyType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Children live here (families are only added while mu_ is held).
  const std::unique_ptr<prometheus::Registry> registry_;
  // Never held while a collector's mutex is held, nor while a callback runs.
  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
};

// The process-wide registry; never destroyed.
MetricsRegistry& DefaultMetrics();

}  // namespace clip

#endif  // CLIP_COMMON_METRICS_H_
