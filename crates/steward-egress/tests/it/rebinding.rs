//! DNS rebinding: the guard resolves once and the connector connects only to what it validated; a
//! later, different answer never reaches the connection.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a failed test

use crate::support;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use steward_egress::{OutgoingRequest, Resolve, ResolveError, guard};
use steward_testkit::upstream::Reply;
use steward_types::ErrorCode;

/// Answers `first` on the first call and `then` on every later one.
struct Rebinding {
    calls: AtomicUsize,
    first: IpAddr,
    then: IpAddr,
}

#[async_trait]
impl Resolve for Rebinding {
    async fn resolve(&self, _host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec![if n == 0 { self.first } else { self.then }])
    }
}

#[tokio::test]
async fn the_connection_never_reaches_the_rebound_address() {
    // 127.0.0.1 stands for the public answer (allowed by allow_cidrs), 127.0.0.2 for the private one
    // (still denied as loopback): both run an upstream on the same port.
    let public = support::upstream(Reply::full(200, &[], b"public")).await;
    let private = support::upstream_at(
        IpAddr::from([127, 0, 0, 2]),
        public.addr.port(),
        public.ca.clone(),
        &["rebind.test"],
        Reply::full(200, &[], b"private"),
    )
    .await;
    let resolver = Rebinding {
        calls: AtomicUsize::new(0),
        first: IpAddr::from([127, 0, 0, 1]),
        then: IpAddr::from([127, 0, 0, 2]),
    };
    let allow = support::loopback_allow();
    let forwarder = support::forwarder(&public.ca_pem, |_| {});

    let target = guard("localhost", public.addr.port(), &resolver, &allow).await.unwrap();
    assert_eq!(target.addresses(), &[IpAddr::from([127, 0, 0, 1])]);
    let request = OutgoingRequest::new("GET", "/", "", vec![], Vec::new()).unwrap();
    for _ in 0..3 {
        let outcome = forwarder.forward(&target, &request, &[]).await.unwrap();
        assert_eq!(&outcome.body[..], b"public");
        assert_eq!(outcome.resolved_ip, IpAddr::from([127, 0, 0, 1]));
    }
    assert_eq!(resolver.calls.load(Ordering::SeqCst), 1, "the forwarder never resolves");
    assert_eq!(private.connection_count(), 0);

    // A new guard sees the rebound answer and denies it before any connection.
    let err = guard("localhost", public.addr.port(), &resolver, &allow).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResolvedIpDeniedLoopback);
    assert_eq!(private.connection_count(), 0);
}

#[tokio::test]
async fn the_pool_is_keyed_by_the_validated_address() {
    // Two addresses for one host and port, both allowed: a connection made for one is not reused for
    // a target whose validated set does not contain it.
    let ca = Arc::new(steward_testkit::pki::TestCa::new("pool key CA").unwrap());
    let one = support::upstream_at(
        IpAddr::from([127, 0, 0, 1]),
        0,
        ca.clone(),
        &["pool.test"],
        Reply::full(200, &[], b"one"),
    )
    .await;
    let two = support::upstream_at(
        IpAddr::from([127, 0, 0, 3]),
        one.addr.port(),
        ca.clone(),
        &["pool.test"],
        Reply::full(200, &[], b"two"),
    )
    .await;
    let allow = vec!["127.0.0.1/32".parse().unwrap(), "127.0.0.3/32".parse().unwrap()];
    let forwarder = support::forwarder(&ca.cert_pem, |s| s.allow_cidrs = allow.clone());
    let resolver = Rebinding {
        calls: AtomicUsize::new(0),
        first: IpAddr::from([127, 0, 0, 1]),
        then: IpAddr::from([127, 0, 0, 3]),
    };
    let request = OutgoingRequest::new("GET", "/", "", vec![], Vec::new()).unwrap();

    let first = guard("pool.test", one.addr.port(), &resolver, &allow).await.unwrap();
    assert_eq!(&forwarder.forward(&first, &request, &[]).await.unwrap().body[..], b"one");
    assert_eq!(forwarder.idle_connections(), 1);
    let second = guard("pool.test", one.addr.port(), &resolver, &allow).await.unwrap();
    let outcome = forwarder.forward(&second, &request, &[]).await.unwrap();
    assert_eq!(&outcome.body[..], b"two");
    assert_eq!(outcome.resolved_ip, IpAddr::from([127, 0, 0, 3]));
    assert_eq!((one.connection_count(), two.connection_count()), (1, 1));
    // Both SNIs were the canonical host, not an address.
    assert_eq!(one.received()[0].sni.as_deref(), Some("pool.test"));
    assert_eq!(
        two.received()[0].header_values("host"),
        vec![format!("pool.test:{}", one.addr.port()).as_str()]
    );
}
