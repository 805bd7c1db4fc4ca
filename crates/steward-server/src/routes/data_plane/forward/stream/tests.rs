use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{StreamExt, stream};
use http_body_util::BodyExt;

use super::*;

/// One needle, raw only, with the hold-back rule: enough to watch the body type hold, release and
/// drop a tail (the real scrubber's encodings are tested in `steward-egress`).
struct OneNeedle {
    needle: &'static [u8],
    held: Vec<u8>,
    redacted: bool,
}

impl OneNeedle {
    fn new(needle: &'static [u8]) -> Box<Self> {
        Box::new(Self { needle, held: Vec::new(), redacted: false })
    }
}

impl ChunkFilter for OneNeedle {
    fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut data = std::mem::take(&mut self.held);
        data.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            if data[i..].starts_with(self.needle) {
                out.extend_from_slice(b"[REDACTED]");
                self.redacted = true;
                i += self.needle.len();
            } else if self.needle.starts_with(&data[i..]) {
                // A proper prefix of the needle up to the end: hold it.
                self.held = data[i..].to_vec();
                break;
            } else {
                out.push(data[i]);
                i += 1;
            }
        }
        Bytes::from(out)
    }
    fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.held))
    }
    fn redacted(&self) -> bool {
        self.redacted
    }
}

/// Counts the bytes it saw and reports them as "usage".
struct Seen(u64);

impl ChunkObserver for Seen {
    fn observe(&mut self, chunk: &[u8]) {
        self.0 += chunk.len() as u64;
    }
    fn summary(&mut self) -> Option<Value> {
        Some(serde_json::json!({"seen": self.0}))
    }
}

type Ends = Arc<Mutex<Vec<StreamSummary>>>;

fn body_with(source: impl Stream<Item = Result<Bytes, StreamEnd>> + Send + 'static) -> (ForwardedBody, Ends) {
    let ends: Ends = Arc::default();
    let sink = ends.clone();
    let body = ForwardedBody::new(source, OneNeedle::new(b"SECRET"), Instant::now(), move |summary| {
        sink.lock().unwrap().push(summary);
    });
    (body, ends)
}

fn chunks(parts: &[&'static str]) -> Vec<Result<Bytes, StreamEnd>> {
    parts.iter().map(|p| Ok(Bytes::from_static(p.as_bytes()))).collect()
}

/// Every frame until the end or the error.
async fn frames(body: &mut ForwardedBody) -> (Vec<String>, Option<StreamEnd>) {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => out.push(String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()),
            Err(cut) => return (out, Some(cut.end)),
        }
    }
    (out, None)
}

#[tokio::test]
async fn chunks_pass_at_once_and_the_end_is_complete() {
    let (mut body, ends) = body_with(stream::iter(chunks(&["data: a\n\n", "data: b\n\n"])));
    let (out, cut) = frames(&mut body).await;
    assert_eq!(out, ["data: a\n\n", "data: b\n\n"]);
    assert_eq!(cut, None);
    assert!(body.is_end_stream());
    let ends = ends.lock().unwrap();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].end, StreamEnd::Complete);
    assert_eq!(ends[0].response_bytes, 18);
    assert!(!ends[0].scrubbed);
    assert!(ends[0].ttfb <= ends[0].latency);
}

#[tokio::test]
async fn a_needle_split_across_chunks_is_redacted_and_a_held_tail_is_released_at_the_end() {
    let (mut body, ends) = body_with(stream::iter(chunks(&["key=SEC", "RET;", "x=SE"])));
    let (out, _) = frames(&mut body).await;
    // "SEC" was held until "RET" decided it; "SE" at the very end is not a secret and goes out.
    assert_eq!(out, ["key=", "[REDACTED];", "x=", "SE"]);
    let ends = ends.lock().unwrap();
    assert_eq!(ends[0].end, StreamEnd::Complete);
    assert_eq!(ends[0].response_bytes, "key=[REDACTED];x=SE".len() as u64);
    assert!(ends[0].scrubbed);
}

#[tokio::test]
async fn a_chunk_wholly_held_back_produces_no_empty_frame() {
    let (mut body, _) = body_with(stream::iter(chunks(&["S", "", "E", "Cx"])));
    let (out, _) = frames(&mut body).await;
    assert_eq!(out, ["SECx"]);
}

