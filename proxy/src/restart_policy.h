#pragma once
// The supervision of one plugin as a pure function: Step(state, event, now,
// policy) returns the next state and what the supervisor must do (launch,
// health-check, kill, publish or withdraw the endpoint). No clock, process
// or channel is touched here, so every rule - backoff growth and cap,
// give-up, recovery, health-failure restarts - is tested in simulated time
// (proxy/test/restart_policy_test.cc). The Supervisor (plugins.h) feeds the
// events and carries out the decisions.
//
// Thread-safety: values only; Step is a free function without state.

#include <chrono>
#include <cstdint>
#include <deque>

#include "config.h"

namespace prism::proxy {

using SteadyTime = std::chrono::steady_clock::time_point;

struct RestartPolicy {
  // The configured part (docs/config.md, supervision.*): the backoff
  // (restart_backoff_initial after the first failure, doubling per failure,
  // capped at restart_backoff_max: NextBackoff, the only place it is
  // computed), start_timeout (a launched plugin must answer SERVING within
  // it, or it is killed), health_interval/health_timeout (one check per
  // interval while serving, each with its own deadline), and give-up: more
  // than max_restarts failures within restart_window (0: never give up).
  SupervisionConfig supervision;
  // While starting: the first check this long after the launch, then one
  // every start_check_interval, each with start_check_timeout.
  std::chrono::milliseconds start_first_check{20};
  std::chrono::milliseconds start_check_interval{25};
  std::chrono::milliseconds start_check_timeout{200};
  // This many failed checks in a row kill a launched plugin (and restart it).
  int failed_checks_to_restart = 3;
  // Healthy this long after a restart: the backoff resets, so the next
  // crash restarts fast again.
  std::chrono::milliseconds stable_after{10000};
};

enum class Phase {
  kIdle,      // not launched yet (a launch is due)
  kStarting,  // launched, not SERVING yet
  kServing,   // published: requests go to it
  kKilling,   // killed (start timeout, failed checks); waiting for its exit
  kBackoff,   // exited; relaunched at `next`
  kGaveUp,    // too many failures within the window; never relaunched
};

struct PluginState {
  bool launched = true;  // false: an external plugin at an address (never launched or killed)
  Phase phase = Phase::kIdle;
  uint64_t generation = 0;  // counts launches; an older launch's health result is ignored
  SteadyTime since{};       // when `phase` was entered
  SteadyTime next{};        // next health check (starting, serving) or relaunch (backoff)
  bool checking = false;    // a health check of this generation is in flight
  std::chrono::milliseconds backoff{0};    // the last restart delay; 0 after recovery
  int failed_checks = 0;                   // in a row
  int restarts = 0;                        // failures so far (exits and failed launches)
  std::deque<SteadyTime> recent_failures;  // within restart_window, for give-up
};

struct Event {
  enum class Kind { kTick, kLaunched, kLaunchFailed, kExited, kHealth };
  Kind kind = Kind::kTick;
  bool serving = false;     // kHealth: the check answered SERVING in time
  uint64_t generation = 0;  // kHealth: the launch the check was made for

  static Event Tick() { return {}; }
  static Event Launched() { return {Kind::kLaunched, false, 0}; }
  static Event LaunchFailed() { return {Kind::kLaunchFailed, false, 0}; }
  static Event Exited() { return {Kind::kExited, false, 0}; }
  static Event Health(uint64_t generation, bool serving) {
    return {Kind::kHealth, serving, generation};
  }
};

// What changed, for the supervisor's log line and the namespace's down reason.
enum class Note {
  kNone,
  kServing,            // a starting plugin answered SERVING: published
  kStartTimeout,       // not SERVING within start_timeout: killed
  kHealthKill,         // failed_checks_to_restart failed checks: withdrawn and killed
  kExited,             // exited; relaunch after state.backoff
  kLaunchFailed,       // could not be launched; retried after state.backoff
  kGaveUp,             // exited (or failed to launch) too often: no more restarts
  kExternalUnhealthy,  // an external plugin failed failed_checks_to_restart checks
  kExternalHealthy,    // ... and answers again
};

struct Decision {
  PluginState state;
  bool launch = false;  // launch the plugin now, then Step(Launched or LaunchFailed)
  bool check = false;   // start a health check of state.generation with check_timeout
  std::chrono::milliseconds check_timeout{0};
  bool kill = false;       // SIGKILL the plugin (its exit arrives as kExited)
  bool publish = false;    // route requests to the plugin
  bool unpublish = false;  // stop routing requests to it
  Note note = Note::kNone;
};

Decision Step(PluginState state, const Event& event, SteadyTime now, const RestartPolicy& policy);

// The delay before the next restart, given the previous one (0: none yet).
std::chrono::milliseconds NextBackoff(std::chrono::milliseconds previous,
                                      const RestartPolicy& policy);

}  // namespace prism::proxy
