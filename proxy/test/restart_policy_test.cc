// The restart policy in simulated time: no clock, no process, no sleep.
#include "restart_policy.h"

#include <gtest/gtest.h>

namespace prism::proxy {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

RestartPolicy TestPolicy() {
  RestartPolicy p;
  p.supervision.restart_backoff_initial = 200ms;
  p.supervision.restart_backoff_max = 1000ms;
  p.supervision.start_timeout = 2000ms;
  p.supervision.health_interval = 1000ms;
  p.supervision.health_timeout = 500ms;
  p.stable_after = 10000ms;
  return p;
}

// Drives one plugin: every Step goes through here, with the simulated time.
struct Sim {
  RestartPolicy policy = TestPolicy();
  PluginState state;
  SteadyTime now{};
  Decision last;

  Decision Feed(const Event& e) {
    last = Step(state, e, now, policy);
    state = last.state;
    return last;
  }
  void Advance(milliseconds d) { now += d; }
  // Tick; if the policy asks for a launch, report it done.
  Decision TickAndLaunch() {
    Decision d = Feed(Event::Tick());
    if (d.launch) Feed(Event::Launched());
    return d;
  }
  // A launched plugin reaches SERVING.
  void BringUp() {
    TickAndLaunch();
    Advance(policy.start_first_check);
    Decision d = Feed(Event::Tick());
    ASSERT_TRUE(d.check);
    d = Feed(Event::Health(state.generation, true));
    ASSERT_TRUE(d.publish);
    ASSERT_EQ(state.phase, Phase::kServing);
  }
  // Crashes, then waits out the backoff and relaunches; returns the delay.
  milliseconds CrashAndRelaunch() {
    Decision d = Feed(Event::Exited());
    EXPECT_TRUE(d.unpublish);
    EXPECT_EQ(d.note, Note::kExited);
    milliseconds delay = state.backoff;
    Advance(delay - 1ms);
    EXPECT_FALSE(Feed(Event::Tick()).launch) << "relaunched before the backoff";
    Advance(1ms);
    EXPECT_TRUE(TickAndLaunch().launch);
    return delay;
  }
};

TEST(NextBackoff, StartsAtInitialDoublesAndCaps) {
  RestartPolicy p = TestPolicy();
  EXPECT_EQ(NextBackoff(0ms, p), 200ms);
  EXPECT_EQ(NextBackoff(200ms, p), 400ms);
  EXPECT_EQ(NextBackoff(400ms, p), 800ms);
  EXPECT_EQ(NextBackoff(800ms, p), 1000ms);
  EXPECT_EQ(NextBackoff(1000ms, p), 1000ms);
  p.supervision.restart_backoff_max = std::chrono::hours(24 * 365);  // no overflow near a large cap
  EXPECT_EQ(NextBackoff(p.supervision.restart_backoff_max, p), p.supervision.restart_backoff_max);
}

TEST(RestartPolicy, FirstTickLaunchesAndAStartedPluginIsPublishedWhenServing) {
  Sim s;
  Decision d = s.Feed(Event::Tick());
  EXPECT_TRUE(d.launch);
  s.Feed(Event::Launched());
  EXPECT_EQ(s.state.phase, Phase::kStarting);
  EXPECT_EQ(s.state.generation, 1u);
  // No check before the first-check delay, then one at a time.
  EXPECT_FALSE(s.Feed(Event::Tick()).check);
  s.Advance(20ms);
  d = s.Feed(Event::Tick());
  ASSERT_TRUE(d.check);
  EXPECT_EQ(d.check_timeout, s.policy.start_check_timeout);
  EXPECT_FALSE(s.Feed(Event::Tick()).check) << "a second check while one is in flight";
  // Not serving yet: retried after start_check_interval.
  s.Feed(Event::Health(1, false));
  EXPECT_FALSE(s.Feed(Event::Tick()).check);
  s.Advance(25ms);
  ASSERT_TRUE(s.Feed(Event::Tick()).check);
  d = s.Feed(Event::Health(1, true));
  EXPECT_TRUE(d.publish);
  EXPECT_EQ(d.note, Note::kServing);
  EXPECT_EQ(s.state.phase, Phase::kServing);
}

TEST(RestartPolicy, BackoffGrowsPerCrashUpToTheCap) {
  Sim s;
  s.BringUp();
  std::vector<milliseconds> delays;
  for (int i = 0; i < 5; ++i) delays.push_back(s.CrashAndRelaunch());
  EXPECT_EQ(delays, (std::vector<milliseconds>{200ms, 400ms, 800ms, 1000ms, 1000ms}));
  EXPECT_EQ(s.state.restarts, 5);
  EXPECT_EQ(s.state.phase, Phase::kStarting);
}

TEST(RestartPolicy, RecoveryResetsTheBackoffAfterStableServing) {
  Sim s;
  s.BringUp();
  s.CrashAndRelaunch();
  s.CrashAndRelaunch();  // backoff 400 ms now
  s.Advance(20ms);
  ASSERT_TRUE(s.Feed(Event::Tick()).check);
  s.Feed(Event::Health(s.state.generation, true));
  ASSERT_EQ(s.state.phase, Phase::kServing);
  // Healthy, but not yet for stable_after: a crash keeps growing the delay.
  s.Advance(9000ms);
  s.Feed(Event::Tick());
  EXPECT_EQ(s.state.backoff, 400ms);
  // Past stable_after: reset, so the next crash restarts after the initial delay.
  s.Advance(1001ms);
  s.Feed(Event::Tick());
  EXPECT_EQ(s.state.backoff, 0ms);
  EXPECT_EQ(s.CrashAndRelaunch(), 200ms);
}

TEST(RestartPolicy, ThreeFailedHealthChecksWithdrawAndKillThenRestart) {
  Sim s;
  s.BringUp();
  for (int i = 1; i <= 3; ++i) {
    s.Advance(1000ms);
    Decision d = s.Feed(Event::Tick());
    ASSERT_TRUE(d.check) << i;
    EXPECT_EQ(d.check_timeout, 500ms);
    d = s.Feed(Event::Health(s.state.generation, false));
    if (i < 3) {
      EXPECT_FALSE(d.kill);
      EXPECT_FALSE(d.unpublish);
      EXPECT_EQ(s.state.phase, Phase::kServing);
    } else {
      EXPECT_TRUE(d.kill);
      EXPECT_TRUE(d.unpublish);
      EXPECT_EQ(d.note, Note::kHealthKill);
      EXPECT_EQ(s.state.phase, Phase::kKilling);
    }
  }
  // Nothing happens until the killed process is reaped; then the usual restart.
  s.Advance(5000ms);
  EXPECT_FALSE(s.Feed(Event::Tick()).launch);
  EXPECT_EQ(s.CrashAndRelaunch(), 200ms);
}

TEST(RestartPolicy, ASuccessfulCheckResetsTheFailureCount) {
  Sim s;
  s.BringUp();
  for (bool serving : {false, false, true, false, false}) {
    s.Advance(1000ms);
    ASSERT_TRUE(s.Feed(Event::Tick()).check);
    EXPECT_FALSE(s.Feed(Event::Health(s.state.generation, serving)).kill);
  }
  EXPECT_EQ(s.state.failed_checks, 2);
}

TEST(RestartPolicy, NotServingWithinStartTimeoutIsKilled) {
  Sim s;
  s.TickAndLaunch();
  s.Advance(2000ms);
  EXPECT_FALSE(s.Feed(Event::Tick()).kill);
  s.Advance(1ms);
  Decision d = s.Feed(Event::Tick());
  EXPECT_EQ(s.state.phase, Phase::kKilling);
  EXPECT_EQ(d.note, Note::kStartTimeout) << "killed for not starting in time";
  EXPECT_TRUE(d.kill);
}

TEST(RestartPolicy, AHealthAnswerForAnEarlierLaunchIsIgnored) {
  Sim s;
  s.TickAndLaunch();
  s.Advance(20ms);
  ASSERT_TRUE(s.Feed(Event::Tick()).check);
  const uint64_t first = s.state.generation;
  s.CrashAndRelaunch();  // the check of the first launch is still out
  Decision d = s.Feed(Event::Health(first, true));
  EXPECT_FALSE(d.publish);
  EXPECT_EQ(s.state.phase, Phase::kStarting);
}

TEST(RestartPolicy, GivesUpAfterMaxRestartsWithinTheWindow) {
  Sim s;
  s.policy.supervision.max_restarts = 3;
  s.policy.supervision.restart_window = 5000ms;
  s.BringUp();
  for (int i = 0; i < 3; ++i) s.CrashAndRelaunch();  // 200 + 400 + 800 ms: inside the window
  Decision d = s.Feed(Event::Exited());
  EXPECT_EQ(d.note, Note::kGaveUp);
  EXPECT_TRUE(d.unpublish);
  EXPECT_EQ(s.state.phase, Phase::kGaveUp);
  s.Advance(std::chrono::hours(1));
  EXPECT_FALSE(s.Feed(Event::Tick()).launch) << "relaunched after giving up";
}

TEST(RestartPolicy, FailuresOutsideTheWindowDoNotCountTowardsGivingUp) {
  Sim s;
  s.policy.supervision.max_restarts = 2;
  s.policy.supervision.restart_window = 5000ms;
  s.BringUp();
  for (int i = 0; i < 10; ++i) {
    s.CrashAndRelaunch();
    s.Advance(20ms);
    ASSERT_TRUE(s.Feed(Event::Tick()).check);
    s.Feed(Event::Health(s.state.generation, true));
    s.Advance(6000ms);  // each failure leaves the window before the next
  }
  EXPECT_NE(s.state.phase, Phase::kGaveUp);
  EXPECT_EQ(s.state.restarts, 10);
}

TEST(RestartPolicy, NeverGivesUpWhenMaxRestartsIsZero) {
  Sim s;
  s.BringUp();
  for (int i = 0; i < 50; ++i) s.CrashAndRelaunch();
  EXPECT_EQ(s.state.phase, Phase::kStarting);
}

TEST(RestartPolicy, AFailedLaunchIsRetriedWithTheSameBackoff) {
  Sim s;
  EXPECT_TRUE(s.Feed(Event::Tick()).launch);
  Decision d = s.Feed(Event::LaunchFailed());
  EXPECT_EQ(d.note, Note::kLaunchFailed);
  EXPECT_EQ(s.state.phase, Phase::kBackoff);
  EXPECT_EQ(s.state.backoff, 200ms);
  s.Advance(200ms);
  EXPECT_TRUE(s.Feed(Event::Tick()).launch);
  s.Feed(Event::LaunchFailed());
  EXPECT_EQ(s.state.backoff, 400ms);
}

TEST(RestartPolicy, AnExternalPluginIsPublishedAtOnceAndNeverKilled) {
  Sim s;
  s.state.launched = false;
  Decision d = s.Feed(Event::Tick());
  EXPECT_FALSE(d.launch);
  EXPECT_TRUE(d.publish);
  ASSERT_TRUE(s.Feed(Event::Tick()).check);
  for (int i = 1; i <= 5; ++i) {
    d = s.Feed(Event::Health(0, false));
    EXPECT_FALSE(d.kill);
    EXPECT_FALSE(d.unpublish);
    EXPECT_EQ(d.note, i == 3 ? Note::kExternalUnhealthy : Note::kNone) << i;
    s.Advance(1000ms);
    ASSERT_TRUE(s.Feed(Event::Tick()).check);
  }
  EXPECT_EQ(s.Feed(Event::Health(0, true)).note, Note::kExternalHealthy);
}

}  // namespace
}  // namespace prism::proxy