#[tokio::test]
async fn a_cut_drops_the_held_tail_fails_the_body_and_reports_the_reason() {
    for reason in
        [StreamEnd::IdleTimeout, StreamEnd::MaxBytes, StreamEnd::MaxSeconds, StreamEnd::UpstreamError]
    {
        let mut items = chunks(&["ok ", "SECR"]);
        items.push(Err(reason));
        let (mut body, ends) = body_with(stream::iter(items));
        let (out, cut) = frames(&mut body).await;
        assert_eq!(out, ["ok "], "{reason}");
        assert_eq!(cut, Some(reason));
        drop(body);
        let ends = ends.lock().unwrap();
        assert_eq!(ends.len(), 1, "reported once, not again on drop");
        assert_eq!((ends[0].end, ends[0].response_bytes), (reason, 3));
    }
}

#[tokio::test]
async fn dropping_the_body_before_the_end_is_client_closed() {
    let (sender, receiver) = mpsc::unbounded::<Result<Bytes, StreamEnd>>();
    let (mut body, ends) = body_with(receiver);
    sender.unbounded_send(Ok(Bytes::from_static(b"first"))).unwrap();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    assert!(ends.lock().unwrap().is_empty(), "nothing ended yet");
    drop(body);
    let ends = ends.lock().unwrap();
    assert_eq!((ends[0].end, ends[0].response_bytes), (StreamEnd::ClientClosed, 5));
    drop(sender);
}

#[tokio::test]
async fn a_body_never_polled_is_client_closed_with_nothing_sent() {
    let (body, ends) = body_with(stream::pending());
    drop(body);
    let ends = ends.lock().unwrap();
    assert_eq!((ends[0].end, ends[0].response_bytes), (StreamEnd::ClientClosed, 0));
}

#[tokio::test]
async fn each_chunk_is_handed_out_before_the_next_one_exists() {
    // The source is gated: the second chunk is only sent after the first one came out of the body.
    let (sender, receiver) = mpsc::unbounded::<Result<Bytes, StreamEnd>>();
    let (mut body, ends) = body_with(receiver);
    sender.unbounded_send(Ok(Bytes::from_static(b"data: 1\n\n"))).unwrap();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "data: 1\n\n");
    sender.unbounded_send(Ok(Bytes::from_static(b"data: 2\n\n"))).unwrap();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "data: 2\n\n");
    drop(sender);
    assert!(body.frame().await.is_none());
    assert_eq!(ends.lock().unwrap()[0].end, StreamEnd::Complete);
}

#[tokio::test]
async fn the_observer_sees_the_upstream_bytes_and_its_summary_is_reported() {
    let (body, ends) = body_with(stream::iter(chunks(&["abc", "SECRET"])));
    let mut body = body.with_observer(Box::new(Seen(0)));
    let _ = frames(&mut body).await;
    let ends = ends.lock().unwrap();
    assert_eq!(ends[0].usage, Some(serde_json::json!({"seen": 9})));
}

#[tokio::test]
async fn an_empty_body_completes_with_zero_bytes() {
    let (mut body, ends) = body_with(stream::empty());
    assert!(body.frame().await.is_none());
    let ends = ends.lock().unwrap();
    assert_eq!((ends[0].end, ends[0].response_bytes), (StreamEnd::Complete, 0));
    assert_eq!(ends[0].ttfb, ends[0].latency);
}

#[tokio::test]
async fn the_body_works_as_an_axum_body() {
    let (body, ends) = body_with(stream::iter(chunks(&["a", "b"])).boxed());
    let collected = axum::body::Body::new(body).collect().await.unwrap().to_bytes();
    assert_eq!(collected, "ab");
    assert_eq!(ends.lock().unwrap()[0].end, StreamEnd::Complete);
}

#[test]
fn end_reasons_have_the_spec_names() {
    let names: Vec<&str> = [
        StreamEnd::Complete,
        StreamEnd::ClientClosed,
        StreamEnd::UpstreamError,
        StreamEnd::IdleTimeout,
        StreamEnd::MaxBytes,
        StreamEnd::MaxSeconds,
    ]
    .iter()
    .map(|e| e.as_str())
    .collect();
    assert_eq!(
        names,
        ["complete", "client_closed", "upstream_error", "idle_timeout", "max_bytes", "max_seconds"]
    );
}
