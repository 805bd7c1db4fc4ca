use super::*;

#[test]
fn sha256_known_answers() {
    // FIPS 180-2 examples.
    assert_eq!(
        hex::encode(sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(hex::encode(sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

#[test]
fn hmac_known_answers() {
    // RFC 4231 test case 1 (20-byte key) and test case 2 (short key).
    assert_eq!(
        hex::encode(hmac_sha256(&[0x0b; 20], b"Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn precomputed_key_and_incremental_context_agree_with_one_shot() {
    let key = HmacKey::new(b"Jefe");
    let message = b"what do ya want for nothing?";
    assert_eq!(key.sign(message), hmac_sha256(b"Jefe", message));
    let mut context = key.context();
    context.update(b"what do ya ");
    context.update(b"");
    context.update(b"want for nothing?");
    assert_eq!(context.finish(), key.sign(message));
}

#[test]
fn verify_compares_the_whole_tag() {
    let key = HmacKey::new(&[7; 32]);
    let tag = key.sign(b"body");
    assert!(key.verify(b"body", &tag));
    assert!(!key.verify(b"body!", &tag));
    let mut flipped = tag;
    flipped[31] ^= 1;
    assert!(!key.verify(b"body", &flipped));
    assert!(!key.verify(b"body", &tag[..31]));
    assert!(!key.verify(b"body", &[]));
}

#[test]
fn debug_shows_no_key() {
    assert_eq!(format!("{:?}", HmacKey::new(b"secret key")), "HmacKey([REDACTED])");
}
