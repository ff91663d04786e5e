//! Prometheus metrics shared by every NF of the process.
//!
//! One global recorder (several NFs may run in one process, e.g. `netgpt up`); every
//! series carries an `nf` label so each NF's `/metrics` can be told apart. The
//! series names are:
//!
//! - `sbi_inbound_requests_total` / `sbi_inbound_request_duration_seconds`
//!   (labels `nf`, `service`, `operation`, `method`, `status`), recorded by the
//!   server built with [`crate::server::NfApp`];
//! - `sbi_outbound_requests_total` / `sbi_outbound_request_duration_seconds`
//!   (labels `nf`, `service`, `operation`, `method`, `status`), recorded by
//!   [`crate::client::SbiClient`]; `status` is the HTTP status or `error` when no
//!   response came back.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Name of the inbound request counter.
pub const INBOUND_REQUESTS: &str = "sbi_inbound_requests_total";
/// Name of the inbound latency histogram (seconds).
pub const INBOUND_DURATION: &str = "sbi_inbound_request_duration_seconds";
/// Name of the outbound request counter.
pub const OUTBOUND_REQUESTS: &str = "sbi_outbound_requests_total";
/// Name of the outbound latency histogram (seconds).
pub const OUTBOUND_DURATION: &str = "sbi_outbound_request_duration_seconds";

/// Histogram buckets (seconds) for SBI latencies: 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Kind of a catalogued series family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic counter (`_total`).
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution (rendered as a histogram with buckets or as a summary with quantiles).
    Histogram,
}

