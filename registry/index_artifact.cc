#include "registry/index_artifact.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/thread_pool.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace clip {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr char kEmptyJson[] = "{}";  // the artifact's config (the OCI empty descriptor)

bool IsArtifactFor(const rapidjson::Value& v, const Digest& digest) {
  return v.IsObject() && v.HasMember("digest") && v["digest"].IsString() &&
         v["digest"].GetString() == digest.ToString();
}

// The `sha256-<hex>` fallback index with `artifact` added (kept when already listed).
absl::StatusOr<std::string> FallbackIndex(const std::optional<std::string>& existing,
                                          const Digest& artifact, uint64_t artifact_size) {
  rapidjson::Document doc;
  if (existing) {
    doc.Parse(existing->data(), existing->size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("manifests") ||
        !doc["manifests"].IsArray()) {
      return absl::FailedPreconditionError(
          "the referrers fallback tag holds something that is not an OCI index; not overwritten");
    }
    for (const auto& m : doc["manifests"].GetArray()) {
      if (IsArtifactFor(m, artifact)) return *existing;
    }
  } else {
    doc.SetObject();
    doc.AddMember("schemaVersion", 2, doc.GetAllocator());
    doc.AddMember("mediaType", rapidjson::StringRef(kOciIndex), doc.GetAllocator());
    doc.AddMember("manifests", rapidjson::Value(rapidjson::kArrayType), doc.GetAllocator());
  }
  auto& a = doc.GetAllocator();
  rapidjson::Value entry(rapidjson::kObjectType);
  entry.AddMember("mediaType", rapidjson::StringRef(kOciManifest), a);
  entry.AddMember("digest", rapidjson::Value(artifact.ToString().c_str(), a), a);
  entry.AddMember("size", static_cast<uint64_t>(artifact_size), a);
  entry.AddMember("artifactType", rapidjson::StringRef(kClipIndexArtifactType), a);
  doc["manifests"].PushBack(entry, a);
  rapidjson::StringBuffer buf;
  Writer w(buf);
  doc.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

absl::StatusOr<Digest> PublishIndexArtifact(const RegistryClient& client, const Reference& repo,
                                            const Descriptor& subject,
                                            const std::vector<LayerIndexBlob>& indexes) {
  CLIP_RETURN_IF_ERROR(client.PushBlob(repo, Digest::Of(kEmptyJson), kEmptyJson));
  for (const LayerIndexBlob& i : indexes) {
    CLIP_RETURN_IF_ERROR(client.PushBlob(repo, Digest::Of(i.encoded), i.encoded));
    if (!i.profile.empty()) {
      CLIP_RETURN_IF_ERROR(client.PushBlob(repo, Digest::Of(i.profile), i.profile));
    }
  }
  std::string artifact = IndexArtifactManifest(subject, indexes);
  CLIP_ASSIGN_OR_RETURN(Digest digest, client.PushManifest(repo, "", kOciManifest, artifact));
  // The fallback tag, for registries without the referrers API. Kept up to date even
  // when the registry has the API: a mirror without it may serve the image later.
  CLIP_ASSIGN_OR_RETURN(
      Reference tag, Reference::Parse(absl::StrCat(repo.Name(), ":sha256-", subject.digest.Hex())));
  std::optional<std::string> existing;
  absl::StatusOr<Manifest> current = client.FetchManifest(tag);
  if (current.ok()) {
    existing = current->bytes;
  } else if (current.status().code() != absl::StatusCode::kNotFound) {
    return current.status();
  }
  CLIP_ASSIGN_OR_RETURN(std::string fallback, FallbackIndex(existing, digest, artifact.size()));
  if (!existing || fallback != *existing) {
    CLIP_RETURN_IF_ERROR(
        client
            .PushManifest(repo, absl::StrCat("sha256-", subject.digest.Hex()), kOciIndex, fallback)
            .status());
  }
  return digest;
}

absl::StatusOr<std::vector<PublishedIndex>> ListPublishedIndexes(const RegistryClient& client,
                                                                 const Reference& repo,
                                                                 const Digest& subject) {
  CLIP_ASSIGN_OR_RETURN(std::vector<Descriptor> artifacts,
                        client.Referrers(repo, subject, kClipIndexArtifactType));
  std::vector<PublishedIndex> out;
  std::set<std::string> seen;
  // The newest artifact last (fallback tags append): walk from the end, first one wins.
  for (auto a = artifacts.rbegin(); a != artifacts.rend(); ++a) {
    CLIP_ASSIGN_OR_RETURN(Manifest m, client.FetchManifest(repo.WithDigest(a->digest)));
    absl::StatusOr<IndexArtifact> artifact = ParseIndexArtifact(m.bytes);
    if (!artifact.ok()) continue;
    for (PublishedIndex& p : artifact->indexes) {
      if (seen.insert(p.layer.ToString()).second) out.push_back(std::move(p));
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> FetchPublishedIndexes(
    const RegistryClient& client, const Reference& repo, const Digest& subject, int parallel) {
  CLIP_ASSIGN_OR_RETURN(std::vector<PublishedIndex> all,
                        ListPublishedIndexes(client, repo, subject));
  return FetchIndexBlobs(client, repo, all, parallel);
}

absl::StatusOr<std::map<std::string, std::string>> FetchIndexBlobs(
    const RegistryClient& client, const Reference& repo, const std::vector<PublishedIndex>& all,
    int parallel, std::map<std::string, std::string>* profiles) {
  // One list of blobs (indexes, then the profiles asked for), fetched `parallel` at a time.
  struct Wanted {
    const PublishedIndex* of;
    Digest blob;
    bool profile;
  };
  std::vector<Wanted> wanted;
  for (const PublishedIndex& p : all) wanted.push_back({&p, p.blob, false});
  if (profiles != nullptr) {
    for (const PublishedIndex& p : all) {
      if (p.profile) wanted.push_back({&p, *p.profile, true});
    }
  }
  std::vector<absl::StatusOr<std::string>> got(wanted.size(), absl::UnknownError("not fetched"));
  ParallelFor(wanted.size(), parallel,
              [&](size_t i) { got[i] = FetchBlobToString(client, repo, wanted[i].blob); });
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < wanted.size(); ++i) {
    const std::string layer = wanted[i].of->layer.ToString();
    if (wanted[i].profile) {  // optional: a profile that does not come is no error
      if (got[i].ok()) (*profiles)[layer] = *std::move(got[i]);
      continue;
    }
    if (!got[i].ok()) {
      return WithContext(got[i].status(), absl::StrCat("index of ", layer));
    }
    out[layer] = *std::move(got[i]);
  }
  return out;
}

}  // namespace clip
