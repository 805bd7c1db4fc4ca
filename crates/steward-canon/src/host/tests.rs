use super::normalize_host;

fn ok(input: &str) -> String {
    normalize_host(input).unwrap_or_else(|e| panic!("{input:?} rejected: {e}"))
}

#[test]
fn domains() {
    assert_eq!(ok("API.OpenAI.com"), "api.openai.com");
    assert_eq!(ok("api.openai.com."), "api.openai.com");
    assert_eq!(ok("bücher.example"), "xn--bcher-kva.example");
    assert_eq!(ok("BÜCHER.example"), "xn--bcher-kva.example");
    assert_eq!(ok("under_score.example"), "under_score.example");
    assert!(normalize_host("a..b").is_err());
    assert!(normalize_host("a.b..").is_err());
    assert!(normalize_host(".").is_err());
    assert!(normalize_host("").is_err());
    assert!(normalize_host("*.example.com").is_err());
    assert!(normalize_host("ex%61mple.com").is_err());
    assert!(normalize_host("a!b.com").is_err());
    assert!(normalize_host(&"a".repeat(64)).is_err());
}

#[test]
fn ipv4_only_dotted_decimal() {
    assert_eq!(ok("127.0.0.1"), "127.0.0.1");
    assert_eq!(ok("127.0.0.1."), "127.0.0.1");
    for bad in
        ["0x7f.1", "0177.0.0.1", "2130706433", "127.1", "0x7f000001", "256.0.0.1", "1.2.3.4.5", "a.123"]
    {
        assert!(normalize_host(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn ipv6_rfc5952() {
    assert_eq!(ok("[::ffff:127.0.0.1]"), "[::ffff:127.0.0.1]");
    assert_eq!(ok("[::FFFF:7F00:1]"), "[::ffff:127.0.0.1]");
    assert_eq!(ok("[2001:DB8:0:0:0:0:0:1]"), "[2001:db8::1]");
    assert_eq!(ok("[2001:0db8:0000:0000:0001:0000:0000:0001]"), "[2001:db8::1:0:0:1]");
    assert_eq!(ok("[1:2:3:4:5:6:7::]"), "[1:2:3:4:5:6:7:0]");
    assert_eq!(ok("[::]"), "[::]");
    assert!(normalize_host("[fe80::1%25eth0]").is_err());
    assert!(normalize_host("[v1.fe]").is_err());
    assert!(normalize_host("[::1").is_err());
    assert!(normalize_host("::1").is_err());
    assert!(normalize_host("[12345::]").is_err());
    assert!(normalize_host("[::01.2.3.4]").is_err());
}
