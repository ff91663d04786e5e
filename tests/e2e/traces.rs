//! Traces over real OTLP: an OTLP/gRPC receiver (the collector's `TraceService`, from
//! `opentelemetry-proto`) on 127.0.0.1:0 in this test, the telemetry of `netgpt-sbi`
//! exporting to it, an NRF, an AMF registered with it and an event subscriber (an NF app
//! of its own) in this process. One user request (a consumer's root span) discovers the
//! AMF at the NRF, registers a UE, subscribes to its location and hands it over; the AMF
//! notifies the subscriber. The test asserts that the spans of the NRF, the AMF and the
//! subscriber share the root's trace id, that every server span's parent is the caller's
//! client span, and that server spans are named after the 3GPP operations.
//!
//! The tracer provider and the subscriber are process-wide: this file is its own test
//! binary with a single test.
//!
//! OAuth2 is off here (`open_config`): these tests exercise the NF's function with plain
//! HTTP clients; `security.rs` and `edge.rs` run the NFs with OAuth2 on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use netgpt_sbi::telemetry::{self, TelemetryConfig};
use netgpt_sbi::{DiscoveryQuery, NfApp, NfContext, NrfClient, SbiClient, SbiOperation};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::Instrument;

const SUPI: &str = "imsi-001010000000077";

