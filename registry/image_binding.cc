#include "registry/image_binding.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "registry/clip_media_types.h"

namespace clip {
namespace {

using rapidjson::Value;

Value ArtifactEntry(const BoundArtifact& b, rapidjson::Document::AllocatorType& a) {
  Value entry(rapidjson::kObjectType);
  entry.AddMember("mediaType", rapidjson::StringRef(kOciManifest), a);
  entry.AddMember("artifactType", rapidjson::StringRef(kClipIndexArtifactType), a);
  entry.AddMember("digest", Value(b.artifact.digest.ToString().c_str(), a), a);
  entry.AddMember("size", static_cast<int64_t>(b.artifact.size), a);
  Value annotations(rapidjson::kObjectType);
  annotations.AddMember(rapidjson::StringRef(kClipIndexedManifestAnnotation),
                        Value(b.manifest.ToString().c_str(), a), a);
  entry.AddMember("annotations", annotations, a);
  return entry;
}

bool IsClipArtifact(const Value& v) {
  return v.IsObject() && v.HasMember("artifactType") && v["artifactType"].IsString() &&
         absl::string_view(v["artifactType"].GetString()) == kClipIndexArtifactType;
}

std::string Serialize(const rapidjson::Document& doc) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

// The manifest an artifact entry of an earlier binding names; empty when none.
std::string NamedManifest(const Value& v) {
  if (!v.HasMember("annotations") || !v["annotations"].IsObject()) return "";
  const Value& a = v["annotations"];
  auto it = a.FindMember(kClipIndexedManifestAnnotation);
  return it != a.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

// Puts the artifact entries first in `doc`'s manifests, after checking that each one's
// manifest is listed. An earlier binding's entry is replaced for the manifests bound
// now and kept for the others (each platform can be indexed on its own).
absl::Status AddArtifacts(rapidjson::Document& doc, const std::vector<BoundArtifact>& artifacts) {
  auto& a = doc.GetAllocator();
  std::set<std::string> listed, bound;
  for (const auto& m : doc["manifests"].GetArray()) {
    if (!IsClipArtifact(m) && m.IsObject() && m.HasMember("digest") && m["digest"].IsString()) {
      listed.insert(m["digest"].GetString());
    }
  }
  Value out(rapidjson::kArrayType);
  for (const BoundArtifact& b : artifacts) {
    const std::string m = b.manifest.ToString();
    if (listed.count(m) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("cannot bind an index artifact to ", m,
                                                     ": the image index does not list it"));
    }
    if (!bound.insert(m).second) {
      return absl::InvalidArgumentError(absl::StrCat("two index artifacts for manifest ", m));
    }
    out.PushBack(ArtifactEntry(b, a), a);
  }
  for (auto& m : doc["manifests"].GetArray()) {
    if (IsClipArtifact(m)) {
      const std::string named = NamedManifest(m);
      if (named.empty() || bound.count(named) > 0 || listed.count(named) == 0) continue;
    }
    out.PushBack(Value(m, a), a);
  }
  doc["manifests"] = out;
  return absl::OkStatus();
}

}  // namespace

std::optional<Descriptor> ImageBinding::ArtifactFor(const Digest& manifest) const {
  auto it = artifacts.find(manifest.ToString());
  if (it == artifacts.end()) return std::nullopt;
  return it->second;
}

bool ImageBinding::Lists(const Digest& manifest) const {
  for (const Descriptor& d : manifests) {
    if (d.digest == manifest) return true;
  }
  return false;
}

absl::StatusOr<std::string> BindImageIndex(absl::string_view image_index,
                                           const std::vector<BoundArtifact>& artifacts) {
  rapidjson::Document doc;
  doc.Parse(image_index.data(), image_index.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("manifests") ||
      !doc["manifests"].IsArray()) {
    return absl::InvalidArgumentError("not an image index");
  }
  // A Docker manifest list becomes an OCI index: only OCI descriptors carry artifactType.
  if (doc.HasMember("mediaType")) {
    doc["mediaType"].SetString(rapidjson::StringRef(kOciIndex));
  } else {
    doc.AddMember("mediaType", rapidjson::StringRef(kOciIndex), doc.GetAllocator());
  }
  CLIP_RETURN_IF_ERROR(AddArtifacts(doc, artifacts));
  return Serialize(doc);
}

absl::StatusOr<std::string> BindSingleManifest(const Descriptor& manifest,
                                               const std::vector<BoundArtifact>& artifacts) {
  if (!manifest.platform) {
    return absl::InvalidArgumentError("the manifest's descriptor needs its platform");
  }
  rapidjson::Document doc;
  doc.SetObject();
  auto& a = doc.GetAllocator();
  doc.AddMember("schemaVersion", 2, a);
  doc.AddMember("mediaType", rapidjson::StringRef(kOciIndex), a);
  Value entry(rapidjson::kObjectType);
  entry.AddMember("mediaType", Value(manifest.media_type.c_str(), a), a);
  entry.AddMember("digest", Value(manifest.digest.ToString().c_str(), a), a);
  entry.AddMember("size", static_cast<int64_t>(manifest.size), a);
  Value platform(rapidjson::kObjectType);
  platform.AddMember("architecture", Value(manifest.platform->architecture.c_str(), a), a);
  platform.AddMember("os", Value(manifest.platform->os.c_str(), a), a);
  if (!manifest.platform->variant.empty()) {
    platform.AddMember("variant", Value(manifest.platform->variant.c_str(), a), a);
  }
  entry.AddMember("platform", platform, a);
  Value manifests(rapidjson::kArrayType);
  manifests.PushBack(entry, a);
  doc.AddMember("manifests", manifests, a);
  CLIP_RETURN_IF_ERROR(AddArtifacts(doc, artifacts));
  return Serialize(doc);
}

absl::StatusOr<ImageBinding> ParseImageBinding(absl::string_view bytes) {
  rapidjson::Document doc;
  doc.Parse(bytes.data(), bytes.size());
  if (doc.HasParseError() || !doc.IsObject()) return absl::DataLossError("binding is not JSON");
  if (doc.HasMember("mediaType") &&
      (!doc["mediaType"].IsString() ||
       absl::string_view(doc["mediaType"].GetString()) != kOciIndex)) {
    return absl::DataLossError("binding is not an OCI image index");
  }
  CLIP_ASSIGN_OR_RETURN(std::vector<Descriptor> entries, ParseIndexManifests(bytes));
  ImageBinding out;
  std::vector<const Descriptor*> artifacts;
  for (const Descriptor& d : entries) {
    if (d.artifact_type == kClipIndexArtifactType) {
      artifacts.push_back(&d);
    } else {
      out.manifests.push_back(d);
    }
  }
  for (const Descriptor* d : artifacts) {
    const std::string at = d->digest.ToString();
    if (d->platform) {
      return absl::DataLossError(absl::StrCat("binding: artifact ", at, " has a platform"));
    }
    if (d->media_type != kOciManifest) {
      return absl::DataLossError(absl::StrCat("binding: artifact ", at, " is not an OCI manifest"));
    }
    auto named = d->annotations.find(kClipIndexedManifestAnnotation);
    if (named == d->annotations.end()) {
      return absl::DataLossError(absl::StrCat("binding: artifact ", at, " names no manifest (",
                                              kClipIndexedManifestAnnotation, ")"));
    }
    absl::StatusOr<Digest> manifest = Digest::Parse(named->second);
    if (!manifest.ok()) {
      return absl::DataLossError(
          absl::StrCat("binding: artifact ", at, ": ", manifest.status().message()));
    }
    if (!out.Lists(*manifest)) {
      return absl::DataLossError(absl::StrCat("binding: artifact ", at, " is for manifest ",
                                              manifest->ToString(),
                                              ", which the index does not list"));
    }
    if (!out.artifacts.emplace(manifest->ToString(), *d).second) {
      return absl::DataLossError(
          absl::StrCat("binding: two artifacts for manifest ", manifest->ToString()));
    }
  }
  return out;
}

}  // namespace clip
