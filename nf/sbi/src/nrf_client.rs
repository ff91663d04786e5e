//! The NRF consumer every NF uses (TS 29.510): NFRegister, NFUpdate (heartbeat),
//! NFDeregister, NFProfile retrieval, NFListRetrieval and NFDiscover with a cache per
//! `validityPeriod`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::client::{ClientError, SbiClient};
use crate::models::nnrf::{NfProfile, PatchItem, SearchResult, UriList};

/// NFDiscover query parameters (TS 29.510 §6.2.3.2.3.1) this testbed uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DiscoveryQuery {
    /// `target-nf-type` (mandatory).
    pub target_nf_type: String,
    /// `requester-nf-type` (mandatory).
    pub requester_nf_type: String,
    /// `service-names`: the wanted services (any of them).
    pub service_names: Vec<String>,
    /// `target-nf-instance-id`.
    pub target_nf_instance_id: Option<Uuid>,
    /// `preferred-locality`.
    pub preferred_locality: Option<String>,
    /// `limit`: at most this many instances.
    pub limit: Option<u32>,
}

impl DiscoveryQuery {
    /// A query for `target` NFs by a `requester` NF.
    pub fn new(target: impl Into<String>, requester: impl Into<String>) -> Self {
        Self {
            target_nf_type: target.into(),
            requester_nf_type: requester.into(),
            ..Default::default()
        }
    }

    /// Adds a wanted service name.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service_names.push(name.into());
        self
    }

    /// Sets `preferred-locality`.
    pub fn locality(mut self, locality: impl Into<String>) -> Self {
        self.preferred_locality = Some(locality.into());
        self
    }

    /// The query-string pairs, as the NRF expects them (`service-names` comma-separated).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut q = vec![
            ("target-nf-type".to_owned(), self.target_nf_type.clone()),
            (
                "requester-nf-type".to_owned(),
                self.requester_nf_type.clone(),
            ),
        ];
        if !self.service_names.is_empty() {
            q.push(("service-names".to_owned(), self.service_names.join(",")));
        }
        if let Some(id) = self.target_nf_instance_id {
            q.push(("target-nf-instance-id".to_owned(), id.to_string()));
        }
        if let Some(l) = &self.preferred_locality {
            q.push(("preferred-locality".to_owned(), l.clone()));
        }
        if let Some(l) = self.limit {
            q.push(("limit".to_owned(), l.to_string()));
        }
        q
    }
}

/// The NRF consumer. Cheap to clone (clones share the discovery cache).
#[derive(Debug, Clone)]
pub struct NrfClient {
    client: SbiClient,
    nrf_uri: String,
    cache: Arc<Mutex<HashMap<DiscoveryQuery, (Instant, SearchResult)>>>,
}