/// One received span with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                AnyValue::DoubleValue(d) => d.to_string(),
                other => format!("{other:?}"),
            })
    }
    fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }
    fn describe(&self) -> String {
        format!(
            "{} [{:?}] nf={} span={} parent={}",
            self.span.name,
            self.kind(),
            self.attr("nf.name").unwrap_or_default(),
            hex(&self.span.span_id),
            hex(&self.span.parent_span_id)
        )
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The OTLP/gRPC receiver: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(AnyValue::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    kept.push(Got {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The event subscriber: an NF app of its own (so it has server spans) that forwards
/// each notification it gets.
async fn start_subscriber() -> (String, mpsc::UnboundedReceiver<serde_json::Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let router = Router::new().route(
        "/nsub-evts/v1/amf-events",
        post(move |axum::Json(n): axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(n);
                (SbiOperation("AmfEventNotify"), StatusCode::NO_CONTENT)
            }
        }),
    );
    let doc = utoipa::openapi::OpenApi::new(
        utoipa::openapi::Info::new("subscriber", "1.0.0"),
        utoipa::openapi::Paths::new(),
    );
    let app = NfApp::new("subscriber")
        .nf_type("AF")
        .service("nsub-evts", router, doc)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(netgpt_sbi::serve(
        listener,
        app,
        tokio_util::sync::CancellationToken::new(),
    ));
    (format!("http://{addr}/nsub-evts/v1/amf-events"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_nrf_amf_and_subscriber() {
    // The receiver.
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(receiver.clone());
    // gRPC is HTTP/2: each connection served by hyper with the generated tonic service.
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    // The telemetry, exporting to it (explicit configuration: no environment involved).
    let guard = telemetry::init_with(TelemetryConfig {
        endpoint: Some(format!("http://{otlp}")),
        service_name: "netgpt-e2e".into(),
        log_filter: "warn".into(),
    })
    .expect("telemetry");
    assert!(guard.is_exporting());

    // NRF, AMF (registers with the NRF), subscriber.
    let nrf = netgpt_e2e::start_open_nrf(netgpt_nrf::NrfOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = netgpt_sbi::db::connect(&format!("sqlite://{}", dir.path().join("amf.db").display()))
        .await
        .unwrap();
    let cfg = Arc::new(netgpt_e2e::open_config(&nrf.base));
    let ctx = NfContext::ephemeral(cfg, "amf", db).await.unwrap();
    let amf = netgpt_amf::start(ctx)
        .await
        .expect("AMF starts and registers");
    let (notify_uri, mut inbox) = start_subscriber().await;

    // One user request, as a consumer NF would make it.
    let client = SbiClient::new("consumer");
    let nrf_client = NrfClient::new(client.clone(), nrf.base.clone());
    let root = tracing::info_span!("user_request", otel.kind = "internal");
    let root_trace = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        root.context()
            .span()
            .span_context()
            .trace_id()
            .to_bytes()
            .to_vec()
    };
    async {
        let found = nrf_client
            .discover_fresh(&DiscoveryQuery::new("AMF", "AF").service("namf-evts"))
            .await
            .expect("NFDiscover");
        assert_eq!(found.nf_instances.len(), 1, "the AMF is registered");
        let amf_root = amf.api_root.clone();
        let ue = format!("{amf_root}/namf-comm/v1/ue-contexts/{SUPI}");
        client
            .put(&ue)
            .operation("UEContextRegister")
            .json(&json!({"supi": SUPI, "nrCellId": "000003001"}))
            .send()
            .await
            .expect("UEContextRegister");
        client
            .post(format!("{amf_root}/namf-evts/v1/subscriptions"))
            .operation("CreateSubscription")
            .json(&json!({"subscription": {
                "eventList": [{"type": "LOCATION_REPORT"}],
                "eventNotifyUri": notify_uri,
                "notifyCorrelationId": "traces-1",
                "nfId": uuid::Uuid::new_v4().to_string(),
                "supi": SUPI
            }}))
            .send()
            .await
            .expect("CreateSubscription");
        client
            .post(format!("{ue}/handover"))
            .operation("Handover")
            .json(&json!({"nrCellId": "000003002"}))
            .send()
            .await
            .expect("Handover");
    }
    .instrument(root.clone())
    .await;
    let n = tokio::time::timeout(Duration::from_secs(30), inbox.recv())
        .await
        .expect("a notification within 30 s")
        .expect("subscriber alive");
    assert_eq!(n["notifyCorrelationId"], "traces-1");
    drop(root);

    // Stop (flushes), then wait for the receiver to hold the notification's spans.
    amf.stop().await;
    nrf.running.stop().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let spans = loop {
        tokio::task::spawn_blocking(telemetry::flush).await.unwrap();
        let spans = receiver.spans.lock().unwrap().clone();
        let done = spans.iter().any(|g| g.span.name == "user_request")
            && spans
                .iter()
                .any(|g| g.span.name == "AmfEventNotify" && g.kind() == SpanKind::Server);
        if done || tokio::time::Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let listing: Vec<String> = spans.iter().map(Got::describe).collect();
    let listing = listing.join("\n");
    assert!(
        spans.iter().all(|g| g.service == "netgpt-e2e"),
        "service.name"
    );

    // One trace: the root's.
    let trace: Vec<&Got> = spans
        .iter()
        .filter(|g| g.span.trace_id == root_trace)
        .collect();
    let by_id: HashMap<&[u8], &Got> = trace
        .iter()
        .map(|g| (g.span.span_id.as_slice(), *g))
        .collect();
    let servers: Vec<&Got> = trace
        .iter()
        .copied()
        .filter(|g| g.kind() == SpanKind::Server)
        .collect();
    let server = |name: &str, nf: &str| -> &Got {
        servers
            .iter()
            .copied()
            .find(|g| g.span.name == name && g.attr("nf.name").as_deref() == Some(nf))
            .unwrap_or_else(|| {
                panic!("no server span {name} of {nf} in the root's trace; spans:\n{listing}")
            })
    };
    // Named after the 3GPP operations (the operationIds of the services' documents).
    let discover = server("SearchNFInstances", "nrf");
    let register = server("UEContextRegister", "amf");
    let subscribe = server("CreateSubscription", "amf");
    let handover = server("Handover", "amf");
    let notified = server("AmfEventNotify", "subscriber");
    assert_eq!(discover.attr("nf.type").as_deref(), Some("NRF"));
    assert_eq!(handover.attr("nf.type").as_deref(), Some("AMF"));
    assert_eq!(
        handover.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    let nfs: std::collections::BTreeSet<String> =
        servers.iter().filter_map(|g| g.attr("nf.name")).collect();
    assert!(nfs.len() >= 3, "server spans of {nfs:?}");

    // Every server span's parent is the caller's client span, in the same trace.
    for s in &servers {
        let parent = by_id
            .get(s.span.parent_span_id.as_slice())
            .unwrap_or_else(|| panic!("parent of {} not in the trace:\n{listing}", s.describe()));
        assert_eq!(
            parent.kind(),
            SpanKind::Client,
            "parent of {} is {}",
            s.describe(),
            parent.describe()
        );
    }
    // The consumer's calls hang off the root; the notification is the AMF's call, made
    // while it handled the handover.
    let root_span = trace
        .iter()
        .find(|g| g.span.name == "user_request")
        .unwrap_or_else(|| panic!("no root span:\n{listing}"));
    // Whether `g` descends from `ancestor` by parent links inside the trace.
    let descends = |g: &Got, ancestor: &Got| -> bool {
        let mut cur = g;
        for _ in 0..64 {
            if cur.span.span_id == ancestor.span.span_id {
                return true;
            }
            match by_id.get(cur.span.parent_span_id.as_slice()) {
                Some(p) => cur = p,
                None => return false,
            }
        }
        false
    };
    for s in [discover, register, subscribe, handover] {
        let client = by_id[s.span.parent_span_id.as_slice()];
        assert_eq!(client.attr("nf.name").as_deref(), Some("consumer"));
        assert!(
            descends(client, root_span),
            "{} under the root",
            client.describe()
        );
    }
    // Client spans carry the operation the caller names (the AMF names its notification).
    for s in [register, subscribe, handover] {
        assert_eq!(
            by_id[s.span.parent_span_id.as_slice()].span.name,
            s.span.name
        );
    }
    let amf_client = by_id[notified.span.parent_span_id.as_slice()];
    assert_eq!(amf_client.attr("nf.name").as_deref(), Some("amf"));
    assert!(
        descends(amf_client, handover),
        "the notification is not under the handover:\n{listing}"
    );

    // The AMF's registration at start: its own trace, NRF server span under the AMF's client span.
    let reg = spans
        .iter()
        .find(|g| g.span.name == "RegisterNFInstance" && g.kind() == SpanKind::Server)
        .unwrap_or_else(|| panic!("no RegisterNFInstance server span:\n{listing}"));
    let reg_client = spans
        .iter()
        .find(|g| g.span.span_id == reg.span.parent_span_id)
        .unwrap_or_else(|| panic!("no client span for RegisterNFInstance:\n{listing}"));
    assert_eq!(reg_client.span.trace_id, reg.span.trace_id);
    assert_eq!(reg_client.attr("nf.name").as_deref(), Some("amf"));
    println!(
        "{} spans received; the user request's trace has {} spans over {nfs:?}",
        spans.len(),
        trace.len()
    );
    drop(guard);
}
