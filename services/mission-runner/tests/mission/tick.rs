//! Whole ticks against the fake auth-internal and the fake LLM vendor.

use std::time::Instant;

use fake_llm::{FakeLlm, Reply};
use mission_runner::plan::iteration_id;
use mission_runner::tick::WriteBack;
use mission_runner::{PlanModeSetting, PlanOutcome};
use runner_kit::Shutdown;
use serde_json::Value;
use types::missions::{IterationStatus, MissionClaimResponse};

use crate::common::*;

/// Answers by mission title, so concurrent missions get their own script.
fn reply_by_title(body: &Value) -> Reply {
    let text = body.to_string();
    if text.contains("Mission: garbage") {
        Reply::text("no idea what you want")
    } else if text.contains("Mission: llm-down") {
        // 400 is final: no retry, an LLM failure at once.
        Reply::error(400)
    } else {
        Reply::text(mixed_plan())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_mission_does_not_stop_the_others() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_handler(reply_by_title);
    let internal = FakeInternal::start().await;
    let missions = vec![
        claimed("m-ok", "ok"),
        claimed("m-garbage", "garbage"),
        claimed("m-llm-down", "llm-down"),
        claimed("m-lost", "lease-lost"),
        claimed("m-ok-2", "ok too"),
    ];
    internal
        .state()
        .claim_queue
        .push_back(MissionClaimResponse {
            missions,
            server_time: now(),
        });
    internal.fault("m-lost", Fault::LeaseLost);
    let tick = ticker(&internal, planner(openai(&fake), PlanModeSetting::Json), 2);

    let report = tick
        .run_once("tick-1".into(), Shutdown::new())
        .await
        .unwrap();
    assert_eq!(report.tick_id, "tick-1");
    assert_eq!(report.due, 5);
    assert_eq!(report.plans_produced, 3, "{report:?}");
    assert_eq!(report.parse_failures, 1);
    assert_eq!(report.llm_failures, 1);
    assert_eq!(report.write_back_failures, 1);
    // 4 answered LLM calls of 15 tokens each (the 400 reports none).
    assert_eq!(report.tokens.total(), 4 * 15);

    let s = internal.state();
    assert_eq!(s.claims.len(), 1);
    assert_eq!(s.claims[0].worker, "test-worker");
    assert!(s.seen_keys.contains(SERVICE_KEY));
    assert_eq!(
        s.stored["m-ok"][0].overall_status,
        IterationStatus::AwaitingReview
    );
    assert_eq!(s.stored["m-ok-2"].len(), 1);
    let failed = &s.stored["m-garbage"][0];
    assert_eq!(failed.overall_status, IterationStatus::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("no idea what you want")
    );
    assert!(!s.stored.contains_key("m-lost"));
    assert!(!s.stored.contains_key("m-llm-down"));
    // The LLM failure released its lease with a backoff; lease_lost is not released.
    let released: Vec<&str> = s.releases.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(released, ["m-llm-down"]);
    assert!(s.releases[0].1.retry_after_seconds.unwrap() >= 225);
    // Tokens were reported with the write-back.
    let ok = s
        .write_requests
        .iter()
        .find(|(id, _)| id == "m-ok")
        .unwrap();
    assert_eq!(ok.1.tokens, 15);
    assert_eq!(ok.1.lease_token, uuid::Uuid::from_u128(99));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_write_back_uses_the_same_iteration_id_and_lands_once() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_handler(reply_by_title);
    let internal = FakeInternal::start().await;
    // First attempt: stored, but the answer is lost (500); second: 503 before writing;
    // third: answered. The iteration must be stored once.
    internal.fault("m-1", Fault::After(500));
    internal.fault("m-1", Fault::Before(503));
    let c = claimed("m-1", "ok");
    let tick = ticker(&internal, planner(openai(&fake), PlanModeSetting::Json), 1);
    let (report, results) = tick
        .run_claimed("t".into(), vec![c.clone()], Instant::now(), Shutdown::new())
        .await;
    assert_eq!(report.write_back_failures, 0, "{results:?}");
    assert_eq!(results[0].write_back, WriteBack::Written { fresh: false });

    let s = internal.state();
    let ids: Vec<&str> = s
        .write_requests
        .iter()
        .map(|(_, r)| r.iteration.id.as_str())
        .collect();
    let expected = iteration_id(&c).to_string();
    assert_eq!(ids, [expected.as_str(); 3]);
    assert_eq!(s.stored["m-1"].len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn re_planning_the_same_slot_after_a_failed_write_back_is_written_once() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_handler(reply_by_title);
    let internal = FakeInternal::start().await;
    // Every attempt of the first tick fails after storing.
    for _ in 0..3 {
        internal.fault("m-1", Fault::After(500));
    }
    let c = claimed("m-1", "ok");
    let tick = ticker(&internal, planner(openai(&fake), PlanModeSetting::Json), 1);
    let (first, _) = tick
        .run_claimed(
            "t1".into(),
            vec![c.clone()],
            Instant::now(),
            Shutdown::new(),
        )
        .await;
    assert_eq!(first.write_back_failures, 1);
    assert_eq!(first.plans_produced, 1);
    // The failed write-back handed the slot back.
    assert_eq!(internal.state().releases.len(), 1);
    // The slot is claimed again next tick (nextRunAt did not move): same id, stored once.
    let (second, results) = tick
        .run_claimed("t2".into(), vec![c], Instant::now(), Shutdown::new())
        .await;
    assert_eq!(second.write_back_failures, 0);
    assert_eq!(results[0].write_back, WriteBack::Written { fresh: false });
    assert_eq!(internal.state().stored["m-1"].len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_budget_is_shared_by_a_users_missions_within_a_tick() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_handler(reply_by_title);
    let internal = FakeInternal::start().await;
    let mut settings = mission_runner::PlannerSettings {
        mode: PlanModeSetting::Json,
        daily_token_budget: 20,
        ..Default::default()
    };
    settings.max_tokens = 512;
    let planner = mission_runner::Planner::new(openai(&fake), settings, clock());
    // Concurrency 1: the first mission spends 15 of 20, the second still fits (15 < 20),
    // the third is over budget (30 ≥ 20).
    let tick = ticker(&internal, planner, 1);
    let missions = vec![claimed("a", "ok"), claimed("b", "ok"), claimed("c", "ok")];
    let (report, results) = tick
        .run_claimed("t".into(), missions, Instant::now(), Shutdown::new())
        .await;
    assert_eq!(report.plans_produced, 2, "{results:?}");
    let over: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.outcome, Some(PlanOutcome::OverBudget { .. })))
        .map(|r| r.mission_id.as_str())
        .collect();
    assert_eq!(over.len(), 1);
    let s = internal.state();
    assert_eq!(s.releases.len(), 1);
    assert_eq!(s.releases[0].0, over[0]);
    assert_eq!(s.releases[0].1.retry_after_seconds, Some(17 * 3600));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_budget_counts_billed_equivalent_tokens() {
    let fake = FakeLlm::start().await.unwrap();
    // Each plan: 5 fresh input + 5 output + 100 cached prompt tokens = 110 raw tokens,
    // but 5 + 5 + 100/10 = 20 billed-equivalent ones.
    fake.set_openai_handler(|_| {
        Reply::text(mixed_plan()).with_full_usage(fake_llm::Usage {
            input: 5,
            output: 5,
            cache_read: 100,
            cache_write: 0,
        })
    });
    let internal = FakeInternal::start().await;
    let mut settings = mission_runner::PlannerSettings {
        mode: PlanModeSetting::Json,
        daily_token_budget: 30,
        ..Default::default()
    };
    settings.max_tokens = 512;
    let planner = mission_runner::Planner::new(openai(&fake), settings, clock());
    // Billed: 20 < 30, so the second fits; 40 ≥ 30 stops the third. Counting raw
    // tokens (110 ≥ 30) would have stopped the second.
    let tick = ticker(&internal, planner, 1);
    let missions = vec![claimed("a", "ok"), claimed("b", "ok"), claimed("c", "ok")];
    let (report, results) = tick
        .run_claimed("t".into(), missions, Instant::now(), Shutdown::new())
        .await;
    assert_eq!(report.plans_produced, 2, "{results:?}");
    assert_eq!(report.tokens.cache_read, 200);
    assert_eq!(report.tokens.input, 10);
    // What is written back to the user's daily total is the billed equivalent.
    let s = internal.state();
    assert!(!s.write_requests.is_empty());
    assert!(
        s.write_requests.iter().all(|(_, w)| w.tokens == 20),
        "{:?}",
        s.write_requests
            .iter()
            .map(|(_, w)| w.tokens)
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mission_past_its_deadline_is_released_and_counted() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_handler(|_| {
        Reply::delayed(std::time::Duration::from_secs(5), Reply::text(mixed_plan()))
    });
    let internal = FakeInternal::start().await;
    let tick = mission_runner::MissionTick::new(
        internal.client(),
        planner(openai(&fake), PlanModeSetting::Json),
        mission_runner::TickSettings {
            mission_deadline: std::time::Duration::from_millis(50),
            ..Default::default()
        },
        clock(),
    );
    let (report, results) = tick
        .run_claimed(
            "t".into(),
            vec![claimed("slow", "ok")],
            Instant::now(),
            Shutdown::new(),
        )
        .await;
    assert_eq!(report.llm_failures, 1);
    assert!(results[0].timed_out);
    assert_eq!(internal.state().releases.len(), 1);
    assert!(internal.state().stored.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_with_a_wrong_key_is_a_typed_error() {
    let internal = FakeInternal::start().await;
    let client = internal.client_with_key("wrong");
    let err = client
        .claim(&types::missions::MissionClaimRequest {
            worker: "w".into(),
            limit: 1,
            lease_seconds: 60,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"));
    assert!(!err.is_lease_lost());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_whose_answer_is_lost_is_not_sent_again() {
    let internal = FakeInternal::start().await;
    internal.state().claim_answer_delay = Some(std::time::Duration::from_secs(3));
    let api = internal.client_with(
        SERVICE_KEY,
        runner_kit::RetryPolicy {
            timeout: std::time::Duration::from_millis(300),
            ..fast_client_retry()
        },
    );
    let req = types::missions::MissionClaimRequest {
        worker: "w".into(),
        limit: 5,
        lease_seconds: 600,
    };
    let err = api.claim(&req).await.unwrap_err();
    assert!(
        matches!(err, runner_kit::ClientError::Timeout { .. }),
        "{err}"
    );
    assert_eq!(
        internal.state().claims.len(),
        1,
        "exactly one claim was sent"
    );
    // A whole tick reports the claim's failure instead of claiming again.
    let fake = FakeLlm::start().await.unwrap();
    let tick = mission_runner::MissionTick::new(
        api,
        planner(openai(&fake), PlanModeSetting::Json),
        mission_runner::TickSettings::default(),
        clock(),
    );
    let out = runner_kit::Tick::run(&tick, "t".into(), Shutdown::new()).await;
    assert!(out.error.unwrap().contains("timed out"));
    assert_eq!(internal.state().claims.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_claim_is_an_empty_report() {
    let fake = FakeLlm::start().await.unwrap();
    let internal = FakeInternal::start().await;
    let tick = ticker(&internal, planner(openai(&fake), PlanModeSetting::Auto), 4);
    let report = tick.run_once("t".into(), Shutdown::new()).await.unwrap();
    assert_eq!(report.due, 0);
    assert_eq!(
        report.plans_produced + report.parse_failures + report.llm_failures,
        0
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_starts_nothing_and_cancel_abandons_planning_in_flight() {
    let fake = FakeLlm::start().await.unwrap();
    fake.set_openai_handler(|_| {
        Reply::delayed(
            std::time::Duration::from_secs(30),
            Reply::text(mixed_plan()),
        )
    });
    let internal = FakeInternal::start().await;
    internal
        .state()
        .claim_queue
        .push_back(MissionClaimResponse {
            missions: vec![claimed("never-claimed", "ok")],
            server_time: now(),
        });
    let tick = ticker(&internal, planner(openai(&fake), PlanModeSetting::Json), 1);

    // Draining: no claim at all.
    let stop = Shutdown::new();
    stop.begin_drain();
    let report = tick.run_once("t0".into(), stop.clone()).await.unwrap();
    assert_eq!(report.due, 0);
    assert!(internal.state().claims.is_empty());
    // Already claimed missions are released unplanned.
    let (_, results) = tick
        .run_claimed("t1".into(), vec![claimed("a", "ok")], Instant::now(), stop)
        .await;
    assert!(results[0].stopped);
    assert_eq!(internal.state().releases.len(), 1);
    assert!(fake.requests().is_empty());

    // Cancel while the LLM is thinking: released, nothing written.
    let stop = Shutdown::new();
    let running = {
        let stop = stop.clone();
        let tick = tick.clone();
        tokio::spawn(async move {
            tick.run_claimed("t2".into(), vec![claimed("b", "ok")], Instant::now(), stop)
                .await
        })
    };
    // Wait until the request reached the fake, then cancel.
    while fake.requests().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    stop.cancel();
    let (report, results) = running.await.unwrap();
    assert!(results[0].stopped);
    assert_eq!(report.llm_failures + report.plans_produced, 0);
    let s = internal.state();
    assert_eq!(s.releases.len(), 2);
    assert_eq!(s.releases[1].0, "b");
    assert_eq!(s.releases[1].1.retry_after_seconds, Some(0));
    assert!(s.stored.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mission_whose_lease_has_run_out_is_not_planned_nor_an_llm_failure() {
    let fake = FakeLlm::start().await.unwrap();
    let internal = FakeInternal::start().await;
    let mut c = claimed("late", "ok");
    // Less than the write-back margin (30 s) left.
    c.lease_expires_at = now() + chrono::TimeDelta::seconds(10);
    let tick = ticker(&internal, planner(openai(&fake), PlanModeSetting::Json), 1);
    let (report, results) = tick
        .run_claimed("t".into(), vec![c], Instant::now(), Shutdown::new())
        .await;
    assert_eq!(report.due, 1);
    assert_eq!(
        report.llm_failures + report.plans_produced + report.parse_failures,
        0
    );
    assert!(results[0].outcome.is_none() && !results[0].timed_out);
    assert!(fake.requests().is_empty());
    assert_eq!(internal.state().releases.len(), 1);
}
