//! The mission side of auth-internal's internal API, over runner-kit's client.
//!
//! Rules:
//! - Transport, the service key, the error envelope and retries are runner-kit's
//!   ([`InternalClient`]); this module only names the three mission calls and their
//!   retry rule.
//! - The claim is [`Retry::NotIfSent`]: a repeat whose first attempt did land would
//!   lease missions nobody plans until the lease expires. Write-back and release are
//!   [`Retry::Idempotent`]: the iteration id is deterministic and the release carries
//!   the lease token, so auth-internal applies a repeat once.
//! - 409 `lease_lost` ([`ClientError::is_lease_lost`]) means: neither retry nor release.
//! - Mission ids are path segments, percent-encoded.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use runner_kit::{ClientError, InternalClient, Retry};
use types::missions::{
    MissionClaimRequest, MissionClaimResponse, MissionReleaseRequest, WriteIterationRequest,
    WriteIterationResponse,
};

/// What stays unencoded in a path segment (RFC 3986 unreserved characters).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The mission API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MissionApi {
    client: InternalClient,
}

impl MissionApi {
    /// Wraps the client base.
    pub fn new(client: InternalClient) -> Self {
        Self { client }
    }

    /// The client base.
    pub fn client(&self) -> &InternalClient {
        &self.client
    }

    /// `POST /api/v1/internal/missions/claim`.
    pub async fn claim(
        &self,
        req: &MissionClaimRequest,
    ) -> Result<MissionClaimResponse, ClientError> {
        self.client
            .post_internal("/missions/claim", req, Retry::NotIfSent)
            .await
    }

    /// `POST /api/v1/internal/missions/{id}/iterations`.
    pub async fn write_iteration(
        &self,
        mission_id: &str,
        req: &WriteIterationRequest,
    ) -> Result<WriteIterationResponse, ClientError> {
        self.client
            .post_internal(
                &mission_path(mission_id, "iterations"),
                req,
                Retry::Idempotent,
            )
            .await
    }

    /// `POST /api/v1/internal/missions/{id}/release`. Any 2xx body is accepted.
    pub async fn release(
        &self,
        mission_id: &str,
        req: &MissionReleaseRequest,
    ) -> Result<(), ClientError> {
        self.client
            .post_internal::<_, serde::de::IgnoredAny>(
                &mission_path(mission_id, "release"),
                req,
                Retry::Idempotent,
            )
            .await
            .map(|_| ())
    }
}

/// `/missions/{id}/{tail}` with the id percent-encoded.
fn mission_path(mission_id: &str, tail: &str) -> String {
    format!(
        "/missions/{}/{tail}",
        utf8_percent_encode(mission_id, SEGMENT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(
            mission_path("a/b c?", "iterations"),
            "/missions/a%2Fb%20c%3F/iterations"
        );
        assert_eq!(
            mission_path("m-1_x.y~z", "release"),
            "/missions/m-1_x.y~z/release"
        );
        let api = MissionApi::new(InternalClient::new(
            reqwest::Client::new(),
            "http://auth:3001/prefix/",
            Some("very-secret-key"),
            runner_kit::RetryPolicy::default(),
        ));
        assert_eq!(api.client().base_url(), "http://auth:3001/prefix");
        assert!(!format!("{api:?}").contains("very-secret-key"));
    }
}
