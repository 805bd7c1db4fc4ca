use proptest::prelude::*;

use super::*;

const SSE: Option<&str> = Some("text/event-stream");
const JSON: Option<&str> = Some("application/json");

fn usage(input: Option<u64>, output: Option<u64>) -> Option<Usage> {
    Some(Usage { input_tokens: input, output_tokens: output })
}

/// Feeds `body` split at `cuts` and returns what the meter found.
fn meter(provider: Provider, media: Option<&str>, body: &[u8], cuts: &[usize]) -> Option<Usage> {
    let mut m = UsageMeter::new(provider, media);
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        let cut = cut.clamp(from, body.len());
        m.push(&body[from..cut]);
        from = cut;
    }
    m.finish()
}

const OPENAI_CHAT_SSE: &str = "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}\n\n\
data: [DONE]\n\n";

const OPENAI_RESPONSES_SSE: &str = "event: response.created\r\n\
data: {\"type\":\"response.created\",\"response\":{\"id\":\"r1\",\"usage\":null}}\r\n\r\n\
event: response.output_text.delta\r\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\r\n\r\n\
event: response.completed\r\n\
data: {\"type\":\"response.completed\",\"response\":{\"id\":\"r1\",\"usage\":{\"input_tokens\":7,\"output_tokens\":3,\"total_tokens\":10}}}\r\n\r\n";

const ANTHROPIC_SSE: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

#[test]
fn openai_chat_completions() {
    let body =
        br#"{"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}"#;
    assert_eq!(meter(Provider::OpenAi, JSON, body, &[]), usage(Some(5), Some(9)));
    assert_eq!(meter(Provider::OpenAi, SSE, OPENAI_CHAT_SSE.as_bytes(), &[]), usage(Some(12), Some(34)));
}

#[test]
fn openai_responses_api() {
    let body = br#"{"id":"r1","output":[],"usage":{"input_tokens":3,"output_tokens":4}}"#;
    assert_eq!(meter(Provider::OpenAi, JSON, body, &[]), usage(Some(3), Some(4)));
    assert_eq!(meter(Provider::OpenAi, SSE, OPENAI_RESPONSES_SSE.as_bytes(), &[]), usage(Some(7), Some(3)));
}

#[test]
fn anthropic_messages() {
    let body = br#"{"type":"message","id":"m1","content":[],"usage":{"input_tokens":10,"output_tokens":20}}"#;
    assert_eq!(meter(Provider::Anthropic, JSON, body, &[]), usage(Some(10), Some(20)));
    assert_eq!(meter(Provider::Anthropic, SSE, ANTHROPIC_SSE.as_bytes(), &[]), usage(Some(25), Some(15)));
}

#[test]
fn no_usage_no_result() {
    assert_eq!(meter(Provider::OpenAi, JSON, b"{\"data\":[]}", &[]), None);
    assert_eq!(meter(Provider::OpenAi, JSON, b"not json", &[]), None);
    assert_eq!(meter(Provider::Anthropic, SSE, b"data: {\"type\":\"ping\"}\n\n", &[]), None);
    assert_eq!(meter(Provider::OpenAi, SSE, b"data: [DONE]\n\n", &[]), None);
}

#[test]
fn the_stream_flag_follows_the_media_type() {
    assert!(UsageMeter::new(Provider::OpenAi, SSE).is_stream());
    assert!(UsageMeter::new(Provider::OpenAi, Some("application/x-ndjson")).is_stream());
    assert!(!UsageMeter::new(Provider::OpenAi, JSON).is_stream());
    assert!(!UsageMeter::new(Provider::OpenAi, None).is_stream());
}

#[test]
fn events_past_the_cap_are_skipped_and_memory_stays_bounded() {
    let mut m = UsageMeter::with_cap(Provider::OpenAi, SSE, 256);
    // An event far larger than the cap, fed in pieces, carrying usage that must be ignored.
    m.push(b"data: {\"usage\":{\"prompt_tokens\":999,\"completion_tokens\":999},\"pad\":\"");
    for _ in 0..100 {
        m.push(&[b'x'; 100]);
        assert!(m.line.capacity() <= 1024 && m.event.capacity() <= 1024);
    }
    m.push(b"\"}\n\n");
    assert_eq!(m.usage(), None);
    // Many data lines, each short, whose sum passes the cap: skipped too.
    for _ in 0..40 {
        m.push(b"data: {\"usage\":{\"prompt_tokens\":1}}\n");
    }
    m.push(b"\n");
    assert_eq!(m.usage(), None);
    // The next event is read again.
    m.push(b"data: {\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\n");
    assert_eq!(m.finish(), usage(Some(2), Some(3)));
    // A JSON body past the cap is not metered.
    let mut big = br#"{"usage":{"prompt_tokens":1,"completion_tokens":1},"pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 300));
    big.extend_from_slice(b"\"}");
    let mut m = UsageMeter::with_cap(Provider::OpenAi, JSON, 256);
    m.push(&big);
    assert_eq!(m.finish(), None);
}

#[test]
fn a_last_event_without_its_blank_line_counts() {
    let body = b"data: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}";
    assert_eq!(meter(Provider::OpenAi, SSE, body, &[]), usage(Some(4), Some(2)));
}

#[test]
fn ndjson_lines() {
    let body = b"{\"x\":1}\n{\"usage\":{\"input_tokens\":8,\"output_tokens\":1}}\n";
    assert_eq!(
        meter(Provider::OpenAi, Some("application/x-ndjson"), body, &[3, 10]),
        usage(Some(8), Some(1))
    );
}

proptest! {
    #[test]
    fn events_split_anywhere(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30)) {
        for (provider, body, expected) in [
            (Provider::OpenAi, OPENAI_CHAT_SSE, usage(Some(12), Some(34))),
            (Provider::OpenAi, OPENAI_RESPONSES_SSE, usage(Some(7), Some(3))),
            (Provider::Anthropic, ANTHROPIC_SSE, usage(Some(25), Some(15))),
        ] {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(meter(provider, SSE, body.as_bytes(), &cuts), expected);
        }
    }
}
