#include "registry/manifest.h"

#include <sys/utsname.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"

namespace clip {
namespace {

absl::StatusOr<Descriptor> ParseDescriptor(const rapidjson::Value& v) {
  if (!v.IsObject() || !v.HasMember("digest") || !v["digest"].IsString()) {
    return absl::DataLossError("descriptor without a digest");
  }
  Descriptor d;
  CLIP_ASSIGN_OR_RETURN(d.digest, Digest::Parse(v["digest"].GetString()));
  if (v.HasMember("mediaType") && v["mediaType"].IsString())
    d.media_type = v["mediaType"].GetString();
  if (v.HasMember("size") && v["size"].IsInt64()) d.size = v["size"].GetInt64();
  if (v.HasMember("artifactType") && v["artifactType"].IsString()) {
    d.artifact_type = v["artifactType"].GetString();
  }
  if (v.HasMember("annotations") && v["annotations"].IsObject()) {
    for (auto it = v["annotations"].MemberBegin(); it != v["annotations"].MemberEnd(); ++it) {
      if (it->value.IsString()) d.annotations[it->name.GetString()] = it->value.GetString();
    }
  }
  if (v.HasMember("platform") && v["platform"].IsObject()) {
    const auto& p = v["platform"];
    Platform plat;
    plat.os = p.HasMember("os") && p["os"].IsString() ? p["os"].GetString() : "";
    plat.architecture = p.HasMember("architecture") && p["architecture"].IsString()
                            ? p["architecture"].GetString()
                            : "";
    plat.variant =
        p.HasMember("variant") && p["variant"].IsString() ? p["variant"].GetString() : "";
    d.platform = plat;
  }
  return d;
}

}  // namespace

absl::StatusOr<std::vector<Descriptor>> ParseIndexManifests(absl::string_view bytes) {
  rapidjson::Document doc;
  doc.Parse(bytes.data(), bytes.size());
  if (doc.HasParseError() || !doc.IsObject()) return absl::DataLossError("index is not JSON");
  std::vector<Descriptor> out;
  if (!doc.HasMember("manifests")) return out;
  if (!doc["manifests"].IsArray()) return absl::DataLossError("index manifests is not a list");
  for (const auto& m : doc["manifests"].GetArray()) {
    CLIP_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(m));
    out.push_back(std::move(d));
  }
  return out;
}

bool IsIndex(absl::string_view media_type) {
  return media_type == kOciIndex || media_type == kDockerManifestList;
}

std::string NormalizeVariant(const Platform& p) {
  if (p.architecture == "arm64" && p.variant.empty()) return "v8";
  return p.variant;
}

absl::StatusOr<Platform> Platform::Parse(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("platform \"", text, "\" is not os/architecture[/variant]"));
  }
  Platform p;
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

std::string Platform::ToString() const {
  return absl::StrCat(os, "/", architecture, variant.empty() ? "" : "/", variant);
}

absl::StatusOr<ImageManifest> ParseImageManifest(absl::string_view bytes) {
  rapidjson::Document doc;
  doc.Parse(bytes.data(), bytes.size());
  if (doc.HasParseError() || !doc.IsObject()) return absl::DataLossError("manifest is not JSON");
  if (!doc.HasMember("config") || !doc.HasMember("layers") || !doc["layers"].IsArray()) {
    return absl::DataLossError("not an image manifest (no config or layers)");
  }
  ImageManifest m;
  CLIP_ASSIGN_OR_RETURN(m.config, ParseDescriptor(doc["config"]));
  for (const auto& l : doc["layers"].GetArray()) {
    CLIP_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor(l));
    m.layers.push_back(std::move(d));
  }
  return m;
}

Platform Platform::Host() {
  Platform p;
  struct utsname u;
  if (uname(&u) == 0) {
    absl::string_view m = u.machine;
    if (m == "aarch64") {
      p.architecture = "arm64";
    } else if (m == "x86_64") {
      p.architecture = "amd64";
    } else if (absl::StartsWith(m, "armv7")) {
      p.architecture = "arm";
      p.variant = "v7";
    } else {
      p.architecture = std::string(m);
    }
  }
  return p;
}

}  // namespace clip