/// The metric catalogue of the testbed: every series family an NF of this workspace records,
/// with its HELP text. Described once when the recorder is installed, so each `/metrics`
/// carries `# HELP` lines (`promtool check metrics` requires them) whichever NFs share the
/// process. docs/metrics.md documents the same names with labels, units and TS 28.552
/// mappings; tests/e2e/prometheus.rs keeps the two in step.
pub const CATALOGUE: &[(&str, MetricKind, &str)] = &[
    (INBOUND_REQUESTS, MetricKind::Counter, "SBI requests served by this NF, by service, operation, method and HTTP status."),
    (INBOUND_DURATION, MetricKind::Histogram, "Time to serve an SBI request, in seconds."),
    (OUTBOUND_REQUESTS, MetricKind::Counter, "SBI requests this NF sent, by target service, operation, method and HTTP status (error: no response)."),
    (OUTBOUND_DURATION, MetricKind::Histogram, "Time until the answer of an SBI request this NF sent, in seconds."),
    ("nrf_registered_nf_instances", MetricKind::Gauge, "NF instances registered in the NRF, by NF type and NF status."),
    ("nrf_nf_registrations_total", MetricKind::Counter, "NFRegister requests handled by the NRF, by NF type and result."),
    ("nrf_nf_deregistrations_total", MetricKind::Counter, "NFDeregister requests handled by the NRF, by NF type."),
    ("nrf_heartbeat_expiries_total", MetricKind::Counter, "NF instances the NRF marked SUSPENDED after missed heartbeats, by NF type."),
    ("nrf_nf_discover_total", MetricKind::Counter, "NFDiscover requests handled by the NRF, by target NF type and result."),
    ("amf_registered_ues", MetricKind::Gauge, "UEs in RM-REGISTERED state in this AMF."),
    ("amf_location_requests_total", MetricKind::Counter, "UE location requests (namf-loc ProvideLocationInfo) answered by the AMF."),
    ("amf_handovers_total", MetricKind::Counter, "Handovers (serving cell changes) the AMF executed."),
    ("amf_notifications_total", MetricKind::Counter, "Event notifications the AMF sent to subscribers, by outcome."),
    ("cloudai_requests_total", MetricKind::Counter, "Generation requests finished by the cloud AI function, by adapter and outcome."),
    ("cloudai_prompt_tokens_total", MetricKind::Counter, "Prompt tokens the cloud AI function prefilled, by adapter."),
    ("cloudai_generated_tokens_total", MetricKind::Counter, "Tokens the cloud AI function generated, by adapter."),
    ("cloudai_prefix_cache_hits_total", MetricKind::Counter, "Requests whose prefill started from the cached KV of the default system turn."),
    ("cloudai_queue_depth", MetricKind::Gauge, "Generation requests waiting for a batch slot."),
    ("cloudai_running_sequences", MetricKind::Gauge, "Sequences in the running decode batch."),
    ("cloudai_batch_size", MetricKind::Histogram, "Sequences per decode step of the continuous batch."),
    ("cloudai_step_duration_seconds", MetricKind::Histogram, "Time of one decode step of the batch, in seconds."),
    ("cloudai_decode_tokens_per_second", MetricKind::Gauge, "Decode tokens per second of the last batch step (decoding sequences / step time)."),
    ("cloudai_queue_wait_seconds", MetricKind::Histogram, "Time from a request's arrival to its admission into the running batch, in seconds."),
    ("cloudai_time_to_first_token_seconds", MetricKind::Histogram, "Time from a request's arrival to its first generated token (TTFT), in seconds."),
    ("cloudai_time_per_output_token_seconds", MetricKind::Histogram, "Time between consecutive generated tokens of a request (TPOT, one sample per token after the first), in seconds."),
    ("cmp_workflow_runs_total", MetricKind::Counter, "Workflow runs finished by the CmP engine, by workflow and status."),
    ("cmp_workflow_run_duration_seconds", MetricKind::Histogram, "Time from a workflow run's start to its end, in seconds."),
    ("cmp_workflow_steps_total", MetricKind::Counter, "Workflow steps finished, by workflow, operation, node and status."),
    ("cmp_workflow_step_duration_seconds", MetricKind::Histogram, "Time from a workflow step's first attempt to its end (retries included), in seconds."),
    ("cmp_device_utilization_ratio", MetricKind::Gauge, "Busy share (busyUnits/units) of a device as its node last reported, 0 to 1."),
    ("cmp_device_queue_length", MetricKind::Gauge, "Requests waiting for a device as its node last reported."),
    ("edgeai_pii_findings_total", MetricKind::Counter, "Personal data items the edge AI function found and masked in prompts, by kind (PHONE_NUMBER, EMAIL_ADDRESS, SUPI, ...)."),
    ("edgeai_duplicates_total", MetricKind::Counter, "Prompts checked by the edge duplicate detector, by class (unique, exact, normalized, near)."),
    ("edgeai_cache_lookups_total", MetricKind::Counter, "Answer-cache lookups of the edge AI function, by result (hit, miss)."),
    ("edgeai_coalesced_total", MetricKind::Counter, "Requests that shared the work of a concurrent identical one instead of doing it again, by stage (completion, cloud)."),
    ("edgeai_upstream_calls_total", MetricKind::Counter, "Calls the edge AI function made to the cloud AI function, by outcome (ok, error)."),
    ("edgeai_answers_total", MetricKind::Counter, "Answers the edge AI function returned, by origin (edge_cache, edge_directory, cloud)."),
    ("edgeai_policy_decisions_total", MetricKind::Counter, "Data-policy verdicts on prompts leaving the edge, by decision (allow, deny)."),
    ("edgeai_forwarded_total", MetricKind::Counter, "UE requests handed to the edge AI function of the UE's current site."),
    ("edgeai_completion_batch_size", MetricKind::Histogram, "Prompt completions the edge model decoded together in one batch."),
    ("edgeai_completion_seconds", MetricKind::Histogram, "Time to decode one batch of prompt completions on the edge model, in seconds."),
    ("edgeai_cached_answers", MetricKind::Gauge, "Answers held in the edge AI function's answer cache."),
    ("edgeai_analytics_requests_total", MetricKind::Counter, "Edge analytics requests, by service (popularity, intent) and outcome (ok, error)."),
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle, installing the global `metrics` recorder on first use.
///
/// If another recorder was installed first (by code outside this crate), the handle still
/// renders, but only what was recorded through it — a warning is logged.
pub fn prometheus() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a global metrics recorder was already installed; /metrics will miss its series"
            );
        }
        for &(name, kind, help) in CATALOGUE {
            match kind {
                MetricKind::Counter => metrics::describe_counter!(name, help),
                MetricKind::Gauge => metrics::describe_gauge!(name, help),
                MetricKind::Histogram => metrics::describe_histogram!(name, help),
            }
        }
        handle
    })
}

/// Renders the Prometheus text exposition of every series of the process.
pub fn render() -> String {
    let handle = prometheus();
    handle.run_upkeep();
    handle.render()
}

/// The exposition of one NF of the process: series labelled `nf="<nf>"`, and series
/// without an `nf` label whose name starts with one of `prefixes` (the NF's own metrics,
/// e.g. `nrf_`). Several NFs share one recorder in `netgpt up`; without this filter each
/// NF's `/metrics` would repeat the others' series and sums across targets would double.
pub fn render_for(nf: &str, prefixes: &[String]) -> String {
    filter_exposition(&render(), nf, prefixes)
}

