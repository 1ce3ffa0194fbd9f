#include "cmd/image_index_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "cache/layer_doc_store.h"
#include "common/file_blob_reader.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "common/thread_pool.h"
#include "index/access_profile.h"
#include "index/index_format.h"
#include "index/layer_indexer.h"
#include "rapidjson/document.h"
#include "registry/image_binding.h"
#include "registry/index_artifact.h"

namespace clip {
namespace {

// gzip-compressed or plain tar layers, OCI and Docker media types.
bool Indexable(const std::string& media_type) {
  return (absl::StartsWith(media_type, "application/vnd.oci.image.layer.") &&
          (absl::EndsWith(media_type, ".tar") || absl::EndsWith(media_type, ".tar+gzip"))) ||
         media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

std::string Mb(uint64_t bytes) { return absl::StrFormat("%.1f MB", bytes / 1e6); }

struct Job {
  Descriptor layer;
  absl::Status status;
  std::string encoded;
  int entries = 0;
  uint64_t uncompressed = 0;
};

class Progress {
 public:
  Progress(std::ostream& out, bool enabled, uint64_t total, size_t layers)
      : out_(out), enabled_(enabled), total_(total), layers_(layers) {}
  void Add(uint64_t bytes) {
    uint64_t done = done_.fetch_add(bytes) + bytes;
    Draw(done, false);
  }
  void LayerDone() {
    layers_done_.fetch_add(1);
    Draw(done_.load(), false);
  }
  void Finish() { Draw(done_.load(), true); }

 private:
  void Draw(uint64_t done, bool last) {
    if (!enabled_) return;
    absl::MutexLock lock(&mu_);
    absl::Time now = absl::Now();
    if (!last && now - drawn_ < absl::Milliseconds(100)) return;
    drawn_ = now;
    constexpr int kWidth = 30;
    int filled = total_ == 0 ? kWidth : static_cast<int>(kWidth * done / total_);
    out_ << "\r[" << std::string(filled, '#') << std::string(kWidth - filled, ' ') << "] "
         << absl::StrFormat("%3d%% %s / %s, layers %d/%d", total_ ? 100 * done / total_ : 100,
                            Mb(done), Mb(total_), layers_done_.load(), layers_)
         << (last ? "\n" : "") << std::flush;
  }
  std::ostream& out_;
  const bool enabled_;
  const uint64_t total_;
  const size_t layers_;
  std::atomic<uint64_t> done_{0};
  std::atomic<int> layers_done_{0};
  absl::Mutex mu_;
  absl::Time drawn_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

absl::Status IndexOne(const RegistryClient& registry, const IndexOptions& index_options,
                      const Reference& repo, const std::string& tmp_dir, Progress& progress,
                      Job& job) {
  std::string path = absl::StrCat(tmp_dir, "/clip-layer-XXXXXX");
  int fd = mkstemp(path.data());
  if (fd < 0)
    return absl::InternalError(absl::StrCat("mkstemp in ", tmp_dir, ": ", strerror(errno)));
  unlink(path.c_str());  // anonymous: nothing left behind whatever happens
  absl::Status status = registry.FetchBlob(repo, job.layer.digest, [&](absl::string_view chunk) {
    const char* p = chunk.data();
    size_t left = chunk.size();
    while (left > 0) {
      ssize_t n = write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return absl::InternalError(absl::StrCat("temporary file: ", strerror(errno)));
      p += n;
      left -= static_cast<size_t>(n);
    }
    progress.Add(chunk.size());
    return absl::OkStatus();
  });
  if (!status.ok()) {
    close(fd);
    return status;
  }
  auto blob = FileBlobReader::Open(absl::StrCat("/proc/self/fd/", fd));
  close(fd);
  CLIP_RETURN_IF_ERROR(blob.status());
  CLIP_ASSIGN_OR_RETURN(index::v1::LayerIndex index, BuildLayerIndex(**blob, index_options));
  if (index.layer_digest() != job.layer.digest.ToString()) {
    return absl::DataLossError(
        absl::StrCat("layer ", job.layer.digest.ToString(), " indexed as ", index.layer_digest()));
  }
  job.entries = index.entries_size();
  job.uncompressed = index.uncompressed_size();
  CLIP_ASSIGN_OR_RETURN(job.encoded, EncodeCheckedIndex(index));
  return absl::OkStatus();
}

// The platform an image's config declares ("os", "architecture", "variant").
absl::StatusOr<Platform> ConfigPlatform(const RegistryClient& registry, const Reference& ref,
                                        const ImageManifest& image) {
  CLIP_ASSIGN_OR_RETURN(std::string config, FetchBlobToString(registry, ref, image.config.digest));
  rapidjson::Document doc;
  doc.Parse(config.data(), config.size());
  auto field = [&](const char* name) -> std::string {
    return doc.IsObject() && doc.HasMember(name) && doc[name].IsString() ? doc[name].GetString()
                                                                         : "";
  };
  Platform p{field("os"), field("architecture"), field("variant")};
  if (p.os.empty() || p.architecture.empty()) {
    return absl::DataLossError("the image config names no os/architecture");
  }
  return p;
}

// Moves the bind tag to the image's binding (registry/image_binding.h): the index the
// reference resolves to (or a new one for a single-manifest image) with `artifact`
// bound to the indexed manifest.
absl::Status PublishBinding(const RegistryClient& registry, const ImageIndexOptions& options,
                            const ResolvedImage& resolved, const Descriptor& artifact,
                            std::ostream& out) {
  const Reference& ref = resolved.ref;
  const std::string tag = options.bind_tag.empty() ? ref.tag() : options.bind_tag;
  if (tag.empty()) {
    out << "not bound: " << ref.ToString()
        << " is a digest reference; give --bind-tag to publish a bound image index\n";
    return absl::OkStatus();
  }
  CLIP_ASSIGN_OR_RETURN(Manifest top, registry.FetchManifest(ref));
  const std::vector<BoundArtifact> artifacts = {{resolved.manifest.digest, artifact}};
  std::string bound;
  if (IsIndex(top.media_type)) {
    CLIP_ASSIGN_OR_RETURN(bound, BindImageIndex(top.bytes, artifacts));
  } else {
    Descriptor single;
    single.media_type = top.media_type;
    single.digest = top.digest;
    single.size = static_cast<int64_t>(top.bytes.size());
    CLIP_ASSIGN_OR_RETURN(single.platform, ConfigPlatform(registry, ref, resolved.image));
    CLIP_ASSIGN_OR_RETURN(bound, BindSingleManifest(single, artifacts));
  }
  CLIP_ASSIGN_OR_RETURN(Digest digest, registry.PushManifest(ref, tag, kOciIndex, bound));
  out << "bound " << ref.Name() << ":" << tag << " -> " << digest.ToString()
      << " (the image's manifests, and its clip index artifact for "
      << resolved.manifest.digest.ToString() << "); pin " << ref.Name() << "@" << digest.ToString()
      << "\n";
  return absl::OkStatus();
}

}  // namespace

absl::Status ImageIndexCommand(const ImageIndexOptions& options, const RegistryClient& registry,
                               std::ostream& out, std::ostream& progress_out) {
  CLIP_ASSIGN_OR_RETURN(ResolvedImage resolved,
                        ResolveImage(registry, options.image, options.platform));
  const Reference& ref = resolved.ref;
  const Platform& platform = resolved.platform;
  const Manifest& manifest = resolved.manifest;
  const ImageManifest& image = resolved.image;
  out << ref.ToString() << " " << platform.ToString() << " manifest " << manifest.digest.ToString()
      << ", " << image.layers.size() << " layers\n";

  std::vector<Job> jobs;
  uint64_t total = 0;
  for (const Descriptor& l : image.layers) {
    if (!Indexable(l.media_type)) {
      out << "  " << l.digest.ToString() << " " << l.media_type
          << ": not indexable, left to the ordinary path\n";
      continue;
    }
    Job job;
    job.layer = l;
    jobs.push_back(std::move(job));
    total += static_cast<uint64_t>(std::max<int64_t>(l.size, 0));
  }
  std::string tmp = options.tmp_dir;
  if (tmp.empty()) tmp = getenv("TMPDIR") != nullptr ? getenv("TMPDIR") : "/var/tmp";
  Progress progress(progress_out, options.progress, total, jobs.size());
  ParallelFor(jobs.size(), options.jobs, [&](size_t i) {
    jobs[i].status = IndexOne(registry, options.index, ref, tmp, progress, jobs[i]);
    progress.LayerDone();
  });
  progress.Finish();

  std::vector<LayerIndexBlob> indexes;
  for (const Job& j : jobs) {
    if (!j.status.ok()) {
      return WithContext(j.status, absl::StrCat("layer ", j.layer.digest.ToString()));
    }
    out << absl::StrFormat("  %s %s -> index %d bytes (%.3f%% of %s), %d entries\n",
                           j.layer.digest.ToString(), Mb(j.layer.size), j.encoded.size(),
                           j.uncompressed ? 100.0 * j.encoded.size() / j.uncompressed : 0.0,
                           Mb(j.uncompressed), j.entries);
    LayerIndexBlob blob{j.layer.digest, j.encoded, ""};
    if (!options.profiles_dir.empty()) {
      absl::StatusOr<std::optional<std::string>> stored =
          LayerDocStore(options.profiles_dir).Get(j.layer.digest);
      if (stored.ok() && stored->has_value()) {
        std::string profile = **std::move(stored);
        absl::StatusOr<index::v1::AccessProfile> p = DecodeProfile(profile);
        absl::StatusOr<index::v1::LayerIndex> index = DecodeIndex(j.encoded);
        absl::Status fits = !p.ok()       ? p.status()
                            : !index.ok() ? index.status()
                                          : CheckProfileFor(*p, *index);
        if (fits.ok()) {
          blob.profile = std::move(profile);
          out << absl::StrFormat("    access profile: %d spans\n", p->spans_size());
        } else {
          out << "    access profile not published: " << fits.message() << "\n";
        }
      }
    }
    indexes.push_back(std::move(blob));
    if (!options.store_dir.empty()) {
      const LayerDocStore store(options.store_dir);
      CLIP_RETURN_IF_ERROR(store.Create());
      // Built here from the verified blob: a daemon with this store believes it.
      CLIP_RETURN_IF_ERROR(store.Put(j.layer.digest, j.encoded, kOriginBuilt));
    }
  }
  if (options.push) {
    Descriptor subject;
    subject.media_type = manifest.media_type;
    subject.digest = manifest.digest;
    subject.size = static_cast<int64_t>(manifest.bytes.size());
    CLIP_ASSIGN_OR_RETURN(Digest artifact, PublishIndexArtifact(registry, ref, subject, indexes));
    out << "pushed " << ref.Name() << "@" << artifact.ToString() << " (clip indexes of "
        << manifest.digest.ToString() << ")\n";
    if (options.bind) {
      Descriptor bound;
      bound.media_type = kOciManifest;
      bound.digest = artifact;
      bound.size = static_cast<int64_t>(IndexArtifactManifest(subject, indexes).size());
      CLIP_RETURN_IF_ERROR(PublishBinding(registry, options, resolved, bound, out));
    }
  }
  return absl::OkStatus();
}

}  // namespace clip
