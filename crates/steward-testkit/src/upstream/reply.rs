//! What the upstream answers to one request: a whole response, a head and a body written step by
//! step (pauses, gates the test opens, a cut or reset connection), exact raw bytes, silence or a
//! reset; and how a reply is played on a connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::connection::UpstreamConnection;

/// An answer to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A whole response. The header lines are written as given, in order; `content-length` is
    /// added unless the headers frame the body themselves or the status has no body (1xx, 204, 304).
    Full { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// The head at once, then the body as the steps say, each `Send` one HTTP chunk
    /// (`transfer-encoding: chunked` is added unless the headers frame the body themselves; then
    /// the sent bytes go out as they are).
    Chunked { status: u16, headers: Vec<(String, String)>, steps: Vec<Step> },
    /// Exactly these bytes (a complete response in any framing, even a broken one); the connection
    /// stays open for the next request.
    Raw(Vec<u8>),
    /// Wait, then answer.
    After(Duration, Box<Reply>),
    /// Never answer (until the client gives up and closes the connection).
    Hang,
    /// Reset the connection (RST) without answering.
    Reset,
}

/// One step of a [`Reply::Chunked`] body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send these bytes as one chunk.
    Send(Bytes),
    /// Wait this long.
    Pause(Duration),
    /// Wait until the test calls `notify_one` (a permit given before the wait counts).
    Wait(Arc<Notify>),
    /// Close the connection without ending the body: the answer is cut.
    Close,
    /// Reset the connection (RST).
    Reset,
    /// Never send anything more (until the client gives up and closes the connection).
    Hang,
}

/// A [`Step::Send`] of `bytes`.
pub fn send(bytes: &[u8]) -> Step {
    Step::Send(Bytes::copy_from_slice(bytes))
}

fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

impl Reply {
    /// `200` with `{"ok":true}` as JSON: what the upstream answers unless told otherwise.
    pub fn ok() -> Self {
        Self::full(200, &[("content-type", "application/json")], br#"{"ok":true}"#)
    }

    pub fn full(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Self {
        Self::Full { status, headers: owned(headers), body: body.to_vec() }
    }

    pub fn chunked(status: u16, headers: &[(&str, &str)], steps: Vec<Step>) -> Self {
        Self::Chunked { status, headers: owned(headers), steps }
    }

    /// This reply after a pause.
    pub fn after(self, pause: Duration) -> Self {
        Self::After(pause, Box::new(self))
    }
}

/// How a connection goes on after a reply.
pub(super) enum Then {
    /// Read the next request.
    Next,
    /// The connection is over (closed, reset or abandoned by the client).
    Stop,
}

/// Plays `reply` to a request with method `method` on `connection`. An answer the client left
/// before it ended counts in `abandoned`.
pub(super) async fn play(connection: &mut UpstreamConnection, method: &str, reply: Reply) -> Then {
    let mut reply = reply;
    while let Reply::After(pause, inner) = reply {
        tokio::time::sleep(pause).await;
        reply = *inner;
    }
    match reply {
        Reply::After(..) => unreachable!("unwrapped above"),
        Reply::Raw(bytes) => continue_if(connection.write(&bytes).await.is_ok()),
        Reply::Hang => {
            connection.until_client_leaves().await;
            connection.abandoned();
            Then::Stop
        }
        Reply::Reset => reset(connection),
        Reply::Full { status, mut headers, body } => {
            let has_body = bodied(status) && method != "HEAD";
            if bodied(status) && !framed(&headers) {
                headers.push(("content-length".into(), body.len().to_string()));
            }
            let body = if has_body { body } else { Vec::new() };
            let closes = closes(&headers);
            let ok = connection.head(status, &borrowed(&headers)).await.is_ok()
                && (body.is_empty() || connection.write(&body).await.is_ok());
            continue_if(ok && !closes)
        }
        Reply::Chunked { status, mut headers, steps } => {
            let has_body = bodied(status) && method != "HEAD";
            let chunked = has_body && !framed(&headers);
            if chunked {
                headers.push(("transfer-encoding".into(), "chunked".into()));
            }
            let closes = closes(&headers);
            if connection.head(status, &borrowed(&headers)).await.is_err() {
                return Then::Stop;
            }
            if !has_body {
                return continue_if(!closes);
            }
            for step in steps {
                match step {
                    Step::Send(bytes) => {
                        let sent = if chunked {
                            connection.chunk(&bytes).await
                        } else {
                            connection.write(&bytes).await
                        };
                        if sent.is_err() {
                            connection.abandoned();
                            return Then::Stop;
                        }
                    }
                    Step::Pause(pause) => tokio::time::sleep(pause).await,
                    Step::Wait(gate) => gate.notified().await,
                    Step::Close => return Then::Stop,
                    Step::Reset => return reset(connection),
                    Step::Hang => {
                        connection.until_client_leaves().await;
                        connection.abandoned();
                        return Then::Stop;
                    }
                }
            }
            if chunked && connection.end_chunks().await.is_err() {
                return Then::Stop;
            }
            continue_if(!closes)
        }
    }
}

fn continue_if(ok: bool) -> Then {
    if ok { Then::Next } else { Then::Stop }
}

fn reset(connection: &UpstreamConnection) -> Then {
    let _ = connection.set_reset();
    Then::Stop
}

/// Whether a response with this status carries a body.
fn bodied(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

/// Whether the headers already say how the body is delimited.
fn framed(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"))
}

/// Whether the answer announces `connection: close` (then the upstream closes after it).
fn closes(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

fn borrowed(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

impl UpstreamConnection {
    /// Counts an answer whose client went away before it ended.
    fn abandoned(&self) {
        self.shared().abandoned.fetch_add(1, Ordering::SeqCst);
    }
}
