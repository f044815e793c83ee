#include "common/health_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

namespace iridium::health {
namespace {

constexpr std::chrono::seconds kStampInterval{1};  // a loop's stamp is rewritten this often
constexpr std::size_t kMaxFileBytes = 64 * 1024;   // a health file is a few hundred bytes
constexpr int kFormat = 1;
constexpr std::chrono::milliseconds kLockPatience{200};  // a reader waits this long for a write

int64_t epoch_ms(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

Error io_error(const std::string& what, const std::string& path) {
  return Error{"cannot " + what + " " + path + ": " + std::strerror(errno), ErrorKind::kIo};
}

// Writes all of `text` at the start of the file; false with errno set if not.
bool write_all_at_start(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n =
        ::pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// The writer rewrites the file in place under an exclusive lock (see
// HealthFile::write_text); a shared lock makes the read see one whole
// version. A writer that holds the lock for long is stopped mid-write; its
// node is not healthy whatever the read shows, so the read goes ahead.
void lock_for_reading(int fd) {
  const auto give_up = std::chrono::steady_clock::now() + kLockPatience;
  while (::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Result<std::string> read_small_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return Error{"no health file at " + path, ErrorKind::kUnavailable};
  if (fd < 0) return io_error("read", path);
  lock_for_reading(fd);
  std::string text(kMaxFileBytes + 1, '\0');
  std::size_t got = 0;
  ssize_t n = 0;
  while (got < text.size() && (n = ::read(fd, text.data() + got, text.size() - got)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    got += static_cast<std::size_t>(n);
  }
  const int read_errno = errno;
  ::close(fd);
  if (n < 0) {
    errno = read_errno;
    return io_error("read", path);
  }
  if (got > kMaxFileBytes) {
    return Error{path + " is not a health file: larger than 64 KiB", ErrorKind::kInvalid};
  }
  text.resize(got);
  return text;
}

// The field `key` of `doc`, of the JSON type `is` checks, or why not.
template <typename Check>
std::optional<std::string> missing(const nlohmann::json& doc, const char* key, Check is,
                                   const char* type) {
  if (!doc.contains(key) || !is(doc[key])) return "no " + std::string(type) + " \"" + key + "\"";
  return std::nullopt;
}

std::optional<std::string> check_fields(const nlohmann::json& doc) {
  using J = nlohmann::json;
  if (!doc.is_object()) return "not a JSON object";
  auto is_number = [](const J& j) { return j.is_number_integer(); };
  auto is_string = [](const J& j) { return j.is_string(); };
  if (auto why = missing(doc, "format", is_number, "number")) return why;
  if (doc["format"] != kFormat) return "format " + doc["format"].dump() + ", not 1";
  if (auto why = missing(doc, "pid", is_number, "number")) return why;
  auto is_count = [](const J& j) { return j.is_number_unsigned(); };
  if (auto why = missing(doc, "members", is_count, "count")) return why;
  for (const char* key : {"alias", "cluster"}) {
    if (auto why = missing(doc, key, is_string, "string")) return why;
  }
  auto is_bool = [](const J& j) { return j.is_boolean(); };
  if (auto why = missing(doc, "in_cluster", is_bool, "boolean")) return why;
  auto is_object = [](const J& j) { return j.is_object(); };
  if (auto why = missing(doc, "stamps", is_object, "object")) return why;
  for (const auto& [loop, at] : doc["stamps"].items()) {
    if (!at.is_number_integer()) return "stamp \"" + loop + "\" is not a number";
  }
  return std::nullopt;
}

Record record_of(const nlohmann::json& doc) {
  Record r;
  r.pid = doc["pid"].get<int64_t>();
  r.alias = doc["alias"].get<std::string>();
  r.cluster = doc["cluster"].get<std::string>();
  r.in_cluster = doc["in_cluster"].get<bool>();
  r.members = doc["members"].get<uint64_t>();
  for (const auto& [loop, at] : doc["stamps"].items()) {
    r.stamps[loop] = WallTime(std::chrono::milliseconds(at.get<int64_t>()));
  }
  return r;
}

}  // namespace

std::string_view loop_key(Loop loop) {
  return loop == Loop::kCluster ? "cluster_loop" : "remote_shell";
}

std::string health_file_path(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / "run" / "health.json").string();
}

HealthFile::HealthFile(std::string path, std::string alias, std::string cluster,
                       std::function<void(const Error&)> on_write_error)
    : path_(std::move(path)), on_write_error_(std::move(on_write_error)) {
  facts_.pid = ::getpid();
  facts_.alias = std::move(alias);
  facts_.cluster = std::move(cluster);
}

HealthFile::~HealthFile() {
  std::lock_guard lock(mutex_);
  if (started_) ::unlink(path_.c_str());
  if (fd_ >= 0) ::close(fd_);
}

void HealthFile::start(Loop loop) {
  {
    std::lock_guard lock(mutex_);
    loops_[loop] = Stamp{WallClock::now(), WallTime{}, false, {}};
    changed_ = true;
    started_ = true;
  }
  write();
}

void HealthFile::stop(Loop loop) {
  {
    std::lock_guard lock(mutex_);
    if (loops_.erase(loop) == 0) return;
    changed_ = true;
    // Nobody keeps the file for the loops that wait any more: wake them.
    for (auto& [other, stamp] : loops_) {
      if (stamp.waiting && !kept_by_another(other) && stamp.wake) stamp.wake();
    }
  }
  write();
}

void HealthFile::beat(Loop loop) {
  const WallTime now = WallClock::now();
  {
    std::lock_guard lock(mutex_);
    auto it = loops_.find(loop);
    if (it == loops_.end()) return;  // not started (or stopped): nothing expects it
    it->second.last = now;
    it->second.waiting = false;
    it->second.wake = nullptr;
    if (!due(loop, now)) return;
  }
  write();
}

void HealthFile::set_cluster(bool in_cluster, uint64_t members) {
  std::lock_guard lock(mutex_);
  if (facts_.in_cluster == in_cluster && facts_.members == members) return;
  facts_.in_cluster = in_cluster;
  facts_.members = members;
  changed_ = true;
}

bool HealthFile::wait(Loop loop, std::function<void()> wake) {
  std::lock_guard lock(mutex_);
  auto it = loops_.find(loop);
  if (it == loops_.end() || !kept_by_another(loop)) return false;
  it->second.waiting = true;
  it->second.wake = std::move(wake);
  return true;
}

bool HealthFile::kept_by_another(Loop loop) const {
  return std::any_of(loops_.begin(), loops_.end(),
                     [&](const auto& kv) { return kv.first != loop && !kv.second.waiting; });
}

bool HealthFile::due(Loop loop, WallTime now) const {
  return changed_ || now - loops_.at(loop).written >= kStampInterval;
}

void HealthFile::write() {
  std::unique_lock writing(write_mutex_, std::try_to_lock);
  if (!writing.owns_lock()) return;  // the other loop writes it now
  std::string text;
  {
    std::lock_guard lock(mutex_);
    text = render();
  }
  const Status status = write_text(text);
  if (!status && status.kind() == ErrorKind::kUnavailable) {
    std::lock_guard lock(mutex_);
    changed_ = true;  // a reader holds the file: the next beat writes it
    return;
  }
  const std::string error = status ? "" : status.message();
  if (!status && error != last_write_error_ && on_write_error_) on_write_error_(status.error());
  last_write_error_ = error;
}

// One pwrite over the start of the file, padded with spaces to the file's
// length so that no byte of a longer version remains (JSON allows trailing
// space), under an exclusive lock that readers share. A reader that holds
// its lock (a check stopped mid-read) never blocks the loop: the write is
// skipped (kUnavailable) and the next beat tries again. Rewriting in place
// keeps a stamp to a few cheap system calls: a new file renamed over the
// old one costs an inode and, on ext4, a flush of the new file's data.
Status HealthFile::write_text(std::string text) {
  struct stat st {};
  if (fd_ >= 0 && (::fstat(fd_, &st) != 0 || st.st_nlink == 0)) {  // removed under us
    ::close(fd_);
    fd_ = -1;
  }
  if (fd_ < 0) {
    if (auto opened = open_file(); !opened) return opened;
  }
  if (text.size() < file_bytes_) text.append(file_bytes_ - text.size(), ' ');
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    return Error{path_ + " is being read", ErrorKind::kUnavailable};
  }
  const bool written = write_all_at_start(fd_, text);
  const int write_errno = errno;
  (void)::flock(fd_, LOCK_UN);
  if (!written) {
    errno = write_errno;
    return io_error("write", path_);
  }
  file_bytes_ = text.size();
  return ok_status();
}

// Opens (or creates, with its directory) the file for rewriting in place.
// A file left by an earlier process keeps its length, which the padding
// covers, unless it is too long to be read as a health file.
Status HealthFile::open_file() {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0 && errno == ENOENT) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), ec);
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd_ < 0) return io_error("create", path_);
  struct stat st {};
  file_bytes_ = ::fstat(fd_, &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
  if (file_bytes_ > kMaxFileBytes && ::ftruncate(fd_, 0) == 0) file_bytes_ = 0;
  return ok_status();
}

