//! A claim whose answer is lost after auth-internal committed it is not sent again:
//! a proxy in front of the real auth-internal forwards each request, reads the whole
//! answer (the claim is committed by then) and closes the runner's connection without
//! passing the answer on.

use std::time::Duration;

use persona_runner::api::PersonaApi;
use runner_kit::{ClientError, InternalClient, RetryPolicy};
use secrecy::SecretString;
use test_support::proxy::{LosingProxy, Loss};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_answer_is_lost_reaches_auth_internal_once() {
    let auth = Auth::spawn().await;
    auth.seed("lost", 4, "de").await;
    let proxy = LosingProxy::to(&auth.base, Loss::Close).await;
    let api = PersonaApi::new(
        InternalClient::new(
            reqwest::Client::new(),
            proxy.url(),
            Some(SERVICE_KEY),
            RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                timeout: Duration::from_secs(10),
                budget: Duration::ZERO,
            },
        ),
        SecretString::from(SEED_SECRET),
    );

    let err = api.claim("runner-a", 2, 600).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert_eq!(
        proxy.forwarded(),
        1,
        "exactly one claim reached auth-internal"
    );
    // One batch of two is leased (to the runner that never heard of it, until the lease
    // expires); a retry would have leased the other two as well.
    assert_eq!(
        auth.sql_count("SELECT count(*) AS n FROM personas WHERE lease_owner IS NOT NULL")
            .await,
        2
    );

    // The same loss on an idempotent read is retried to the limit.
    let before = proxy.forwarded();
    let id = uuid::Uuid::new_v4();
    assert!(api.profile(id).await.is_err());
    assert_eq!(proxy.forwarded() - before, 4);
}
