#include "restart_policy.h"

#include <algorithm>

namespace prism::proxy {

std::chrono::milliseconds NextBackoff(std::chrono::milliseconds previous,
                                      const RestartPolicy& policy) {
  if (previous.count() <= 0) return policy.supervision.restart_backoff_initial;
  // previous <= backoff_max, so the doubling cannot overflow.
  return std::clamp(previous * 2, policy.supervision.restart_backoff_initial,
                    policy.supervision.restart_backoff_max);
}

namespace {

// The plugin is gone (exited, or its launch failed): withdraw it, then
// relaunch after the backoff or give up.
Decision OnFailure(Decision d, SteadyTime now, const RestartPolicy& policy, Note note) {
  PluginState& s = d.state;
  d.unpublish = true;
  s.checking = false;
  s.failed_checks = 0;
  ++s.restarts;
  s.recent_failures.push_back(now);
  while (!s.recent_failures.empty() &&
         now - s.recent_failures.front() > policy.supervision.restart_window) {
    s.recent_failures.pop_front();
  }
  s.since = now;
  if (policy.supervision.max_restarts > 0 &&
      s.recent_failures.size() > static_cast<size_t>(policy.supervision.max_restarts)) {
    s.phase = Phase::kGaveUp;
    d.note = Note::kGaveUp;
    return d;
  }
  s.backoff = NextBackoff(s.backoff, policy);
  s.next = now + s.backoff;
  s.phase = Phase::kBackoff;
  d.note = note;
  return d;
}

Decision OnTick(Decision d, SteadyTime now, const RestartPolicy& policy) {
  PluginState& s = d.state;
  switch (s.phase) {
    case Phase::kIdle:
      if (s.launched) {
        d.launch = true;
      } else {
        // An external plugin is published at once; its health only informs the log.
        s.phase = Phase::kServing;
        s.since = s.next = now;
        d.publish = true;
      }
      break;
    case Phase::kBackoff:
      if (now >= s.next) d.launch = true;
      break;
    case Phase::kStarting:
      if (now - s.since > policy.supervision.start_timeout) {
        s.phase = Phase::kKilling;
        s.checking = false;
        d.kill = true;
        d.note = Note::kStartTimeout;
      } else if (!s.checking && now >= s.next) {
        s.checking = true;
        d.check = true;
        d.check_timeout = policy.start_check_timeout;
      }
      break;
    case Phase::kServing:
      if (s.backoff.count() > 0 && now - s.since > policy.stable_after) {
        s.backoff = std::chrono::milliseconds(0);  // recovered: the next crash restarts fast
      }
      if (!s.checking && now >= s.next) {
        s.checking = true;
        d.check = true;
        d.check_timeout = policy.supervision.health_timeout;
      }
      break;
    case Phase::kKilling:
    case Phase::kGaveUp:
      break;
  }
  return d;
}

Decision OnHealth(Decision d, const Event& e, SteadyTime now, const RestartPolicy& policy) {
  PluginState& s = d.state;
  if (e.generation != s.generation || !s.checking) return d;  // an older launch's answer
  s.checking = false;
  if (s.phase == Phase::kStarting) {
    if (e.serving) {
      s.phase = Phase::kServing;
      s.since = now;
      s.next = now + policy.supervision.health_interval;
      s.failed_checks = 0;
      d.publish = true;
      d.note = Note::kServing;
    } else {
      s.next = now + policy.start_check_interval;
    }
    return d;
  }
  if (s.phase != Phase::kServing) return d;
  s.next = now + policy.supervision.health_interval;
  if (e.serving) {
    if (!s.launched && s.failed_checks >= policy.failed_checks_to_restart) {
      d.note = Note::kExternalHealthy;
    }
    s.failed_checks = 0;
    return d;
  }
  ++s.failed_checks;
  if (!s.launched) {
    if (s.failed_checks == policy.failed_checks_to_restart) d.note = Note::kExternalUnhealthy;
    return d;
  }
  if (s.failed_checks >= policy.failed_checks_to_restart) {
    s.phase = Phase::kKilling;
    s.since = now;
    d.unpublish = true;
    d.kill = true;
    d.note = Note::kHealthKill;
  }
  return d;
}

}  // namespace

Decision Step(PluginState state, const Event& event, SteadyTime now, const RestartPolicy& policy) {
  Decision d;
  d.state = std::move(state);
  PluginState& s = d.state;
  switch (event.kind) {
    case Event::Kind::kTick:
      return OnTick(std::move(d), now, policy);
    case Event::Kind::kLaunched:
      ++s.generation;
      s.phase = Phase::kStarting;
      s.since = now;
      s.next = now + policy.start_first_check;
      s.checking = false;
      s.failed_checks = 0;
      return d;
    case Event::Kind::kLaunchFailed:
      return OnFailure(std::move(d), now, policy, Note::kLaunchFailed);
    case Event::Kind::kExited:
      if (!s.launched || s.phase == Phase::kIdle || s.phase == Phase::kBackoff ||
          s.phase == Phase::kGaveUp) {
        return d;  // no process of ours was running
      }
      return OnFailure(std::move(d), now, policy, Note::kExited);
    case Event::Kind::kHealth:
      return OnHealth(std::move(d), event, now, policy);
  }
  return d;
}

}  // namespace prism::proxy
