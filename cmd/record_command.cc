#include "cmd/record_command.h"

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cache/layer_doc_store.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "index/access_profile.h"

extern char** environ;

namespace clip {
namespace {

// Runs argv (PATH searched) with this process's stdio; its exit code.
absl::StatusOr<int> Run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int err = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (err != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot run ", argv[0], ": ", strerror(err)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::InternalError(absl::StrCat("waitpid ", argv[0]));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

absl::Status RecordCommand(const RecordOptions& options, const RegistryClient& registry,
                           std::ostream& out) {
  const LayerDocStore store(options.daemon_root + "/profiles");
  CLIP_ASSIGN_OR_RETURN(ResolvedImage image,
                        ResolveImage(registry, options.pull.image, options.pull.platform));
  for (const Descriptor& layer : image.image.layers) {
    if (store.Remove(layer.digest)) {
      out << "  layer " << layer.digest.ToString() << ": earlier access profile dropped\n";
    }
  }
  CLIP_ASSIGN_OR_RETURN(LazyPullReport pulled, LazyPull(options.pull, registry, out));
  if (pulled.present > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        pulled.present, " layer(s) of ", options.pull.image,
        " were mounted before this pull: a recording needs the layers' first mount; remove "
        "the image first (ctr images rm --sync)"));
  }
  const std::vector<std::string> ctr = {options.ctr, "-a", options.pull.containerd_address, "-n",
                                        options.pull.ns};
  auto remove_image = [&]() -> absl::Status {
    std::vector<std::string> rm = ctr;
    for (const char* a : {"images", "rm", "--sync"}) rm.push_back(a);
    rm.push_back(options.pull.image);
    CLIP_ASSIGN_OR_RETURN(int rm_code, Run(rm));
    if (rm_code != 0) return absl::InternalError("ctr images rm failed");
    return absl::OkStatus();
  };
  if (pulled.lazy == 0) {  // this pull downloaded it: leave the node as it was
    if (!options.keep_image) CLIP_RETURN_IF_ERROR(remove_image());
    return absl::FailedPreconditionError(
        absl::StrCat(options.pull.image, " has no lazily mounted layer (no clip index?)"));
  }
  std::vector<std::string> run = ctr;
  const std::string id = absl::StrCat("clip-record-", getpid());
  for (const char* a : {"run", "--rm", "--snapshotter"}) run.push_back(a);
  run.push_back(options.pull.snapshotter);
  run.push_back(options.pull.image);
  run.push_back(id);
  run.insert(run.end(), options.command.begin(), options.command.end());
  out << "running " << absl::StrJoin(run, " ") << "\n";
  out.flush();
  CLIP_ASSIGN_OR_RETURN(int code, Run(run));
  if (code != 0) out << "the container exited with " << code << " (recorded all the same)\n";
  if (!options.keep_image) CLIP_RETURN_IF_ERROR(remove_image());
  // Each layer the container read has a profile now (or, with keep_image, once its reads
  // have been quiet long enough); a layer it never read has none.
  const absl::Time deadline = absl::Now() + (options.keep_image ? options.wait : absl::Seconds(2));
  int recorded = 0;
  for (const Descriptor& layer : image.image.layers) {
    std::optional<std::string> bytes;
    while (!(bytes = store.Get(layer.digest).value_or(std::nullopt)) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    if (!bytes) {
      out << "  layer " << layer.digest.ToString() << ": no access profile (not read at start)\n";
      continue;
    }
    absl::StatusOr<index::v1::AccessProfile> p = DecodeProfile(*bytes);
    if (!p.ok()) return p.status();
    ++recorded;
    out << "  layer " << layer.digest.ToString() << ": access profile of " << p->spans_size()
        << " spans, read in the first " << p->recorded_millis() << " ms\n";
    if (!options.output_dir.empty()) {
      const LayerDocStore output(options.output_dir);
      CLIP_RETURN_IF_ERROR(output.Create(0755));
      CLIP_RETURN_IF_ERROR(output.Put(layer.digest, *bytes));
    }
  }
  out << "recorded " << recorded << " access profile(s) of " << options.pull.image
      << (options.output_dir.empty() ? "" : absl::StrCat(" into ", options.output_dir)) << "\n";
  return recorded > 0 ? absl::OkStatus()
                      : absl::NotFoundError(
                            "no access profile recorded (is the daemon's "
                            "[access_profiles] enabled, and --root right?)");
}

}  // namespace clip
