//! The loopback HTTP/1.1 listener: one task per connection, graceful shutdown (stop accepting, let
//! the requests and streams in flight finish, for at most [`DRAIN_LIMIT`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;

use super::{Gateway, log, proxy};

pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let gateway = gateway.clone();
                let service = service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, std::convert::Infallible>(proxy::handle(gateway, request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = watched.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    log::info(
        "stopping: no new connections; waiting for requests in flight",
        json!({"limit_seconds": DRAIN_LIMIT.as_secs()}),
    );
    tokio::select! {
        () = graceful.shutdown() => log::info("stopped", json!({})),
        () = tokio::time::sleep(DRAIN_LIMIT) => log::warn("stopped with requests still in flight", json!({})),
    }
}
