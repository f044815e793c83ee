#include "cluster/node.h"

#include <malloc.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "cluster/transport.h"
#include "common/host.h"
#include "common/repeat_limiter.h"

namespace iridium::cluster {
namespace {

std::string random_instance() {
  std::random_device device;
  std::mt19937_64 engine((static_cast<uint64_t>(device()) << 32) ^ device() ^
                         static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(engine()));
  return text;
}

// The loop sleeps until its next deadline (Loop::sleep_time), but never
// longer than this: a bound, not a timer anything waits for.
constexpr Millis kMaxSleep{1000};
constexpr Millis kResendInterval{10};          // run frames not sent yet are retried this often
constexpr Millis kMembersFileDelay{500};       // batch membership changes before saving them
constexpr Millis kLeaveLinger{300};            // let leave frames go out before sockets close
constexpr Millis kRefusalLogInterval{60'000};  // one line per refused peer and reason per minute
constexpr Millis kRunPoll{20};                 // how often run() looks at its cancel check
constexpr Millis kRunBackstop{3'000};          // run() gives up on a silent I/O thread after this
constexpr Millis kRunSendRetry{3'000};         // how long a run frame waits for its connection
constexpr std::size_t kOtherClustersLogged = 64;  // foreign cluster names warned about, at most
// How often the node hands memory it freed back to the system (glibc keeps
// freed pages in its arenas): a node's RSS then follows what it holds, not
// its peak, under sustained runs and churn. One malloc_trim costs well under
// a millisecond at a node's size.
constexpr Millis kReturnMemoryEvery{10'000};

bool is_run_frame(MessageType type) {
  return type == MessageType::kRunRequest || type == MessageType::kRunAccepted ||
         type == MessageType::kRunResult || type == MessageType::kRunCancel;
}

// A run_result frame: the outcome, cut to what one frame may carry.
Message result_frame(uint64_t run, RunOutcome outcome) {
  Message m;
  m.type = MessageType::kRunResult;
  m.run = run;
  m.job = outcome.job;
  m.run_status = outcome.status;
  m.code = outcome.code.substr(0, 64);
  m.error = outcome.error.substr(0, kMaxRunErrorBytes);
  if (outcome.output.size() > kMaxRunOutputBytes) {
    outcome.output.resize(kMaxRunOutputBytes);
    outcome.truncated = true;
  }
  m.output = std::move(outcome.output);
  m.truncated = outcome.truncated;
  m.registers = std::move(outcome.registers);
  m.float_registers = std::move(outcome.float_registers);
  m.elapsed_ms = outcome.elapsed_ms;
  return m;
}

RunOutcome outcome_of(const Message& m) {
  return RunOutcome{m.run_status,      m.code, m.error,     m.output, m.truncated, m.registers,
                    m.float_registers, m.job,  m.elapsed_ms};
}

RunOutcome refusal(std::string_view code, std::string error) {
  RunOutcome o;
  o.status = RunStatus::kRefused;
  o.code = std::string(code);
  o.error = std::move(error);
  return o;
}

// What an executor's error means on the wire.
RunOutcome refusal_of(const Error& error) {
  switch (error.kind) {
    case ErrorKind::kInvalid:
      return refusal(kRefusedBadImage, error.message);
    case ErrorKind::kUnavailable:
      return refusal(kRefusedPoolFull, error.message);
    default:
      return refusal(kRefusedUnavailable, error.message);
  }
}

}  // namespace

// One run() call: a reply per target, filled in by the I/O thread.
struct Node::RunBatch {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<RunReply> replies;  // guarded by mutex
  std::vector<bool> settled;      // guarded by mutex
  std::size_t open = 0;           // replies not settled yet; guarded by mutex
  bool started = false;           // the I/O thread has chosen the targets; guarded by mutex
  bool cancel = false;            // the caller wants every run stopped; guarded by mutex

  void settle(std::size_t index, Result<RunOutcome> result) {
    {
      std::lock_guard lock(mutex);
      if (settled[index]) return;
      settled[index] = true;
      replies[index].result = std::move(result);
      --open;
    }
    changed.notify_all();
  }
  bool cancelled() {
    std::lock_guard lock(mutex);
    return cancel;
  }
};

void Node::Relay::post(Task task) {
  std::lock_guard lock(mutex);
  if (node != nullptr) node->submit(std::move(task));
}

// ---------------------------------------------------------------------------
// The I/O thread's world. Everything here runs on that thread only.
class Node::Loop {
 public:
  Loop(Node& owner, std::unique_ptr<Transport> transport, ZapAuthenticator* zap, zmq::socket_t wake,
       const MembershipConfig& config, std::string members_file, RunExecutor* executor,
       std::shared_ptr<Relay> relay, health::HealthFile* health)
      : owner_(owner),
        executor_(executor),
        relay_(std::move(relay)),
        transport_(std::move(transport)),
        zap_(zap),
        wake_(std::move(wake)),
        membership_(config, Clock::now()),
        members_file_(std::move(members_file)),
        health_(health) {}

  // Runs until a leave task has been handled. Reads top to bottom: wait for
  // traffic, run other threads' tasks, feed the membership what arrived and
  // the time, carry out what it asks, report what happened.
  void run(std::mutex& mutex, std::deque<Task>& tasks) {
    std::vector<Inbound> frames;
    std::vector<LinkChange> links;
    std::vector<Error> errors;
    if (health_ != nullptr) {
      health_->set_cluster(true, 0);
      health_->start(health::Loop::kCluster);
    }
    while (!leaving_) {
      frames.clear();
      links.clear();
      errors.clear();
      if (transport_->poll(sleep_time(Clock::now()), &wake_, frames, links, errors)) drain_wake();
      std::deque<Task> ready;
      {
        std::lock_guard lock(mutex);
        ready.swap(tasks);
      }
      for (Task& task : ready) task(*this);
      const TimePoint now = Clock::now();
      for (const Error& e : errors) membership_.frame_dropped(e);
      for (Inbound& in : frames) {
        auto message =
            decode(std::span(static_cast<const uint8_t*>(in.body.data()), in.body.size()));
        if (!message) {
          membership_.frame_dropped(message.error());
          continue;
        }
        spdlog::trace("<- {} from {}", message_type_name(message->type), message->sender.alias);
        membership_.receive(*message, in.source, now);
      }
      for (const LinkChange& change : links) {
        spdlog::debug("link to {}: {}", change.endpoint.text(),
                      change.event == LinkEvent::kUp     ? "up"
                      : change.event == LinkEvent::kDown ? "down"
                                                         : "refused");
        membership_.link_changed(change.endpoint, change.event, now);
      }
      if (!leaving_) membership_.tick(now);
      for (const Message& m : membership_.take_run_frames()) on_run_frame(m);
      report(now);
      if (!leaving_) tick_runs(now);
      resend_unsent(now);
      carry_out();
      report_refusals(now);
      if (now >= return_memory_at_) {
        ::malloc_trim(0);
        return_memory_at_ = now + kReturnMemoryEvery;
      }
      // A whole turn went round: the health file's stamp (at most one write a second).
      if (health_ != nullptr) health_->beat(health::Loop::kCluster);
    }
  }

  // How long the loop may sleep: until the earliest deadline of the
  // membership, the remote runs, the members file and the transport. An
  // idle node then wakes a few times a second instead of every 10 ms, each
  // wake a poll over every socket and a walk over every member. Frames, link
  // changes and other threads' tasks (the wake socket) end the sleep sooner.
  Millis sleep_time(TimePoint now) const {
    TimePoint next = std::min({membership_.next_wakeup(), transport_->next_due(), now + kMaxSleep});
    if (members_dirty_) next = std::min(next, members_dirty_since_ + kMembersFileDelay);
    if (!unsent_.empty()) next = std::min(next, now + kResendInterval);
    for (const auto& [id, run] : outgoing_) next = std::min(next, run_deadline(run));
    if (next <= now) return Millis(0);
    return std::chrono::ceil<Millis>(next - now);  // not a few µs early, then again at once
  }

  // ---- requests from other threads (run as tasks) -------------------------
  void join(const Endpoint& to, std::shared_ptr<std::promise<Result<JoinInfo>>> done) {
    for (const MemberView& m : membership_.members(Clock::now())) {
      if (endpoint_of(m.address) == to) {
        done->set_value(JoinInfo{m.address, to, true});
        return;
      }
    }
    joins_[membership_.join(to, Clock::now())] = std::move(done);
  }

  void join_seeds(const std::vector<Endpoint>& seeds) {
    std::vector<NodeAddress> remembered;
    if (!members_file_.empty()) remembered = load_members_file(members_file_);
    if (!remembered.empty())
      spdlog::info("remembered {} members from {}", remembered.size(), members_file_);
    membership_.join_seeds(seeds, remembered, Clock::now());
  }

  Snapshot snapshot() const { return snapshot_of(membership_, Clock::now()); }

  Status set_keys(const CurveKey& primary, std::vector<std::string> installed) {
    return transport_->set_keys(primary, std::move(installed));
  }

  void leave() {
    for (auto& [id, run] : outgoing_) {
      if (run.local) executor_->cancel(run.job);
      run.batch->settle(run.index, Error{"this node left the cluster", ErrorKind::kUnavailable});
    }
    outgoing_.clear();
    for (const auto& [job, in] : incoming_) executor_->cancel(job);
    save_members(true);
    const std::size_t told = membership_.members(Clock::now()).size();
    membership_.leave(Clock::now());
    carry_out();
    transport_->set_linger(kLeaveLinger);
    spdlog::info("left the cluster ({} members told)", told);
    leaving_ = true;
    if (health_ != nullptr) {
      health_->set_cluster(false, 0);
      health_->stop(health::Loop::kCluster);
    }
  }

  void set_executor(RunExecutor* executor) { executor_ = executor; }

  // ---- remote runs: the requester's side ------------------------------------
  void start_runs(const std::shared_ptr<RunBatch>& batch,
                  const std::optional<std::vector<std::string>>& targets, const std::string& name,
                  const std::string& image, Millis timeout) {
    const TimePoint now = Clock::now();
    const std::string& self = membership_.self().alias;
    std::vector<std::string> aliases;
    if (targets) {
      aliases = *targets;
    } else {
      for (const MemberView& m : membership_.members(now)) aliases.push_back(m.address.alias);
      aliases.push_back(self);
      std::sort(aliases.begin(), aliases.end());
    }
    {
      std::lock_guard lock(batch->mutex);
      for (const std::string& alias : aliases) batch->replies.push_back(RunReply{alias});
      batch->settled.assign(aliases.size(), false);
      batch->open = aliases.size();
      batch->started = true;
    }
    batch->changed.notify_all();
    for (std::size_t i = 0; i < aliases.size(); ++i) {
      const std::string& alias = aliases[i];
      const uint64_t id = next_run_++;
      Outgoing run{batch, i, alias, {}, alias == self, 0, false, now, now + timeout, {}};
      if (run.local) {
        if (executor_ == nullptr) {
          batch->settle(i, refusal(kRefusedUnavailable, "this node runs no jobs"));
          continue;
        }
        auto job = executor_->start(RunRequest{self, name, image}, finished_callback());
        if (!job) {
          batch->settle(i, refusal_of(job.error()));
          continue;
        }
        run.job = *job;
        run.accepted = true;
        local_jobs_[*job] = id;
      } else {
        auto instance = membership_.member_instance(alias);
        if (!instance) {
          batch->settle(i, Error{"'" + alias +
                                     "' is not a member of this cluster (!cluster_members "
                                     "lists them)",
                                 ErrorKind::kInvalid});
          continue;
        }
        run.instance = *instance;
        Message request;
        request.type = MessageType::kRunRequest;
        request.run = id;
        request.name = name;
        request.image = image;
        membership_.send_to_member(alias, std::move(request));
      }
      outgoing_.emplace(id, std::move(run));
    }
  }

  // ---- remote runs: everything that happens on this thread ------------------
  // Jobs (ours or a member's) finish on worker threads and come back here.
  RunDone finished_callback() {
    return [relay = relay_](RunOutcome outcome) {
      relay->post([outcome = std::move(outcome)](Loop& loop) mutable {
        loop.job_finished(std::move(outcome));
      });
    };
  }

  void job_finished(RunOutcome outcome) {
    if (auto in = incoming_.find(outcome.job); in != incoming_.end()) {
      const Incoming run = in->second;
      incoming_.erase(in);
      spdlog::debug("job {} for {} {}", outcome.job, run.alias, run_status_name(outcome.status));
      // Only to the instance that asked: a successor under its alias did not.
      if (membership_.member_instance(run.alias) == run.instance)
        membership_.send_to_member(run.alias, result_frame(run.run, std::move(outcome)));
      return;
    }
    if (auto local = local_jobs_.find(outcome.job); local != local_jobs_.end()) {
      auto run = outgoing_.find(local->second);
      local_jobs_.erase(local);
      if (run == outgoing_.end()) return;
      run->second.batch->settle(run->second.index, std::move(outcome));
      outgoing_.erase(run);
    }
  }

 private:
  struct Outgoing {  // a run we asked a member (or our own executor) for
    std::shared_ptr<RunBatch> batch;
    std::size_t index = 0;  // in batch->replies
    std::string alias;
    std::string instance;  // the member's when asked: an answer from another is not its answer
    bool local = false;    // this node runs it itself
    uint64_t job = 0;      // the runner's job id, once accepted
    bool accepted = false;
    TimePoint sent;
    TimePoint deadline;
    std::optional<TimePoint> cancel_by;  // cancel sent: confirm by then
  };
  struct Unsent {  // a run frame the transport could not send yet
    Endpoint to;
    std::string frame;
    TimePoint give_up;
  };
  struct Incoming {  // a run a member asked us for, by our job id
    std::string alias;
    std::string instance;
    uint64_t run = 0;
    bool orphaned = false;  // its requester is gone: cancelled, result not sent
  };

  void on_run_frame(const Message& m) {
    switch (m.type) {
      case MessageType::kRunRequest:
        return on_run_request(m);
      case MessageType::kRunCancel:
        for (auto& [job, in] : incoming_) {
          if (in.alias == m.sender.alias && in.instance == m.instance && in.run == m.run) {
            spdlog::info("{} cancels job {}", in.alias, job);
            executor_->cancel(job);
          }
        }
        return;
      default:
        break;
    }
    // run_accepted, run_result: answers to our own runs, from that member only.
    auto it = outgoing_.find(m.run);
    if (it == outgoing_.end() || it->second.local || it->second.alias != m.sender.alias ||
        it->second.instance != m.instance) {
      spdlog::debug("{} for no run of ours ({} from {})", message_type_name(m.type), m.run,
                    m.sender.alias);
      return;
    }
    Outgoing& run = it->second;
    if (m.type == MessageType::kRunAccepted) {
      run.accepted = true;
      run.job = m.job;
      return;
    }
    run.batch->settle(run.index, outcome_of(m));
    outgoing_.erase(it);
  }

  void on_run_request(const Message& m) {
    for (const auto& [job, in] : incoming_) {
      if (in.alias == m.sender.alias && in.instance == m.instance && in.run == m.run) return;
    }
    auto refuse = [&](RunOutcome why) {
      spdlog::info("refused a run of {} for {}: {}", m.name, m.sender.alias, why.error);
      membership_.send_to_member(m.sender.alias, result_frame(m.run, std::move(why)));
    };
    // Checked again here, whatever the sender checked.
    if (m.image.size() > kMaxRunImageBytes) {
      return refuse(refusal(kRefusedTooBig, "the image is " + std::to_string(m.image.size()) +
                                                " bytes; remote runs take at most " +
                                                std::to_string(kMaxRunImageBytes)));
    }
    if (executor_ == nullptr) return refuse(refusal(kRefusedUnavailable, "this node runs no jobs"));
    auto job = executor_->start(RunRequest{m.sender.alias, m.name, m.image}, finished_callback());
    if (!job) return refuse(refusal_of(job.error()));
    spdlog::debug("running {} for {} as job {}", m.name, m.sender.alias, *job);
    incoming_[*job] = Incoming{m.sender.alias, m.instance, m.run, false};
    Message accepted;
    accepted.type = MessageType::kRunAccepted;
    accepted.run = m.run;
    accepted.job = *job;
    membership_.send_to_member(m.sender.alias, std::move(accepted));
  }

  void cancel_run(uint64_t id, const Outgoing& run) {
    if (run.local) {
      executor_->cancel(run.job);
      return;
    }
    Message cancel;
    cancel.type = MessageType::kRunCancel;
    cancel.run = id;
    membership_.send_to_member(run.alias, std::move(cancel));
  }

  // Run frames that could not go when sent (no connection yet: right after
  // a join, or during a reconnect) are tried again every turn, while a
  // member listens there, for up to kRunSendRetry.
  void resend_unsent(TimePoint now) {
    std::erase_if(unsent_, [&](const Unsent& u) {
      if (now >= u.give_up || !membership_.member_at(u.to)) {
        spdlog::debug("gave up sending a remote-run frame to {}", u.to.text());
        return true;
      }
      return transport_->send(u.to, u.frame);
    });
  }

  // Every turn: targets that are gone, answers that are late, cancels asked
  // for; and members' jobs whose requester is gone.
  void tick_runs(TimePoint now) {
    for (auto it = outgoing_.begin(); it != outgoing_.end();) {
      Outgoing& run = it->second;
      std::optional<Error> failure;
      if (!run.local && membership_.member_instance(run.alias) != run.instance) {
        failure = Error{gone_reason(run.alias), ErrorKind::kUnreachable};
      } else if (run.cancel_by) {
        if (now >= *run.cancel_by) {
          failure = Error{"cancelled; " + run.alias + " did not confirm within " +
                              seconds_text(kRunCancelGrace) + " s",
                          ErrorKind::kUnreachable};
        }
      } else if (!run.accepted && now - run.sent >= kRunAcceptTimeout) {
        failure =
            Error{run.alias + " did not take the run within " + seconds_text(kRunAcceptTimeout) +
                      " s" + " (unreachable, or an iridium without remote runs)",
                  ErrorKind::kUnreachable};
      } else if (now >= run.deadline) {
        cancel_run(it->first, run);
        failure =
            Error{"no result from " + run.alias + " within " +
                      seconds_text(std::chrono::duration_cast<Millis>(run.deadline - run.sent)) +
                      " s" + "; asked it to cancel the run",
                  ErrorKind::kUnreachable};
      } else if (run.batch->cancelled()) {
        cancel_run(it->first, run);
        run.cancel_by = now + kRunCancelGrace;
      }
      if (!failure) {
        ++it;
        continue;
      }
      run.batch->settle(run.index, std::move(*failure));
      if (run.local) local_jobs_.erase(run.job);
      it = outgoing_.erase(it);
    }
    std::erase_if(departures_, [this](const auto& entry) { return !runs_waiting_on(entry.first); });
    for (auto& [job, in] : incoming_) {
      if (in.orphaned || membership_.member_instance(in.alias) == in.instance) continue;
      spdlog::info("{} is gone: cancelling its job {}", in.alias, job);
      in.orphaned = true;
      executor_->cancel(job);
    }
  }

  // The earliest time tick_runs() has something to decide about `run` on
  // its own clock. A cancel asked for by the caller wakes the loop itself
  // (Node::run), and a member's departure comes with the frame or tick that
  // caused it.
  static TimePoint run_deadline(const Outgoing& run) {
    if (run.cancel_by) return *run.cancel_by;
    const TimePoint accept_by = run.accepted ? TimePoint::max() : run.sent + kRunAcceptTimeout;
    return std::min(accept_by, run.deadline);
  }

  // How an event ended a member's membership, for a run that waited on it;
  // nullopt for events that do not.
  static std::optional<std::string> departure_text(const Event& e) {
    switch (e.kind) {
      case EventKind::kDead:
        return "died before it answered (" + death_reason(e) + ")";
      case EventKind::kLeft:
        return "left the cluster before it answered";
      case EventKind::kRestarted:
        return "restarted before it answered (the run is lost)";
      default:
        return std::nullopt;
    }
  }

  bool runs_waiting_on(const std::string& alias) const {
    return std::any_of(outgoing_.begin(), outgoing_.end(),
                       [&](const auto& entry) { return entry.second.alias == alias; });
  }

  // Why a member we ran something on is not one any more, from the last
  // event about it.
  std::string gone_reason(const std::string& alias) const {
    if (auto it = departures_.find(alias); it != departures_.end()) return alias + " " + it->second;
    return alias + " is no longer a member";
  }

 private:
  void drain_wake() {
    zmq::message_t m;
    while (wake_.recv(m, zmq::recv_flags::dontwait)) {
    }
  }

  void carry_out() {
    for (Action& action : membership_.take_actions()) {
      if (auto* send = std::get_if<SendTo>(&action)) {
        std::string frame = encode(send->message);
        // A DEALER drops what it cannot send now (ZMQ_IMMEDIATE): the
        // membership's frames repeat anyway, a remote run's do not.
        if (transport_->send(send->to, frame)) continue;
        if (is_run_frame(send->message.type))
          unsent_.push_back(Unsent{send->to, std::move(frame), Clock::now() + kRunSendRetry});
        if (send->message.type == MessageType::kPing)
          membership_.ping_unsent(send->to, send->message.seq, Clock::now());
      } else if (auto* reply = std::get_if<ReplyTo>(&action)) {
        transport_->reply(reply->routing_id, encode(reply->message));
      } else if (auto* release = std::get_if<Release>(&action)) {
        transport_->release(release->to);
      }
    }
  }

  void report(TimePoint now) {
    bool members_changed = false;
    for (Event& e : membership_.take_events()) {
      log(e);
      // Kept only while a run of ours waits on that member: tick_runs()
      // reads it for the run's failure and then forgets it.
      if (auto why = departure_text(e); why && runs_waiting_on(e.node.alias)) {
        departures_[e.node.alias] = std::move(*why);
      }
      switch (e.kind) {
        case EventKind::kJoined:
        case EventKind::kRestarted:
        case EventKind::kRecovered:
        case EventKind::kLeft:
        case EventKind::kDead:
        case EventKind::kForgotten:
          if (!members_dirty_) members_dirty_since_ = now;
          members_dirty_ = true;
          members_changed = true;
          break;
        case EventKind::kJoinDone:
          if (auto it = joins_.find(e.join_id); it != joins_.end()) {
            if (e.error) {
              it->second->set_value(*e.error);
            } else {
              it->second->set_value(JoinInfo{e.node, e.dialed, false});
            }
            joins_.erase(it);
          }
          break;
        case EventKind::kSeedsRefused:
          owner_.set_fatal(*e.error);
          break;
        default:
          break;
      }
    }
    if (members_dirty_ && now - members_dirty_since_ >= kMembersFileDelay) save_members(false);
    if (members_changed && health_ != nullptr)
      health_->set_cluster(true, membership_.members(now).size());
  }

  static std::string death_reason(const Event& e) {
    switch (e.cause) {
      case DeathCause::kConnectionRefused:
        return "its connection closed and reconnecting was refused";
      case DeathCause::kReported:
        return "another member declared it dead";
      case DeathCause::kSilent:
        break;
    }
    return "it answered no probe and did not refute the suspicion; last heard " +
           std::to_string(e.silent.count()) + " ms ago";
  }

  void log(const Event& e) {
    const std::string& alias = e.node.alias;
    const std::string at = endpoint_of(e.node).text();
    switch (e.kind) {
      case EventKind::kJoined:
        spdlog::info("{} joined ({})", alias, at);
        break;
      case EventKind::kRestarted:
        spdlog::info("{} restarted (instance {})", alias, e.instance);
        break;
      case EventKind::kRecovered:
        spdlog::info("{} is alive again", alias);
        break;
      case EventKind::kSuspect:
        spdlog::debug("{} is suspect (accused by {}; last heard {} ms ago)", alias, e.accuser,
                      e.silent.count());
        break;
      case EventKind::kDead:
        spdlog::info("{} is dead ({})", alias, death_reason(e));
        break;
      case EventKind::kLeft:
        spdlog::info("{} left", alias);
        break;
      case EventKind::kForgotten:
        spdlog::info("forgetting {}: unreachable for too long", alias);
        break;
      case EventKind::kRefused:
        spdlog::warn("refused {} from {}: {}", alias, at, e.error ? e.error->message : "");
        break;
      case EventKind::kJoinDone:
        if (e.error) {
          spdlog::warn("join via {} failed: {}", e.dialed.text(), e.error->message);
        } else {
          spdlog::info("joined the cluster via {} at {}", alias, e.dialed.text());
        }
        break;
      case EventKind::kJoinRefused:
        spdlog::warn("{} refused us: {}; retrying", e.dialed.text(),
                     e.error ? e.error->message : "");
        break;
      case EventKind::kSeedsRefused:
        spdlog::error("{}", e.error ? e.error->message : "every seed refused us");
        break;
      case EventKind::kOtherCluster:
        // Once per cluster name: a stranger's node repeats itself every
        // heartbeat, and an open-ended set of names is bounded here.
        if (other_clusters_.size() < kOtherClustersLogged &&
            other_clusters_.insert(e.cluster).second) {
          spdlog::warn(
              "a node of cluster '{}' at {} (alias {}) sent a frame; this node is in cluster "
              "'{}': ignored, as is every frame of another cluster",
              e.cluster, at, alias, membership_.cluster());
        } else {
          spdlog::debug("ignored a frame of cluster '{}' from {} at {}", e.cluster, alias, at);
        }
        break;
      case EventKind::kDropped: {
        ++dropped_;
        // Loud for the first few, quiet after that: a flood must not flood the log.
        const std::string why = e.error ? e.error->message : "";
        if (dropped_ <= 10 || dropped_ % 1000 == 0) {
          spdlog::warn("dropped a bad cluster frame ({} so far): {}", dropped_, why);
        } else {
          spdlog::debug("dropped a bad cluster frame: {}", why);
        }
        break;
      }
    }
  }

  // Peers that failed the security handshake, either way, and clients the
  // ZAP handler turned away: a warning each, de-duplicated, as a hostile
  // client may retry in a loop.
  void report_refusals(TimePoint now) {
    for (const HandshakeFailure& f : transport_->take_handshake_failures()) {
      // The listener's AUTH failures are the ZAP handler's denials, logged below.
      if (f.on_listener && f.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) continue;
      if (f.expected) {
        spdlog::debug("{} (a key change: trying the other installed keys)",
                      describe_handshake_failure(f, zap_ != nullptr));
        continue;
      }
      warn_limited(describe_handshake_failure(f, zap_ != nullptr), now);
    }
    if (zap_ == nullptr) return;
    uint64_t dropped = 0;
    for (const ZapDenial& d : zap_->take_denials(&dropped)) {
      warn_limited("refused a cluster connection from " + d.address + ": " + d.reason +
                       (d.fingerprint.empty() ? "" : " (key " + d.fingerprint + "...)") +
                       "; it needs this cluster's key (--cluster-key)",
                   now);
    }
    if (dropped > 0) spdlog::debug("{} more refused cluster connections not itemised", dropped);
  }

  void warn_limited(const std::string& line, TimePoint now) {
    if (auto held_back = refusals_.admit(line, now)) {
      if (*held_back > 0) {
        spdlog::warn("{} ({} more times since the last report)", line, *held_back);
      } else {
        spdlog::warn("{}", line);
      }
    }
  }

  void save_members(bool force) {
    if (members_file_.empty() || (!members_dirty_ && !force)) return;
    members_dirty_ = false;
    const std::vector<NodeAddress> known = membership_.known_addresses();
    // Keep the previous list when we know nobody (e.g. just cut off): an
    // empty file would make a restart forget its cluster.
    if (known.empty()) return;
    if (auto status = save_members_file(members_file_, known); !status) {
      spdlog::warn("cannot save the member list: {}", status.message());
    }
  }

  Node& owner_;
  RunExecutor* executor_;  // null: every run is refused ("unavailable")
  std::shared_ptr<Relay> relay_;
  std::map<uint64_t, Outgoing> outgoing_;    // by run id
  std::map<uint64_t, uint64_t> local_jobs_;  // our executor's job id -> run id, for our own runs
  std::map<uint64_t, Incoming> incoming_;    // by job id
  // alias -> how it last stopped being a member, while runs wait on it
  std::map<std::string, std::string> departures_;
  TimePoint return_memory_at_ = Clock::now() + kReturnMemoryEvery;
  std::vector<Unsent> unsent_;
  uint64_t next_run_ = 1;
  std::unique_ptr<Transport> transport_;
  ZapAuthenticator* zap_;  // null in plain mode; the Node owns it
  RepeatLimiter refusals_{kRefusalLogInterval};
  zmq::socket_t wake_;
  Membership membership_;
  std::string members_file_;
  std::map<uint64_t, std::shared_ptr<std::promise<Result<JoinInfo>>>> joins_;
  bool members_dirty_ = false;
  TimePoint members_dirty_since_;
  uint64_t dropped_ = 0;
  std::set<std::string> other_clusters_;  // cluster names already logged
  bool leaving_ = false;
  health::HealthFile* health_;  // null: no health file
};

Snapshot snapshot_of(const Membership& membership, TimePoint now) {
  Snapshot s;
  s.self = membership.self();
  s.instance = membership.instance();
  s.cluster = membership.cluster();
  s.started = true;
  s.counters = membership.counters();
  s.dropped_frames = s.counters.frames_dropped;
  for (const MemberView& m : membership.members(now)) {
    s.members.push_back(MemberInfo{m.address.alias, m.address.host, m.address.port,
                                   std::string(member_state_name(m.state)), m.last_heard.count()});
  }
  return s;
}

// ---------------------------------------------------------------------------
// The members file

std::vector<NodeAddress> load_members_file(const std::string& path) {
  std::vector<NodeAddress> out;
  std::error_code ec;
  if (const auto size = std::filesystem::file_size(path, ec); ec || size > kMaxMembersFileBytes) {
    if (!ec) spdlog::warn("not reading {}: larger than {} bytes", path, kMaxMembersFileBytes);
    return out;
  }
  std::ifstream in(path);
  if (!in) return out;
  const nlohmann::json doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("members") || !doc["members"].is_array()) return out;
  for (const auto& m : doc["members"]) {
    if (!m.is_object()) continue;
    const auto alias = m.value("alias", std::string());
    const auto host = m.value("host", std::string());
    const auto port = m.value("port", 0);
    if (valid_alias(alias) && valid_host(host) && port > 0 && port <= 65535) {
      out.push_back(NodeAddress{alias, host, static_cast<uint16_t>(port)});
    }
    if (out.size() == kMaxRememberedMembers) break;
  }
  return out;
}

Status save_members_file(const std::string& path, const std::vector<NodeAddress>& members) {
  nlohmann::json list = nlohmann::json::array();
  for (const NodeAddress& m : members) {
    if (list.size() == kMaxRememberedMembers) break;
    list.push_back({{"alias", m.alias}, {"host", m.host}, {"port", m.port}});
  }
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    if (!out) return Error{"cannot write " + temp, ErrorKind::kIo};
    out << nlohmann::json{{"members", list}}.dump(2) << "\n";
    if (!out) return Error{"cannot write " + temp, ErrorKind::kIo};
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);  // atomic: a crash leaves the old list or the new one
  if (ec) return Error{"cannot replace " + path + ": " + ec.message(), ErrorKind::kIo};
  return ok_status();
}

// ---------------------------------------------------------------------------
// The public face: other threads.

std::optional<Error> check_listen_security(const NodeConfig& config) {
  if (config.cluster_key || config.insecure || is_loopback_host(config.bind_host)) return {};
  return Error{"refusing to listen for the cluster on " + config.bind_host +
                   " without a cluster key: anyone who can reach it could join the cluster and "
                   "read its traffic. Make a key once with 'iridium keygen FILE' and start every "
                   "node with --cluster-key FILE (or IRIDIUM_CLUSTER_KEY=FILE); or accept the "
                   "risk with --insecure",
               ErrorKind::kRefused};
}

Node::Node(zmq::context_t& context, NodeConfig config)
    : context_(context),
      config_(std::move(config)),
      instance_(random_instance()),
      relay_(std::make_shared<Relay>()) {
  relay_->node = this;
  if (config_.cluster_key) keyring_.emplace(*config_.cluster_key, config_.cluster_key_path);
}

Node::~Node() {
  leave_and_stop();
  std::lock_guard lock(relay_->mutex);
  relay_->node = nullptr;
}

void Node::set_run_executor(RunExecutor* executor) {
  {
    std::lock_guard lock(mutex_);
    executor_ = executor;
  }
  submit([executor](Loop& loop) { loop.set_executor(executor); });
}

bool Node::started() const {
  std::lock_guard lock(mutex_);
  return loop_ != nullptr && !stopped_;
}

std::optional<Error> Node::fatal_error() const {
  std::lock_guard lock(mutex_);
  return fatal_;
}

void Node::set_fatal(Error error) {
  {
    std::lock_guard lock(mutex_);
    fatal_ = std::move(error);
  }
  if (config_.on_fatal) config_.on_fatal();
}

Result<StartInfo> Node::start() {
  std::lock_guard lock(mutex_);
  if (stopped_) return Error{"the cluster node has shut down", ErrorKind::kUnavailable};
  std::string advertise = config_.advertise_host;
  if (advertise.empty()) {
    advertise = config_.bind_host;
    if (advertise == "0.0.0.0" || advertise == "*" || advertise == "::") {
      char name[256] = {};
      gethostname(name, sizeof name - 1);
      advertise = name;
    }
  }
  if (!valid_host(advertise)) {
    return Error{"cannot start the cluster: '" + advertise +
                     "' is not a host name peers accept (1..255 of A-Z a-z 0-9 . _ : -); set "
                     "--advertise-host",
                 ErrorKind::kInvalid};
  }
  if (loop_ != nullptr) {
    return StartInfo{Endpoint{config_.bind_host, self_port_},
                     NodeAddress{config_.alias, advertise, self_port_}, true, false,
                     config_.cluster_name};
  }
  if (auto refusal = check_listen_security(config_)) return *refusal;
  if (keyring_ && zap_ == nullptr) {
    // Before the listener exists, so that no handshake happens without it.
    const std::vector<std::string> installed = keyring_->public_keys();
    auto zap = ZapAuthenticator::start(context_, {installed.begin(), installed.end()});
    if (!zap) return zap.error();
    zap_ = std::move(*zap);
  }
  std::unique_ptr<Transport> transport;
  if (keyring_) {
    transport = std::make_unique<Transport>(context_, keyring_->primary());
    (void)transport->set_keys(keyring_->primary(), keyring_->public_keys());  // not listening yet
  } else {
    transport = std::make_unique<Transport>(context_, std::nullopt);
  }
  auto port = transport->listen(config_.bind_host, config_.bind_port, config_.port_fallback);
  if (!port) return port.error();
  zmq::socket_t wake(context_, zmq::socket_type::pull);
  wake_endpoint_ = "inproc://iridium-cluster-" + instance_;
  wake.bind(wake_endpoint_);
  self_port_ = *port;
  MembershipConfig membership{NodeAddress{config_.alias, advertise, *port}, instance_,
                              config_.timers, std::random_device{}(), config_.cluster_name};
  loop_ =
      std::make_unique<Loop>(*this, std::move(transport), zap_.get(), std::move(wake), membership,
                             config_.members_file, executor_, relay_, config_.health);
  thread_ = std::thread([this] {
    // Named, so that per-thread CPU (top -H, /proc/PID/task) tells it apart.
    pthread_setname_np(pthread_self(), "cluster-io");
    loop_->run(mutex_, tasks_);
  });
  return StartInfo{Endpoint{config_.bind_host, *port}, membership.self, false,
                   *port != config_.bind_port, config_.cluster_name};
}

void Node::submit(Task task) {
  {
    std::lock_guard lock(mutex_);
    if (loop_ == nullptr || stopped_) return;
    tasks_.push_back(std::move(task));
  }
  try {
    zmq::socket_t push(context_, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 1000);
    push.connect(wake_endpoint_);
    (void)push.send(zmq::str_buffer("!"), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // The loop still sees the task on its next poll timeout.
  }
}

Result<JoinInfo> Node::join(const std::string& host, uint16_t port) {
  auto started_info = start();
  if (!started_info) return started_info.error();
  auto done = std::make_shared<std::promise<Result<JoinInfo>>>();
  auto future = done->get_future();
  const Endpoint to{host, port};
  submit([to, done](Loop& loop) { loop.join(to, done); });
  const auto limit = config_.timers.join_timeout + Millis(2000);
  if (future.wait_for(limit) != std::future_status::ready) {
    return Error{"the cluster thread did not answer", ErrorKind::kUnavailable};
  }
  return future.get();
}

void Node::join_in_background(std::vector<std::pair<std::string, uint16_t>> seeds) {
  std::vector<Endpoint> endpoints;
  for (auto& [host, port] : seeds) endpoints.push_back(Endpoint{host, port});
  submit([endpoints = std::move(endpoints)](Loop& loop) { loop.join_seeds(endpoints); });
}

Snapshot Node::snapshot() {
  auto done = std::make_shared<std::promise<Snapshot>>();
  auto future = done->get_future();
  {
    std::lock_guard lock(mutex_);
    if (loop_ == nullptr || stopped_) {
      Snapshot s;
      s.self =
          NodeAddress{config_.alias,
                      config_.advertise_host.empty() ? config_.bind_host : config_.advertise_host,
                      config_.bind_port};
      s.instance = instance_;
      s.cluster = config_.cluster_name;
      return s;
    }
  }
  submit([done](Loop& loop) { done->set_value(loop.snapshot()); });
  if (future.wait_for(Millis(2000)) != std::future_status::ready) return Snapshot{};
  return future.get();
}

Result<std::vector<RunReply>> Node::run(std::optional<std::vector<std::string>> targets,
                                        std::string name, std::string image, const RunWait& wait) {
  if (image.size() > kMaxRunImageBytes) {
    return Error{"the image is " + std::to_string(image.size()) +
                     " bytes; remote runs take at most " + std::to_string(kMaxRunImageBytes) +
                     " (48 KiB)",
                 ErrorKind::kInvalid};
  }
  if (!started()) {
    return Error{"this node is not in a cluster (!start_cluster or !join_cluster first)",
                 ErrorKind::kUnavailable};
  }
  if (name.empty()) name = "(unnamed)";
  if (name.size() > kMaxRunNameBytes) name.resize(kMaxRunNameBytes);
  auto batch = std::make_shared<RunBatch>();
  const Millis timeout = wait.timeout;
  submit([batch, targets = std::move(targets), name = std::move(name), image = std::move(image),
          timeout](Loop& loop) { loop.start_runs(batch, targets, name, image, timeout); });
  // The I/O thread settles every reply by the timeout plus the cancel grace;
  // the backstop only matters if that thread has stopped.
  const auto backstop = Clock::now() + timeout + kRunCancelGrace + kRunBackstop;
  std::unique_lock lock(batch->mutex);
  while (!batch->started || batch->open > 0) {
    if (Clock::now() >= backstop) {
      for (std::size_t i = 0; i < batch->replies.size(); ++i) {
        if (!batch->settled[i])
          batch->replies[i].result =
              Error{"the cluster thread did not answer", ErrorKind::kUnavailable};
      }
      if (!batch->started)
        return Error{"the cluster thread did not answer", ErrorKind::kUnavailable};
      break;
    }
    batch->changed.wait_for(lock, kRunPoll);
    if (!batch->cancel && wait.cancelled) {
      lock.unlock();
      const bool cancel = wait.cancelled();
      if (cancel) {
        {
          std::lock_guard again(batch->mutex);
          batch->cancel = true;
        }
        submit([](Loop&) {});  // the loop may be asleep: tick_runs() sends the cancels
      }
      lock.lock();
    }
  }
  return batch->replies;
}

void Node::leave_and_stop() {
  {
    std::lock_guard lock(mutex_);
    if (loop_ == nullptr || stopped_) {
      stopped_ = true;
      return;
    }
  }
  submit([](Loop& loop) { loop.leave(); });
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  stopped_ = true;
  loop_.reset();
}

// ---------------------------------------------------------------------------
// The keyring

namespace {
Error plain_mode() {
  return Error{"this node runs in plain mode; start it with --cluster-key FILE to use cluster keys",
               ErrorKind::kUnavailable};
}
constexpr Millis kKeyChangeWait{5000};  // the I/O thread applies a key change within this
}  // namespace

Result<std::vector<KeyInfo>> Node::keys() const {
  std::lock_guard lock(mutex_);
  if (!keyring_) return plain_mode();
  return keyring_->list();
}

void Node::sync_zap(const Keyring& ring) {
  if (zap_ == nullptr) return;
  const std::vector<std::string> wanted = ring.public_keys();
  for (const std::string& k : wanted) zap_->allow(k);
  for (const std::string& k : zap_->allowed()) {
    if (std::find(wanted.begin(), wanted.end(), k) == wanted.end()) zap_->revoke(k);
  }
}

// One change at a time: applied to the keyring and the ZAP handler here,
// then to the transport by the I/O thread; undone if the transport fails.
Result<KeyChange> Node::change_keys(const KeyOp& op) {
  std::lock_guard one_at_a_time(key_change_mutex_);
  std::unique_lock lock(mutex_);
  if (!keyring_) return plain_mode();
  const Keyring before = *keyring_;
  auto change = op(*keyring_);
  if (!change || change->already) return change;
  // Admit a new key before anything presents it; refuse a removed one
  // before the listener is replaced, so that its redials are refused.
  sync_zap(*keyring_);
  if (loop_ == nullptr || stopped_) return change;  // start() takes the ring as it is
  const CurveKey primary = keyring_->primary();
  std::vector<std::string> installed = keyring_->public_keys();
  lock.unlock();
  auto done = std::make_shared<std::promise<Status>>();
  auto future = done->get_future();
  submit([done, primary, installed](Loop& loop) mutable {
    done->set_value(loop.set_keys(primary, std::move(installed)));
  });
  Status applied = Error{"the cluster thread did not answer", ErrorKind::kUnavailable};
  try {
    if (future.wait_for(kKeyChangeWait) == std::future_status::ready) applied = future.get();
  } catch (const std::future_error&) {
    // The loop ended without running the task (the node is leaving).
  }
  if (applied) return change;
  lock.lock();
  *keyring_ = before;
  sync_zap(*keyring_);
  return applied.error();
}

Result<KeyChange> Node::install_key(const std::string& path) {
  {
    std::lock_guard lock(mutex_);
    if (!keyring_) return plain_mode();
  }
  auto key = read_curve_key_file(path);
  if (!key) return key.error();
  return change_keys([&](Keyring& ring) { return ring.install(*key, path); });
}

namespace {
// What the file `name` holds, if it is a key file: an installed key may be
// named by another copy of its file. Read before any lock is taken.
std::optional<CurveKey> key_in_file(const std::string& name) {
  auto key = read_curve_key_file(name);
  if (!key) return std::nullopt;
  return *key;
}
}  // namespace

Result<KeyChange> Node::use_key(const std::string& name) {
  const std::optional<CurveKey> file_key = key_in_file(name);
  return change_keys([&](Keyring& ring) { return ring.use(name, file_key); });
}

Result<KeyChange> Node::remove_key(const std::string& name) {
  const std::optional<CurveKey> file_key = key_in_file(name);
  return change_keys([&](Keyring& ring) { return ring.remove(name, file_key); });
}

}  // namespace iridium::cluster
