//! The AWS credentials a Bedrock provider signs with, as the request path reads them: one
//! value swapped whole when a source hands out new ones (see `crate::aws_credentials`), so
//! signing never waits on I/O and never sees half of a rotation.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use crate::secret::Secret;

/// One set of AWS credentials.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    /// Not a secret (AWS quotes it in errors and logs); it names the credentials.
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Sent as `x-amz-security-token` (temporary credentials).
    pub session_token: Option<Secret>,
    /// When they stop working (`None`: long-term keys).
    pub expires: Option<SystemTime>,
}

/// The provider's current credentials, or none yet (a source that has not answered).
#[derive(Debug, Default)]
pub struct CredentialCache {
    current: ArcSwapOption<AwsCredentials>,
}

impl CredentialCache {
    /// Holding `credentials` from the start.
    pub fn with(credentials: AwsCredentials) -> Self {
        let cache = Self::default();
        cache.set(credentials);
        cache
    }

    /// Replaces the credentials; requests signed from now on use these.
    pub fn set(&self, credentials: AwsCredentials) {
        self.current.store(Some(Arc::new(credentials)));
    }

    /// The credentials to sign with at `now`: none when there are none yet or they have
    /// expired (AWS would refuse the request anyway).
    pub fn usable(&self, now: SystemTime) -> Option<Arc<AwsCredentials>> {
        self.current
            .load_full()
            .filter(|c| c.expires.is_none_or(|expires| expires > now))
    }
}
