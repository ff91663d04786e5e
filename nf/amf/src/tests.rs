//! Unit tests of the AMF's procedures on a real SQLite store (and PostgreSQL when
//! `NETGPT_TEST_POSTGRES_URL` is set), with notifications delivered over real h2c.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::models::namf::{
    AmfCreateEventSubscription, AmfEvent, AmfEventMode, AmfEventNotification, AmfEventSubscription,
    AmfEventTrigger, AmfEventType, HandoverRequest, RandomWalkRequest, RequestLocInfo,
    UeRegistration,
};
use netgpt_sbi::SbiClient;
use tokio::sync::mpsc;

use crate::consumer::Notifier;
use crate::context::AmfContext;
use crate::mobility::{self, Walker};
use crate::procedures::*;
use crate::store::SqlStore;

const UE1: &str = "imsi-001010000000001";
const UE2: &str = "imsi-001010000000002";

fn cfg() -> TestbedConfig {
    TestbedConfig::load_default().unwrap()
}

async fn ctx_on(store: SqlStore) -> Arc<AmfContext> {
    let notifier = Notifier::new(SbiClient::new("amf-test"));
    Arc::new(
        AmfContext::new(&cfg(), "http://amf.test".into(), Arc::new(store), notifier)
            .await
            .unwrap(),
    )
}

async fn fresh() -> (Arc<AmfContext>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("amf.db").display());
    (ctx_on(SqlStore::connect(&url).await.unwrap()).await, dir)
}