/// [`render_for`] on a given exposition text.
pub fn filter_exposition(text: &str, nf: &str, prefixes: &[String]) -> String {
    let own_label = format!("nf=\"{nf}\"");
    let keep = |sample: &str| {
        let (name, labels) = match sample.find('{') {
            Some(i) => (&sample[..i], &sample[i..]),
            None => (sample.split_whitespace().next().unwrap_or(""), ""),
        };
        let labelled = labels.starts_with('{')
            && (labels.contains(&format!("{{{own_label}"))
                || labels.contains(&format!(",{own_label}")));
        let has_nf = labels.contains("{nf=\"") || labels.contains(",nf=\"");
        labelled || (!has_nf && prefixes.iter().any(|p| name.starts_with(p.as_str())))
    };
    let mut out = String::with_capacity(text.len() / 2);
    let mut header = String::new();
    let mut samples = String::new();
    let flush = |out: &mut String, header: &mut String, samples: &mut String| {
        if !samples.is_empty() {
            out.push_str(header);
            out.push_str(samples);
        }
        header.clear();
        samples.clear();
    };
    for line in text.lines() {
        if line.starts_with('#') {
            // A new family starts with its HELP or TYPE line (after any sample lines).
            if !samples.is_empty() {
                flush(&mut out, &mut header, &mut samples);
            }
            header.push_str(line);
            header.push('\n');
        } else if line.trim().is_empty() {
            flush(&mut out, &mut header, &mut samples);
        } else if keep(line) {
            samples.push_str(line);
            samples.push('\n');
        }
    }
    flush(&mut out, &mut header, &mut samples);
    out
}

/// Records one inbound SBI request.
pub fn record_inbound(
    nf: &str,
    service: &str,
    operation: &str,
    method: &str,
    status: u16,
    elapsed: Duration,
) {
    prometheus();
    let labels = [
        ("nf", nf.to_owned()),
        ("service", service.to_owned()),
        ("operation", operation.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!(INBOUND_REQUESTS, &labels).increment(1);
    metrics::histogram!(INBOUND_DURATION, &labels).record(elapsed.as_secs_f64());
}

/// Records one outbound SBI request; `status` is `None` when no response came back.
pub fn record_outbound(
    nf: &str,
    service: &str,
    operation: &str,
    method: &str,
    status: Option<u16>,
    elapsed: Duration,
) {
    prometheus();
    let labels = [
        ("nf", nf.to_owned()),
        ("service", service.to_owned()),
        ("operation", operation.to_owned()),
        ("method", method.to_owned()),
        (
            "status",
            status.map_or_else(|| "error".to_owned(), |s| s.to_string()),
        ),
    ];
    metrics::counter!(OUTBOUND_REQUESTS, &labels).increment(1);
    metrics::histogram!(OUTBOUND_DURATION, &labels).record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_nf_sees_its_own_series_and_its_unlabelled_metrics() {
        let text = "# TYPE sbi_inbound_requests_total counter\n\
            sbi_inbound_requests_total{nf=\"amf\",service=\"namf-loc\"} 3\n\
            sbi_inbound_requests_total{nf=\"nrf\",service=\"nnrf-disc\"} 5\n\
            \n\
            # TYPE nrf_registered_nf_instances gauge\n\
            nrf_registered_nf_instances{nf_type=\"AMF\",status=\"REGISTERED\"} 1\n\
            \n\
            # TYPE amf_registered_ues gauge\n\
            amf_registered_ues 4\n";
        let amf = filter_exposition(text, "amf", &["amf_".to_owned()]);
        assert!(
            amf.contains("nf=\"amf\"") && amf.contains("amf_registered_ues 4"),
            "{amf}"
        );
        assert!(
            !amf.contains("nf=\"nrf\"") && !amf.contains("nrf_registered"),
            "{amf}"
        );
        let nrf = filter_exposition(text, "nrf", &["nrf_".to_owned()]);
        assert!(
            nrf.contains("nnrf-disc") && nrf.contains("nrf_registered_nf_instances{"),
            "{nrf}"
        );
        assert!(
            !nrf.contains("amf_registered_ues") && !nrf.contains("namf-loc"),
            "{nrf}"
        );
        assert_eq!(
            nrf.matches("# TYPE").count(),
            2,
            "headers only for kept families: {nrf}"
        );
    }

    #[test]
    fn recorded_series_appear_in_the_exposition() {
        record_inbound(
            "unit-nf",
            "nunit-svc",
            "unit_op",
            "GET",
            200,
            Duration::from_millis(3),
        );
        record_outbound(
            "unit-nf",
            "nunit-peer",
            "peer_op",
            "PUT",
            None,
            Duration::from_millis(1),
        );
        let text = render();
        let inbound = text
            .lines()
            .find(|l| l.starts_with(INBOUND_REQUESTS) && l.contains("nf=\"unit-nf\""))
            .unwrap_or_else(|| panic!("no inbound series in:\n{text}"));
        for label in [
            "service=\"nunit-svc\"",
            "operation=\"unit_op\"",
            "method=\"GET\"",
            "status=\"200\"",
        ] {
            assert!(inbound.contains(label), "{inbound} lacks {label}");
        }
        assert!(
            text.contains("sbi_inbound_request_duration_seconds_bucket"),
            "histogram, not summary"
        );
        assert!(text
            .lines()
            .any(|l| l.starts_with(OUTBOUND_REQUESTS) && l.contains("status=\"error\"")));
    }
}
