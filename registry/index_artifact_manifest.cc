#include "registry/index_artifact_manifest.h"

#include <set>

#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "registry/clip_media_types.h"

namespace clip {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr char kEmptyJson[] = "{}";

void WriteDescriptor(Writer& w, const std::string& media_type, const Digest& digest,
                     uint64_t size) {
  w.Key("mediaType");
  w.String(media_type.c_str());
  w.Key("digest");
  w.String(digest.ToString().c_str());
  w.Key("size");
  w.Uint64(size);
}

}  // namespace

std::string IndexArtifactManifest(const Descriptor& subject,
                                  const std::vector<LayerIndexBlob>& indexes) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("schemaVersion");
  w.Int(2);
  w.Key("mediaType");
  w.String(kOciManifest);
  w.Key("artifactType");
  w.String(kClipIndexArtifactType);
  w.Key("config");
  w.StartObject();
  WriteDescriptor(w, kOciEmptyMediaType, Digest::Of(kEmptyJson), sizeof(kEmptyJson) - 1);
  w.EndObject();
  w.Key("layers");
  w.StartArray();
  auto entry = [&](const char* media_type, const Digest& layer, const std::string& blob) {
    w.StartObject();
    WriteDescriptor(w, media_type, Digest::Of(blob), blob.size());
    w.Key("annotations");
    w.StartObject();
    w.Key(kClipLayerAnnotation);
    w.String(layer.ToString().c_str());
    w.EndObject();
    w.EndObject();
  };
  for (const LayerIndexBlob& i : indexes) entry(kClipIndexMediaType, i.layer, i.encoded);
  for (const LayerIndexBlob& i : indexes) {  // after every index (see the header)
    if (!i.profile.empty()) entry(kClipProfileMediaType, i.layer, i.profile);
  }
  w.EndArray();
  w.Key("subject");
  w.StartObject();
  WriteDescriptor(w, subject.media_type, subject.digest, static_cast<uint64_t>(subject.size));
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

absl::StatusOr<IndexArtifact> ParseIndexArtifact(absl::string_view bytes) {
  rapidjson::Document doc;
  doc.Parse(bytes.data(), bytes.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("layers") ||
      !doc["layers"].IsArray()) {
    return absl::DataLossError("not a clip index artifact manifest (no layers)");
  }
  IndexArtifact out;
  if (doc.HasMember("artifactType") && doc["artifactType"].IsString()) {
    out.artifact_type = doc["artifactType"].GetString();
  }
  if (doc.HasMember("subject") && doc["subject"].IsObject() && doc["subject"].HasMember("digest") &&
      doc["subject"]["digest"].IsString()) {
    absl::StatusOr<Digest> subject = Digest::Parse(doc["subject"]["digest"].GetString());
    if (subject.ok()) out.subject = *subject;
  }
  std::set<std::string> seen;
  for (const auto& l : doc["layers"].GetArray()) {
    if (!l.IsObject() || !l.HasMember("annotations") || !l.HasMember("digest") ||
        !l["digest"].IsString()) {
      continue;
    }
    const auto& ann = l["annotations"];
    if (!ann.IsObject() || !ann.HasMember(kClipLayerAnnotation) ||
        !ann[kClipLayerAnnotation].IsString()) {
      continue;
    }
    absl::StatusOr<Digest> layer = Digest::Parse(ann[kClipLayerAnnotation].GetString());
    absl::StatusOr<Digest> blob = Digest::Parse(l["digest"].GetString());
    if (!layer.ok() || !blob.ok()) continue;
    const std::string media =
        l.HasMember("mediaType") && l["mediaType"].IsString() ? l["mediaType"].GetString() : "";
    if (media == kClipProfileMediaType) {  // belongs to this artifact's index of the layer
      for (PublishedIndex& p : out.indexes) {
        if (p.layer == *layer && !p.profile) p.profile = *blob;
      }
      continue;
    }
    if (!media.empty() && media != kClipIndexMediaType) continue;  // unknown: skipped
    if (!seen.insert(layer->ToString()).second) continue;
    out.indexes.push_back({*layer, *blob, std::nullopt});
  }
  return out;
}

}  // namespace clip