/// An h2c subscriber on 127.0.0.1:0 forwarding every notification to the channel.
async fn subscriber() -> (String, mpsc::UnboundedReceiver<AmfEventNotification>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/notify",
        post(move |Json(n): Json<AmfEventNotification>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(n);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/notify"), rx)
}

fn location_sub(uri: &str, supi: Option<&str>, any_ue: bool) -> AmfCreateEventSubscription {
    AmfCreateEventSubscription {
        subscription: AmfEventSubscription {
            event_list: vec![AmfEvent {
                event_type: AmfEventType::LocationReport,
                immediate_flag: None,
                max_reports: None,
            }],
            event_notify_uri: uri.to_owned(),
            notify_correlation_id: "corr-1".into(),
            nf_id: uuid::Uuid::new_v4(),
            supi: supi.map(str::to_owned),
            any_ue: any_ue.then_some(true),
            options: None,
        },
        supported_features: None,
    }
}

fn to(cell: &str) -> HandoverRequest {
    HandoverRequest {
        target_ncgi: None,
        nr_cell_id: Some(cell.into()),
    }
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<AmfEventNotification>) -> AmfEventNotification {
    // A generous bound so a lost notification fails the test instead of hanging it.
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("notification arrives")
        .unwrap()
}

#[tokio::test]
async fn config_ues_are_preregistered_and_moves_survive_a_restart() {
    crate::store::tests::each_backend(|store, url| async move {
        let ctx = ctx_on(store).await;
        let ues = ue_context_list(&ctx).await;
        assert_eq!(ues.len(), cfg().ue.len());
        assert_eq!(ues[0].supi, UE1);
        assert_eq!(
            ues[0].serving_cell.as_ref().unwrap().ncgi.nr_cell_id,
            "000001001"
        );
        handover(&ctx, UE1, to("000001002")).await.unwrap();
        drop(ctx);
        let again = ctx_on(SqlStore::connect(&url).await.unwrap()).await;
        let ue = ue_context_retrieve(&again, UE1).await.unwrap();
        assert_eq!(ue.serving_cell.unwrap().nr_cell_id(), "000001002");
    })
    .await;
}

trait CellId {
    fn nr_cell_id(&self) -> &str;
}
impl CellId for netgpt_sbi::models::namf::CellInfo {
    fn nr_cell_id(&self) -> &str {
        &self.ncgi.nr_cell_id
    }
}

#[tokio::test]
async fn provide_location_info_reports_tai_ncgi_geo_rat_and_timezone() {
    let (ctx, _d) = fresh().await;
    let req = RequestLocInfo {
        req5gs_loc: true,
        req_rat_type: true,
        req_time_zone: true,
        ..Default::default()
    };
    let info = provide_location_info(&ctx, UE1, req).await.unwrap();
    let nr = info
        .location
        .as_ref()
        .unwrap()
        .nr_location
        .as_ref()
        .unwrap();
    assert_eq!(nr.ncgi.nr_cell_id, "000001001");
    assert_eq!(nr.ncgi.plmn_id.mcc, "001");
    assert_eq!(nr.tai.tac, "000001");
    assert!(nr.ue_location_timestamp.is_some());
    assert_eq!(info.current_loc, Some(false));
    let p = info.geo_info.as_ref().unwrap().coordinates();
    assert!((p.lat - 30.2635).abs() < 1e-9 && (p.lon - 120.1230).abs() < 1e-9);
    assert_eq!(info.rat_type, Some(netgpt_sbi::models::common::RatType::Nr));
    assert_eq!(info.timezone.as_deref(), Some("+08:00"));

    let current = provide_location_info(
        &ctx,
        UE1,
        RequestLocInfo {
            req_current_loc: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(current.current_loc, Some(true));
    assert_eq!(
        current
            .location
            .unwrap()
            .nr_location
            .unwrap()
            .age_of_location_information,
        Some(0)
    );
    assert!(current.rat_type.is_none() && current.timezone.is_none());

    let nothing = provide_location_info(&ctx, UE1, RequestLocInfo::default())
        .await
        .unwrap();
    assert!(nothing.location.is_none() && nothing.geo_info.is_none());
    assert_eq!(ctx.stats.location_requests.load(Ordering::Relaxed), 3);

    // The site's configured zone wins over the nautical zone of the longitude (Paris is
    // at 2.3 degrees east, nautically +00:00, but keeps Central European Time).
    let paris = provide_location_info(
        &ctx,
        "imsi-001010000000003",
        RequestLocInfo {
            req_time_zone: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(paris.timezone.as_deref(), Some("+01:00"));
}

#[tokio::test]
async fn unknown_supi_is_context_not_found_and_a_malformed_one_is_400() {
    let (ctx, _d) = fresh().await;
    let p = provide_location_info(&ctx, "imsi-001019999999999", RequestLocInfo::default())
        .await
        .unwrap_err();
    assert_eq!(
        (p.status, p.cause.as_deref()),
        (404, Some("CONTEXT_NOT_FOUND"))
    );
    let p = ue_context_retrieve(&ctx, "bob").await.unwrap_err();
    assert_eq!(p.status, 400);
    assert_eq!(p.invalid_params[0].param, "ueContextId");
    let p = ue_context_deregister(&ctx, "imsi-001019999999999")
        .await
        .unwrap_err();
    assert_eq!(p.status, 404);
    let p = handover(&ctx, "imsi-001019999999999", to("000001002"))
        .await
        .unwrap_err();
    assert_eq!(p.cause.as_deref(), Some("CONTEXT_NOT_FOUND"));
}

#[tokio::test]
async fn register_creates_then_replaces_and_bad_input_changes_nothing() {
    let (ctx, _d) = fresh().await;
    let supi = "imsi-001010000000042";
    let reg = UeRegistration {
        nr_cell_id: Some("000003002".into()),
        ..Default::default()
    };
    let (ue, created) = ue_context_register(&ctx, supi, reg.clone()).await.unwrap();
    assert!(created);
    assert_eq!(ue.serving_cell.unwrap().site, "edge-paris");
    let (_, created) = ue_context_register(&ctx, supi, reg).await.unwrap();
    assert!(!created);

    let before = ue_context_list(&ctx).await;
    let stored_before = ctx.store.load_ue_contexts().await.unwrap();
    let bad = [
        (
            supi,
            UeRegistration {
                nr_cell_id: Some("0000FFFFF".into()),
                ..Default::default()
            },
            "nrCellId",
        ),
        (
            supi,
            UeRegistration {
                nr_cell_id: Some("xyz".into()),
                ..Default::default()
            },
            "nrCellId",
        ),
        (supi, UeRegistration::default(), "nrCellId"),
        (
            supi,
            UeRegistration {
                supi: Some(UE1.into()),
                nr_cell_id: Some("000001001".into()),
                ..Default::default()
            },
            "supi",
        ),
        (
            supi,
            UeRegistration {
                pei: Some("imei-12".into()),
                nr_cell_id: Some("000001001".into()),
                ..Default::default()
            },
            "pei",
        ),
        (
            "imsi-12",
            UeRegistration {
                nr_cell_id: Some("000001001".into()),
                ..Default::default()
            },
            "ueContextId",
        ),
    ];
    for (id, body, param) in bad {
        let p = ue_context_register(&ctx, id, body).await.unwrap_err();
        assert_eq!(p.status, 400, "{p}");
        assert_eq!(p.invalid_params[0].param, param, "{p}");
    }
    let p = handover(&ctx, supi, to("0000FFFFF")).await.unwrap_err();
    assert_eq!(p.invalid_params[0].param, "nrCellId");
    assert_eq!(ue_context_list(&ctx).await, before);
    assert_eq!(ctx.store.load_ue_contexts().await.unwrap(), stored_before);
}

#[tokio::test]
async fn deregister_removes_the_context_from_memory_and_store() {
    let (ctx, _d) = fresh().await;
    ue_context_deregister(&ctx, UE2).await.unwrap();
    assert_eq!(
        ue_context_retrieve(&ctx, UE2).await.unwrap_err().status,
        404
    );
    assert!(!ctx
        .store
        .load_ue_contexts()
        .await
        .unwrap()
        .iter()
        .any(|u| u.supi == UE2));
}

#[tokio::test]
async fn subscription_validation_refuses_bad_requests_and_stores_nothing() {
    let (ctx, _d) = fresh().await;
    let ok = location_sub("http://127.0.0.1:9/n", Some(UE1), false);
    let mut cases: Vec<(AmfCreateEventSubscription, u16, &str)> = Vec::new();
    let mut c = ok.clone();
    c.subscription.event_notify_uri = "not a uri".into();
    cases.push((c, 400, "subscription.eventNotifyUri"));
    let mut c = ok.clone();
    c.subscription.event_list[0].event_type = AmfEventType::ReachabilityReport;
    cases.push((c, 400, "subscription.eventList[0].type"));
    let mut c = ok.clone();
    c.subscription.event_list.clear();
    cases.push((c, 400, "subscription.eventList"));
    cases.push((
        location_sub("http://127.0.0.1:9/n", None, false),
        400,
        "subscription.supi",
    ));
    cases.push((
        location_sub("http://127.0.0.1:9/n", Some(UE1), true),
        400,
        "subscription.anyUE",
    ));
    cases.push((
        location_sub("http://127.0.0.1:9/n", Some("imsi-x"), false),
        400,
        "subscription.supi",
    ));
    for (req, status, param) in cases {
        let p = create_subscription(&ctx, req).await.unwrap_err();
        assert_eq!(p.status, status, "{p}");
        assert_eq!(p.invalid_params[0].param, param, "{p}");
    }
    let p = create_subscription(
        &ctx,
        location_sub("http://127.0.0.1:9/n", Some("imsi-001019999999999"), false),
    )
    .await
    .unwrap_err();
    assert_eq!(p.cause.as_deref(), Some("CONTEXT_NOT_FOUND"));
    assert!(ctx.subscriptions.read().await.is_empty());
    assert!(ctx.store.load_subscriptions().await.unwrap().is_empty());
    let p = delete_subscription(&ctx, "nope").await.unwrap_err();
    assert_eq!(
        (p.status, p.cause.as_deref()),
        (404, Some("SUBSCRIPTION_NOT_FOUND"))
    );
}

#[tokio::test]
async fn handover_notifies_the_ue_and_any_ue_subscribers_over_h2c() {
    let (ctx, _d) = fresh().await;
    let (uri, mut rx) = subscriber().await;
    let (created, location) = create_subscription(&ctx, location_sub(&uri, Some(UE1), false))
        .await
        .unwrap();
    assert_eq!(
        location,
        format!(
            "http://amf.test/namf-evts/v1/subscriptions/{}",
            created.subscription_id
        )
    );
    create_subscription(&ctx, location_sub(&uri, None, true))
        .await
        .unwrap();
    create_subscription(&ctx, location_sub(&uri, Some(UE2), false))
        .await
        .unwrap();
    assert_eq!(ctx.store.load_subscriptions().await.unwrap().len(), 3);

    let res = handover(&ctx, UE1, to("000002002")).await.unwrap();
    assert_eq!(res.notifications, 2);
    assert_eq!(res.source_ncgi.nr_cell_id, "000001001");
    assert_eq!(
        res.ue_context.serving_cell.as_ref().unwrap().site,
        "edge-london"
    );
    for _ in 0..2 {
        let n = recv(&mut rx).await;
        assert_eq!(n.notify_correlation_id.as_deref(), Some("corr-1"));
        let r = &n.report_list.as_ref().unwrap()[0];
        assert_eq!(r.event_type, AmfEventType::LocationReport);
        assert_eq!(r.supi.as_deref(), Some(UE1));
        assert!(r.state.active);
        let nr = r.location.as_ref().unwrap().nr_location.as_ref().unwrap();
        assert_eq!(nr.ncgi.nr_cell_id, "000002002");
        assert_eq!(nr.tai.tac, "000002");
    }
    // Same cell again: nothing moves, nobody is told.
    assert_eq!(
        handover(&ctx, UE1, to("000002002"))
            .await
            .unwrap()
            .notifications,
        0
    );
    assert_eq!(ctx.stats.handovers.load(Ordering::Relaxed), 1);

    delete_subscription(&ctx, &created.subscription_id)
        .await
        .unwrap();
    assert_eq!(ctx.store.load_subscriptions().await.unwrap().len(), 2);
    assert_eq!(
        handover(&ctx, UE1, to("000001001"))
            .await
            .unwrap()
            .notifications,
        1
    );
}

#[tokio::test]
async fn one_time_subscription_ends_after_its_report() {
    let (ctx, _d) = fresh().await;
    let (uri, mut rx) = subscriber().await;
    let mut req = location_sub(&uri, Some(UE1), false);
    req.subscription.options = Some(AmfEventMode {
        trigger: AmfEventTrigger::OneTime,
        max_reports: None,
        expiry: None,
    });
    create_subscription(&ctx, req).await.unwrap();
    let mut req = location_sub(&uri, Some(UE1), false);
    req.subscription.options = Some(AmfEventMode {
        trigger: AmfEventTrigger::Continuous,
        max_reports: Some(2),
        expiry: None,
    });
    let (two, _) = create_subscription(&ctx, req).await.unwrap();

    assert_eq!(
        handover(&ctx, UE1, to("000001002"))
            .await
            .unwrap()
            .notifications,
        2
    );
    let mut states: Vec<_> = vec![recv(&mut rx).await, recv(&mut rx).await]
        .into_iter()
        .map(|n| n.report_list.unwrap()[0].state.clone())
        .collect();
    states.sort_by_key(|s| s.active);
    assert!(!states[0].active);
    assert_eq!(
        (states[1].active, states[1].remain_reports),
        (true, Some(1))
    );
    let stored = ctx.store.load_subscriptions().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].id.as_str(), stored[0].reports_sent),
        (two.subscription_id.as_str(), 1)
    );

    assert_eq!(
        handover(&ctx, UE1, to("000001001"))
            .await
            .unwrap()
            .notifications,
        1
    );
    assert_eq!(
        recv(&mut rx).await.report_list.unwrap()[0]
            .state
            .remain_reports,
        Some(0)
    );
    assert!(ctx.subscriptions.read().await.is_empty());
    assert!(ctx.store.load_subscriptions().await.unwrap().is_empty());
}

#[tokio::test]
async fn immediate_flag_returns_the_current_location() {
    let (ctx, _d) = fresh().await;
    let mut req = location_sub("http://127.0.0.1:9/n", Some(UE2), false);
    req.subscription.event_list[0].immediate_flag = Some(true);
    let (created, _) = create_subscription(&ctx, req).await.unwrap();
    let r = &created.report_list.unwrap()[0];
    assert_eq!(
        r.location
            .as_ref()
            .unwrap()
            .nr_location
            .as_ref()
            .unwrap()
            .ncgi
            .nr_cell_id,
        "000002001"
    );
}

#[tokio::test]
async fn failed_delivery_is_counted_and_does_not_block_the_handover() {
    let (ctx, _d) = fresh().await;
    // A port that was bound and released: nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    create_subscription(
        &ctx,
        location_sub(&format!("http://{dead}/n"), Some(UE1), false),
    )
    .await
    .unwrap();
    let res = handover(&ctx, UE1, to("000001002")).await.unwrap();
    assert_eq!(res.notifications, 1);
    assert_eq!(
        ue_context_retrieve(&ctx, UE1)
            .await
            .unwrap()
            .serving_cell
            .unwrap()
            .ncgi
            .nr_cell_id,
        "000001002"
    );
    for _ in 0..400 {
        if ctx.stats.notifications_failed.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ctx.stats.notifications_failed.load(Ordering::Relaxed), 1);
    assert_eq!(ctx.stats.notifications_delivered.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn random_walk_choices_are_reproducible_from_the_seed() {
    let (ctx, _d) = fresh().await;
    let supis: Vec<String> = ctx.ues.read().await.keys().cloned().collect();
    let mut a = Walker::new(supis.clone(), 7);
    let mut b = Walker::new(supis.clone(), 7);
    let mut c = Walker::new(supis, 8);
    let (mut pa, mut pb, mut pc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        pa.push(
            a.next(&ctx)
                .await
                .map(|(s, cell)| (s, cell.nr_cell_id.clone()))
                .unwrap(),
        );
        pb.push(
            b.next(&ctx)
                .await
                .map(|(s, cell)| (s, cell.nr_cell_id.clone()))
                .unwrap(),
        );
        pc.push(
            c.next(&ctx)
                .await
                .map(|(s, cell)| (s, cell.nr_cell_id.clone()))
                .unwrap(),
        );
    }
    assert_eq!(pa, pb);
    assert_ne!(pa, pc);
    let ues = ctx.ues.read().await;
    for (supi, cell) in &pa {
        assert_ne!(
            &ues[supi].record.nr_cell_id, cell,
            "a walk step always changes cell"
        );
    }
}

#[tokio::test]
async fn random_walk_performs_its_steps_then_stops() {
    let (ctx, _d) = fresh().await;
    let p = mobility::start_random_walk(
        &ctx,
        RandomWalkRequest {
            interval_ms: 1,
            seed: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(p.invalid_params[0].param, "intervalMs");
    let p = mobility::start_random_walk(
        &ctx,
        RandomWalkRequest {
            count: Some(99),
            interval_ms: 10,
            seed: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(p.invalid_params[0].param, "count");

    let started = mobility::start_random_walk(
        &ctx,
        RandomWalkRequest {
            count: Some(2),
            interval_ms: 10,
            seed: 3,
            steps: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(started.running);
    assert_eq!(started.supis, vec![UE1.to_owned(), UE2.to_owned()]);
    let mut status = mobility::random_walk_status(&ctx).await;
    for _ in 0..400 {
        if !status.running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = mobility::random_walk_status(&ctx).await;
    }
    assert!(!status.running);
    assert_eq!(status.handovers, 5);
    assert_eq!(ctx.stats.handovers.load(Ordering::Relaxed), 5);
    assert!(!mobility::stop_random_walk(&ctx).await.running);
}

#[test]
fn sbi_specs_match_the_code() {
    netgpt_sbi::openapi::assert_specs_match("netgpt-amf", &crate::service_docs());
}
