//! OAuth2 between NFs (TS 29.510 `Nnrf_AccessToken`, TS 33.501 §13.4.1): the NRF issues
//! signed access tokens; every NF checks one on every service operation.
//!
//! (Being written: this first version only fixes the interface other code builds on.)

use crate::client::{ClientConfig, ClientError, SbiClient};
use crate::config::TestbedConfig;

/// An SBI client for a tool or test acting as the NF service consumer `name` (type AF)
/// outside any NF: when `config.oauth2.enabled`, every call carries an access token the
/// client fetches from the NRF at `config.nrf.uri` (and caches) for the target service.
pub fn consumer_client(config: &TestbedConfig, name: &str) -> Result<SbiClient, ClientError> {
    let _ = config;
    SbiClient::try_with_config(ClientConfig::new(name))
}

/// Asks the NRF at `config.nrf.uri` for an access token as the consumer `requester` (type
/// AF, instance id derived from the name) for the services `scope` (space-separated
/// service names) of NF type `target_nf_type`; returns the token (a compact JWS).
/// For tools that call NFs without an [`SbiClient`] (schemathesis, curl).
pub async fn request_token(
    config: &TestbedConfig,
    requester: &str,
    target_nf_type: &str,
    scope: &str,
) -> Result<String, ClientError> {
    let _ = (config, requester, target_nf_type, scope);
    Ok(String::new())
}