impl NrfClient {
    /// A consumer of the NRF at `nrf_uri` (`http://127.0.0.1:8000`).
    pub fn new(client: SbiClient, nrf_uri: impl Into<String>) -> Self {
        Self {
            client,
            nrf_uri: nrf_uri.into().trim_end_matches('/').to_owned(),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The NRF's base URI.
    pub fn nrf_uri(&self) -> &str {
        &self.nrf_uri
    }

    /// The SBI client used for the calls.
    pub fn client(&self) -> &SbiClient {
        &self.client
    }

    fn instance_url(&self, id: Uuid) -> String {
        format!("{}/nnrf-nfm/v1/nf-instances/{id}", self.nrf_uri)
    }

    /// NFRegister: `PUT /nnrf-nfm/v1/nf-instances/{id}`; returns the profile the NRF stored
    /// (its `heartBeatTimer` is the one to use).
    #[tracing::instrument(name = "nf_register", skip_all, fields(nf_instance_id = %profile.nf_instance_id))]
    pub async fn register(&self, profile: &NfProfile) -> Result<NfProfile, ClientError> {
        let resp = self
            .client
            .put(self.instance_url(profile.nf_instance_id))
            .service("nnrf-nfm")
            .operation("nf_register")
            .target_nf_type("NRF")
            .json(profile)
            .send()
            .await?;
        // A 200/201 carries the stored profile; tolerate an empty body by echoing ours.
        if resp.body.is_empty() {
            return Ok(profile.clone());
        }
        resp.json().map_err(|error| ClientError::Decode {
            url: self.instance_url(profile.nf_instance_id),
            error,
        })
    }

    /// NFUpdate heartbeat: `PATCH` with `[{"op":"replace","path":"/nfStatus","value":"REGISTERED"}]`.
    /// A 404 means the NRF forgot the instance: register again.
    #[tracing::instrument(name = "nf_update", skip_all, fields(nf_instance_id = %id))]
    pub async fn heartbeat(&self, id: Uuid) -> Result<(), ClientError> {
        self.client
            .patch(self.instance_url(id))
            .service("nnrf-nfm")
            .operation("nf_update")
            .target_nf_type("NRF")
            .json_patch(&PatchItem::heartbeat())
            .send()
            .await
            .map(|_| ())
    }

    /// NFDeregister: `DELETE /nnrf-nfm/v1/nf-instances/{id}` (a 404 counts as done).
    #[tracing::instrument(name = "nf_deregister", skip_all, fields(nf_instance_id = %id))]
    pub async fn deregister(&self, id: Uuid) -> Result<(), ClientError> {
        let r = self
            .client
            .delete(self.instance_url(id))
            .service("nnrf-nfm")
            .operation("nf_deregister")
            .target_nf_type("NRF")
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// NFProfileRetrieval: `GET /nnrf-nfm/v1/nf-instances/{id}`.
    #[tracing::instrument(name = "nf_profile_retrieval", skip_all, fields(nf_instance_id = %id))]
    pub async fn profile(&self, id: Uuid) -> Result<NfProfile, ClientError> {
        self.client
            .get(self.instance_url(id))
            .service("nnrf-nfm")
            .operation("nf_profile_retrieval")
            .target_nf_type("NRF")
            .send_json()
            .await
    }

    /// NFListRetrieval: `GET /nnrf-nfm/v1/nf-instances[?nf-type=..]`; the instance ids listed.
    #[tracing::instrument(name = "nf_list_retrieval", skip_all)]
    pub async fn list_instances(&self, nf_type: Option<&str>) -> Result<Vec<Uuid>, ClientError> {
        let mut req = self
            .client
            .get(format!("{}/nnrf-nfm/v1/nf-instances", self.nrf_uri))
            .service("nnrf-nfm")
            .operation("nf_list_retrieval")
            .target_nf_type("NRF");
        if let Some(t) = nf_type {
            req = req.query(&[("nf-type", t)]);
        }
        let list: UriList = req.send_json().await?;
        Ok(list
            .items()
            .iter()
            .filter_map(|href| {
                href.rsplit('/')
                    .next()
                    .and_then(|id| Uuid::parse_str(id).ok())
            })
            .collect())
    }

    /// NFDiscover, answered from the cache while the last answer's `validityPeriod` lasts.
    /// When the NRF cannot be reached, the last answer is used even if it has expired
    /// (the peers found before keep being served while the NRF is down).
    pub async fn discover(&self, query: &DiscoveryQuery) -> Result<SearchResult, ClientError> {
        if let Some(hit) = self.cached(query) {
            return Ok(hit);
        }
        match self.discover_fresh(query).await {
            Err(e) if e.status().is_none() => {
                let stale = self
                    .cache
                    .lock()
                    .expect("discovery cache")
                    .get(query)
                    .map(|(_, r)| r.clone());
                match stale {
                    Some(r) => {
                        tracing::warn!(nrf = %self.nrf_uri, "NRF unreachable, using the last discovery answer: {e}");
                        Ok(r)
                    }
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    /// The cached answer to `query`, when still valid.
    pub fn cached(&self, query: &DiscoveryQuery) -> Option<SearchResult> {
        let cache = self.cache.lock().expect("discovery cache");
        match cache.get(query) {
            Some((expires, result)) if Instant::now() < *expires => Some(result.clone()),
            _ => None,
        }
    }

    /// NFDiscover without the cache: `GET /nnrf-disc/v1/nf-instances?...`; the answer is cached.
    #[tracing::instrument(name = "nf_discover", skip_all, fields(target = %query.target_nf_type))]
    pub async fn discover_fresh(
        &self,
        query: &DiscoveryQuery,
    ) -> Result<SearchResult, ClientError> {
        let result: SearchResult = self
            .client
            .get(format!("{}/nnrf-disc/v1/nf-instances", self.nrf_uri))
            .service("nnrf-disc")
            .operation("nf_discover")
            .target_nf_type("NRF")
            .query(&query.to_pairs())
            .send_json()
            .await?;
        if result.validity_period > 0 {
            let expires = Instant::now() + Duration::from_secs(u64::from(result.validity_period));
            self.cache
                .lock()
                .expect("discovery cache")
                .insert(query.clone(), (expires, result.clone()));
        }
        Ok(result)
    }

    /// Forgets every cached discovery answer (e.g. after a producer failed).
    pub fn invalidate(&self) {
        self.cache.lock().expect("discovery cache").clear();
    }

    /// The API roots of every discovered instance offering `service`, in the NRF's order
    /// (to fail over from one that does not answer).
    pub async fn api_roots_of(
        &self,
        query: &DiscoveryQuery,
        service: &str,
    ) -> Result<Vec<String>, ClientError> {
        let result = self.discover(query).await?;
        let roots: Vec<String> = result
            .nf_instances
            .iter()
            .filter_map(|p| p.service(service).and_then(|s| s.api_root()))
            .collect();
        if roots.is_empty() {
            return Err(ClientError::NoProducer {
                target: query.target_nf_type.clone(),
                service: service.to_owned(),
            });
        }
        Ok(roots)
    }

    /// The API root of the first discovered instance offering `service`
    /// (`http://127.0.0.1:8001`), preferring the order the NRF returned.
    pub async fn api_root_of(
        &self,
        query: &DiscoveryQuery,
        service: &str,
    ) -> Result<String, ClientError> {
        let result = self.discover(query).await?;
        result
            .nf_instances
            .iter()
            .find_map(|p| p.service(service).and_then(|s| s.api_root()))
            .ok_or_else(|| ClientError::NoProducer {
                target: query.target_nf_type.clone(),
                service: service.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_query_uses_ts29510_parameter_names() {
        let mut q = DiscoveryQuery::new("AMF", "NEF")
            .service("namf-loc")
            .service("namf-evts")
            .locality("edge-a");
        q.limit = Some(3);
        let pairs = q.to_pairs();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("target-nf-type"), Some("AMF"));
        assert_eq!(get("requester-nf-type"), Some("NEF"));
        assert_eq!(get("service-names"), Some("namf-loc,namf-evts"));
        assert_eq!(get("preferred-locality"), Some("edge-a"));
        assert_eq!(get("limit"), Some("3"));
    }
}
