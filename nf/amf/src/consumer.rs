//! Calls from the AMF to its peers: event notifications (Namf_EventExposure Notify) POSTed
//! to subscribers' `eventNotifyUri` through the shared [`SbiClient`] (HTTP/2 prior
//! knowledge, per-call deadline, outbound metrics).
//!
//! Delivery never blocks the procedure that caused it: each notification is sent by its
//! own task; failures are logged and counted (`amf_notifications_total{outcome}`).

use std::sync::Arc;
use std::time::Duration;

use netgpt_sbi::client::ClientError;
use netgpt_sbi::models::namf::AmfEventNotification;
use netgpt_sbi::SbiClient;
use tracing::Instrument;

use crate::context::AmfStats;

/// Deadline of one notification (all attempts).
pub const NOTIFY_DEADLINE: Duration = Duration::from_secs(3);

/// The notification client.
#[derive(Debug, Clone)]
pub struct Notifier {
    client: SbiClient,
}

impl Notifier {
    /// Notifies through `client` (normally the NF's own, labelled `amf`).
    pub fn new(client: SbiClient) -> Self {
        Self { client }
    }

    /// POSTs one `AmfEventNotification` to `uri` and waits for a 2xx answer.
    pub async fn notify(&self, uri: &str, body: &AmfEventNotification) -> Result<(), ClientError> {
        self.client
            .post(uri)
            .service("namf-evts")
            .operation("AmfEventNotify")
            .json(body)
            .deadline(NOTIFY_DEADLINE)
            .send()
            .await
            .map(|_| ())
    }

    /// Sends `body` to `uri` in the background, counting the outcome in `stats` and in
    /// `amf_notifications_total{outcome="delivered"|"failed"}`.
    pub fn dispatch(&self, uri: String, body: AmfEventNotification, stats: Arc<AmfStats>) {
        let this = self.clone();
        let span = tracing::info_span!("amf_event_notify", %uri);
        tokio::spawn(
            async move {
                match this.notify(&uri, &body).await {
                    Ok(()) => {
                        AmfStats::bump(&stats.notifications_delivered);
                        metrics::counter!("amf_notifications_total", "outcome" => "delivered")
                            .increment(1);
                    }
                    Err(e) => {
                        AmfStats::bump(&stats.notifications_failed);
                        metrics::counter!("amf_notifications_total", "outcome" => "failed")
                            .increment(1);
                        tracing::warn!(error = %e, "event notification not delivered");
                    }
                }
            }
            .instrument(span),
        );
    }
}
