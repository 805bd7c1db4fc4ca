use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{StreamExt, stream};
use http_body_util::BodyExt;
use steward_egress::{Provider, Scrubber};

use super::*;

const SECRET: &str = "sk-stream-secret-0042";

/// The real streaming scrubber over [`SECRET`].
fn scrubber() -> Box<StreamScrubber> {
    Box::new(StreamScrubber::new(Arc::new(Scrubber::new(&[SECRET]).unwrap())))
}

type Ends = Arc<Mutex<Vec<StreamSummary>>>;

fn body_with(source: impl Stream<Item = Result<Bytes, StreamEnd>> + Send + 'static) -> (ForwardedBody, Ends) {
    let ends: Ends = Arc::default();
    let sink = ends.clone();
    let body = ForwardedBody::new(source, scrubber(), Instant::now(), move |summary| {
        sink.lock().unwrap().push(summary);
    });
    (body, ends)
}

fn chunks(parts: &[&str]) -> Vec<Result<Bytes, StreamEnd>> {
    parts.iter().map(|p| Ok(Bytes::copy_from_slice(p.as_bytes()))).collect()
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
async fn a_secret_split_across_chunks_is_redacted_and_never_leaks_in_part() {
    let (head, tail) = SECRET.split_at(9);
    let first = format!("{{\"key\":\"{head}");
    let second = format!("{tail}\"}}");
    let (mut body, ends) = body_with(stream::iter(chunks(&[&first, &second])));
    let (out, _) = frames(&mut body).await;
    // The first frame stops before the undecided tail; the whole is redacted.
    assert_eq!(out[0], "{\"key\":\"");
    assert_eq!(out.concat(), "{\"key\":\"[REDACTED]\"}");
    let ends = ends.lock().unwrap();
    assert_eq!(ends[0].end, StreamEnd::Complete);
    assert_eq!(ends[0].response_bytes, "{\"key\":\"[REDACTED]\"}".len() as u64);
    assert!(ends[0].scrubbed);
}

#[tokio::test]
async fn a_held_tail_that_never_becomes_the_secret_is_released_at_the_end() {
    let (mut body, ends) = body_with(stream::iter(chunks(&["x=", "sk-str"])));
    let (out, _) = frames(&mut body).await;
    assert_eq!(out, ["x=", "sk-str"]);
    assert!(!ends.lock().unwrap()[0].scrubbed);
}

#[tokio::test]
async fn a_chunk_wholly_held_back_produces_no_empty_frame() {
    let (mut body, _) = body_with(stream::iter(chunks(&["s", "", "k-", "x"])));
    let (out, _) = frames(&mut body).await;
    assert_eq!(out, ["sk-x"]);
}

#[tokio::test]
async fn a_cut_drops_the_held_tail_fails_the_body_and_reports_the_reason() {
    for reason in
        [StreamEnd::IdleTimeout, StreamEnd::MaxBytes, StreamEnd::MaxSeconds, StreamEnd::UpstreamError]
    {
        let mut items = chunks(&["ok ", "sk-stream-"]);
        items.push(Err(reason));
        let (mut body, ends) = body_with(stream::iter(items));
        let (out, cut) = frames(&mut body).await;
        // The start of the secret never goes out.
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
async fn a_client_that_leaves_after_the_last_byte_of_a_finished_upstream_got_a_complete_answer() {
    let (mut body, ends) = body_with(stream::iter(chunks(&["data: answer\n\n"])));
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "data: answer\n\n");
    drop(body); // before polling for the end, as an MCP client does once it has its answer
    let ends = ends.lock().unwrap();
    assert_eq!((ends[0].end, ends[0].response_bytes), (StreamEnd::Complete, 14));
}

#[tokio::test]
async fn a_client_that_leaves_before_the_upstream_finished_is_client_closed() {
    let (mut body, ends) = body_with(stream::iter(chunks(&["data: x\n\n", "sk-stream"])));
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "data: x\n\n");
    drop(body); // the upstream still had "sk-stream" to send: the client did not get everything
    let ends = ends.lock().unwrap();
    assert_eq!((ends[0].end, ends[0].response_bytes), (StreamEnd::ClientClosed, 9));
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
async fn the_usage_meter_sees_the_answer_and_its_usage_is_reported() {
    let events = [
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
    ];
    let (body, ends) = body_with(stream::iter(chunks(&events)));
    let meter = UsageMeter::new(Provider::OpenAi, Some("text/event-stream"));
    let mut body = body.with_observer(Box::new(meter));
    let _ = frames(&mut body).await;
    let ends = ends.lock().unwrap();
    assert_eq!(ends[0].usage, Some(serde_json::json!({"input_tokens": 5, "output_tokens": 2})));
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
