//! The service end to end: `POST /internal/tick` against the fake auth-internal, on `sim`.

use types::missions::{IterationStatus, MissionClaimResponse};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_tick_claims_plans_and_writes_back() {
    let internal = FakeInternal::start().await;
    internal
        .state()
        .claim_queue
        .push_back(MissionClaimResponse {
            missions: vec![{
                // The service runs on the system clock: the lease must be live now.
                let mut c = claimed("m-svc", "Marathon");
                c.lease_expires_at = chrono::Utc::now() + chrono::TimeDelta::minutes(10);
                c
            }],
            server_time: now(),
        });
    let settings = runner_settings(
        &internal.base_url,
        SERVICE_KEY,
        &[("LLM_PROVIDER", "sim"), ("MISSION_WORKER_ID", "svc-test")],
    );
    assert_eq!(settings.mission.tick.worker, "svc-test");
    let runner = Runner::start(settings);
    let http = reqwest::Client::new();
    let url = format!("{}/internal/tick", runner.base);

    let refused = http.post(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);

    let resp = http
        .post(&url)
        .header("x-service-key", SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(report["due"], 1, "{report}");
    assert_eq!(report["plansProduced"], 1, "{report}");
    assert!(report.get("error").is_none());
    {
        let s = internal.state();
        assert_eq!(s.claims[0].worker, "svc-test");
        let it = &s.stored["m-svc"][0];
        assert_eq!(it.overall_status, IterationStatus::AwaitingReview);
        assert!(!it.plan.is_empty());
    }

    let metrics = http
        .get(format!("{}/metrics", runner.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mana_mission_runner_missions_total{result=\"planned\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mana_mission_runner_llm_requests_total{provider=\"sim\",status=\"ok\"}"),
        "{metrics}"
    );
    runner.stop().await;
}
