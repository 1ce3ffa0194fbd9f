#include "registry/hosts_config.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "toml++/toml.h"

namespace clip {
namespace {

RegistryEndpoint DefaultEndpoint(const std::string& domain) {
  RegistryEndpoint ep;
  ep.host = domain == Reference::kDockerHub ? "registry-1.docker.io" : domain;
  return ep;
}

absl::Status ApplyUrl(absl::string_view url, bool override_path, RegistryEndpoint* ep) {
  size_t s = url.find("://");
  if (s == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("host \"", url, "\" needs a scheme"));
  }
  ep->scheme = std::string(url.substr(0, s));
  if (ep->scheme != "http" && ep->scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported scheme in ", url));
  }
  absl::string_view rest = url.substr(s + 3);
  size_t slash = rest.find('/');
  ep->host = std::string(rest.substr(0, slash));
  std::string path = slash == absl::string_view::npos ? "" : std::string(rest.substr(slash));
  while (!path.empty() && path.back() == '/') path.pop_back();
  // containerd appends /v2 unless override_path says the path is complete.
  if (override_path) {
    ep->path_prefix = path;
  } else {
    ep->path_prefix = absl::EndsWith(path, "/v2") ? path : path + "/v2";
  }
  if (ep->host.empty()) return absl::InvalidArgumentError(absl::StrCat("no host in ", url));
  return absl::OkStatus();
}

absl::Status ApplyTls(const toml::table& t, RegistryEndpoint* ep) {
  if (auto ca = t["ca"]; ca) {
    if (auto s = ca.value<std::string>()) {
      ep->tls.ca_file = *s;
    } else if (auto* arr = ca.as_array(); arr && !arr->empty()) {
      if (auto first = (*arr)[0].value<std::string>()) ep->tls.ca_file = *first;
    } else {
      return absl::InvalidArgumentError("ca must be a path or a list of paths");
    }
  }
  if (auto sv = t["skip_verify"].value<bool>()) ep->tls.insecure_skip_verify = *sv;
  if (auto client = t["client"]; client) {
    if (auto s = client.value<std::string>()) {
      ep->tls.client_cert = *s;  // A combined PEM with the key.
    } else if (auto* arr = client.as_array(); arr && !arr->empty()) {
      const toml::node& first = (*arr)[0];
      if (auto* pair = first.as_array(); pair && !pair->empty()) {
        ep->tls.client_cert = (*pair)[0].value_or(std::string());
        if (pair->size() > 1) ep->tls.client_key = (*pair)[1].value_or(std::string());
      } else if (auto s2 = first.value<std::string>()) {
        ep->tls.client_cert = *s2;
      }
    } else {
      return absl::InvalidArgumentError("client must be a path or a list of [cert, key]");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<RegistryEndpoint>> ParseHostsToml(const std::string& domain,
                                                             const std::string& text,
                                                             const std::string& source_name) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": ", std::string(e.description())));
  }
  std::vector<RegistryEndpoint> out;
  // [host."..."] tables in file order (toml++ sorts keys; the source position does not).
  if (auto* hosts = root["host"].as_table()) {
    std::vector<std::pair<toml::source_position, std::string>> order;
    for (auto& [key, node] : *hosts)
      order.emplace_back(node.source().begin, std::string(key.str()));
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return a.first.line != b.first.line ? a.first.line < b.first.line
                                          : a.first.column < b.first.column;
    });
    for (const auto& [pos, url] : order) {
      const toml::table* t = (*hosts)[url].as_table();
      if (!t) return absl::InvalidArgumentError(absl::StrCat(source_name, ": bad [host] table"));
      RegistryEndpoint ep;
      CLIP_RETURN_IF_ERROR(ApplyUrl(url, (*t)["override_path"].value_or(false), &ep));
      CLIP_RETURN_IF_ERROR(ApplyTls(*t, &ep));
      if (auto* caps = (*t)["capabilities"].as_array()) {
        ep.pull = ep.resolve = ep.push = false;
        for (auto& c : *caps) {
          std::string cap = c.value_or(std::string());
          if (cap == "pull") ep.pull = true;
          if (cap == "resolve") ep.resolve = true;
          if (cap == "push") ep.push = true;
        }
      }
      out.push_back(std::move(ep));
    }
  }
  RegistryEndpoint server = DefaultEndpoint(domain);
  if (auto s = root["server"].value<std::string>()) {
    CLIP_RETURN_IF_ERROR(ApplyUrl(*s, root["override_path"].value_or(false), &server));
  }
  CLIP_RETURN_IF_ERROR(ApplyTls(root, &server));
  // An endpoint listed both as a [host] and as the server is tried once, where the
  // [host] table puts it (a miss must not ask the same registry twice).
  const bool listed = std::any_of(out.begin(), out.end(), [&](const RegistryEndpoint& e) {
    return e.scheme == server.scheme && e.host == server.host &&
           e.path_prefix == server.path_prefix;
  });
  if (!listed) out.push_back(std::move(server));
  return out;
}

absl::StatusOr<std::vector<RegistryEndpoint>> HostsDirectory::Load(
    const std::string& domain) const {
  for (const std::string& dir : {domain, std::string("_default")}) {
    std::string path = absl::StrCat(config_path_, "/", dir, "/hosts.toml");
    std::ifstream f(path);
    if (!f) continue;
    std::stringstream ss;
    ss << f.rdbuf();
    return ParseHostsToml(domain, ss.str(), path);
  }
  return std::vector<RegistryEndpoint>{DefaultEndpoint(domain)};
}

std::vector<RegistryEndpoint> HostsDirectory::Endpoints(const std::string& domain) const {
  absl::StatusOr<std::vector<RegistryEndpoint>> eps = Load(domain);
  if (!eps.ok()) {
    std::cerr << "clip: ignoring hosts configuration: " << eps.status().message() << "\n";
    return {DefaultEndpoint(domain)};
  }
  return *std::move(eps);
}

}  // namespace clip