std::string HealthFile::render() {
  nlohmann::json stamps = nlohmann::json::object();
  const WallTime now = WallClock::now();
  for (auto& [loop, stamp] : loops_) {
    if (stamp.waiting) stamp.last = now;  // waiting for work is going round
    stamps[std::string(loop_key(loop))] = epoch_ms(stamp.last);
    stamp.written = stamp.last;
  }
  changed_ = false;
  const nlohmann::json doc{{"format", kFormat},
                           {"pid", facts_.pid},
                           {"alias", facts_.alias},
                           {"cluster", facts_.cluster},
                           {"in_cluster", facts_.in_cluster},
                           {"members", facts_.members},
                           {"stamps", stamps}};
  return doc.dump() + "\n";
}

Result<Record> read_health_file(const std::string& path) {
  auto text = read_small_file(path);
  if (!text) return text.error();
  const nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return Error{path + " is not a health file: not JSON" +
                     (text->empty() ? std::string(" (empty)") : std::string()),
                 ErrorKind::kInvalid};
  }
  if (auto why = check_fields(doc)) {
    return Error{path + " is not a health file: " + *why, ErrorKind::kInvalid};
  }
  return record_of(doc);
}

std::vector<StaleStamp> stale_stamps(const Record& record, WallTime now,
                                     std::chrono::milliseconds max_age) {
  std::vector<StaleStamp> stale;
  for (const auto& [loop, at] : record.stamps) {
    const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - at);
    if (age > max_age || age < -max_age) stale.push_back(StaleStamp{loop, at, age});
  }
  return stale;
}

}  // namespace iridium::health
