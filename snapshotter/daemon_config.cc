#include "snapshotter/daemon_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "toml++/toml.h"

namespace clip {

namespace {

absl::Status ParseFill(const toml::table& t, const std::string& source,
                       DaemonConfig::BackgroundFill* f) {
  for (auto& [key, node] : t) {
    std::string k(key.str());
    auto bad = [&](const char* what) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": background_fill.", k, " must be ", what));
    };
    if (k == "enabled") {
      const toml::value<bool>* v = node.as_boolean();  // value<bool>() would take 1
      if (!v) return bad("true or false");
      f->enabled = v->get();
    } else if (k == "bytes_per_second" || k == "concurrency") {
      auto v = node.is_integer() ? node.value<int64_t>() : std::nullopt;
      if (!v || *v < 0 || (k == "concurrency" && (*v < 1 || *v > 64))) {
        return bad(k == "concurrency" ? "between 1 and 64" : "a non-negative integer");
      }
      (k == "concurrency" ? f->concurrency : f->bytes_per_second) = *v;
    } else if (k == "delay_seconds") {
      auto v = node.value<double>();
      if (!v || *v < 0) return bad("a non-negative number");
      f->delay_seconds = *v;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": unknown key \"background_fill.", k, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseProfiles(const toml::table& t, const std::string& source,
                           DaemonConfig::AccessProfiles* p) {
  for (auto& [key, node] : t) {
    std::string k(key.str());
    auto bad = [&](const char* what) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": access_profiles.", k, " must be ", what));
    };
    if (k == "enabled") {
      const toml::value<bool>* v = node.as_boolean();
      if (!v) return bad("true or false");
      p->enabled = v->get();
    } else if (k == "quiet_seconds" || k == "max_seconds") {
      auto v = node.value<double>();
      if (!v || *v <= 0) return bad("a positive number");
      (k == "quiet_seconds" ? p->quiet_seconds : p->max_seconds) = *v;
    } else if (k == "replay_concurrency" || k == "max_run_spans") {
      auto v = node.is_integer() ? node.value<int64_t>() : std::nullopt;
      if (!v || *v < 1 || *v > 64) return bad("between 1 and 64");
      (k == "replay_concurrency" ? p->replay_concurrency : p->max_run_spans) = *v;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": unknown key \"access_profiles.", k, "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DaemonConfig> ParseDaemonConfig(const std::string& text, const std::string& source) {
  toml::table t;
  try {
    t = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", std::string(e.description())));
  }
  DaemonConfig c;
  for (auto& [key, node] : t) {
    std::string k(key.str());
    if (k == "plain_http") {
      const toml::array* arr = node.as_array();
      if (!arr)
        return absl::InvalidArgumentError(absl::StrCat(source, ": plain_http must be a list"));
      for (const auto& h : *arr) {
        auto v = h.value<std::string>();
        if (!v)
          return absl::InvalidArgumentError(
              absl::StrCat(source, ": plain_http entries are strings"));
        c.plain_http.push_back(*v);
      }
      continue;
    }
    if (k == "cache_max_bytes") {
      auto v = node.value<int64_t>();
      if (!v || *v <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": cache_max_bytes must be positive"));
      }
      c.cache_max_bytes = *v;
      continue;
    }
    if (k == "index_small_file_interval") {
      auto v = node.is_integer() ? node.value<int64_t>() : std::nullopt;
      if (!v || *v < 0 || *v > (2 << 20)) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": index_small_file_interval must be between 0 (off) and 2097152 bytes"));
      }
      c.index_small_file_interval = *v;
      continue;
    }
    if (k == "readahead_spans") {
      auto v = node.is_integer() ? node.value<int64_t>() : std::nullopt;
      if (!v || *v < 0 || *v > 16) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": readahead_spans must be between 0 and 16"));
      }
      c.readahead_spans = *v;
      continue;
    }
    if (k == "passthrough_min_file_bytes") {
      auto v = node.is_integer() ? node.value<int64_t>() : std::nullopt;
      if (!v || *v < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": ", k, " must be a non-negative integer (bytes)"));
      }
      c.passthrough_min_file_bytes = *v;
      continue;
    }
    if (k == "memory_cache_bytes" || k == "fuse_workers") {
      const bool workers = k == "fuse_workers";
      auto v = node.is_integer() ? node.value<int64_t>() : std::nullopt;
      if (!v || *v < (workers ? 1 : 0) || (workers && *v > 256)) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": ", k, " must be ",
                         workers ? "between 1 and 256" : "a non-negative integer (bytes)"));
      }
      (workers ? c.fuse_workers : c.memory_cache_bytes) = *v;
      continue;
    }
    if (k == "index_on_first_use" || k == "takeover" || k == "local_trees" || k == "passthrough") {
      const toml::value<bool>* v = node.as_boolean();
      if (!v)
        return absl::InvalidArgumentError(absl::StrCat(source, ": ", k, " must be true or false"));
      (k == "takeover"      ? c.takeover
       : k == "local_trees" ? c.local_trees
       : k == "passthrough" ? c.passthrough
                            : c.index_on_first_use) = v->get();
      continue;
    }
    if (k == "access_profiles") {
      const toml::table* pt = node.as_table();
      if (!pt)
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": access_profiles must be a table"));
      absl::Status st = ParseProfiles(*pt, source, &c.access_profiles);
      if (!st.ok()) return st;
      continue;
    }
    if (k == "background_fill") {
      const toml::table* ft = node.as_table();
      if (!ft)
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": background_fill must be a table"));
      absl::Status st = ParseFill(*ft, source, &c.background_fill);
      if (!st.ok()) return st;
      continue;
    }
    std::string* field = k == "root"                 ? &c.root
                         : k == "address"            ? &c.address
                         : k == "log_level"          ? &c.log_level
                         : k == "hosts_dir"          ? &c.hosts_dir
                         : k == "docker_config"      ? &c.docker_config
                         : k == "metrics_address"    ? &c.metrics_address
                         : k == "remote_cache"       ? &c.remote_cache
                         : k == "containerd_root"    ? &c.containerd_root
                         : k == "fd_holder_socket"   ? &c.fd_holder_socket
                         : k == "fd_store"           ? &c.fd_store
                         : k == "fd_holder_binary"   ? &c.fd_holder_binary
                         : k == "index_trust"        ? &c.index_trust
                         : k == "cri_image_proxy"    ? &c.cri_image_proxy
                         : k == "cri_image_upstream" ? &c.cri_image_upstream
                                                     : nullptr;
    if (field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": unknown key \"", k, "\""));
    }
    auto v = node.value<std::string>();
    if (!v) return absl::InvalidArgumentError(absl::StrCat(source, ": ", k, " must be a string"));
    *field = *v;
  }
  if (!c.containerd_root.empty() && c.containerd_root[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": containerd_root must be an absolute path (or \"\")"));
  }
  if (c.fd_store != "auto" && c.fd_store != "systemd" && c.fd_store != "holder") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": fd_store must be \"auto\", \"systemd\" or \"holder\""));
  }
  if (c.index_trust != "bound" && c.index_trust != "fleet" && c.index_trust != "referrers") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": index_trust must be \"bound\", \"fleet\" or \"referrers\""));
  }
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warning" &&
      c.log_level != "error") {
    return absl::InvalidArgumentError(absl::StrCat(source, ": bad log_level ", c.log_level));
  }
  return c;
}

absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path, bool explicit_path) {
  std::ifstream f(path);
  if (!f) {
    if (explicit_path) return absl::NotFoundError(absl::StrCat("config ", path, " not found"));
    return DaemonConfig{};
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return ParseDaemonConfig(ss.str(), path);
}

}  // namespace clip
