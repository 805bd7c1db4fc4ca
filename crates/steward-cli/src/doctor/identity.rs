//! `steward doctor --identity DIR`: the workload side. The identity files, the key (loads, belongs
//! to the certificate), the certificate's validity, then the broker: reachable over mTLS with this
//! identity, clock skew from its `date` header, whether it requires DPoP, and whether the
//! workload's manifest verifies.

use std::path::Path;

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use steward_client::{BrokerClient, ClientError, Identity};

use super::{Report, check_expiry, check_skew, private_file, read_cert};
use crate::workload::resolve_broker_url;

pub(super) async fn check(dir: &Path, broker_url: Option<&str>, report: &mut Report) {
    let shown = dir.display();
    let enroll_again = "ask an operator for a new enrollment token (steward admin workloads \
                        enrollment-token W) and run steward enroll --token stw_enr_… --out NEW_DIR";
    if !dir.is_dir() {
        report.fail(
            "identity directory",
            format!("no directory at {shown}"),
            format!("steward enroll --token stw_enr_… --out {shown} creates it"),
        );
        return;
    }
    report.ok("identity directory", shown.to_string());

    let key_path = dir.join("workload.key");
    let cert_path = dir.join("workload.crt");
    let ca_path = dir.join("ca.crt");
    let mut complete = true;
    if !private_file(report, "workload.key", &key_path, "the workload's private key") {
        report.fail("workload.key", format!("{} is missing", key_path.display()), enroll_again);
        complete = false;
    }
    let cert = match read_cert(&cert_path) {
        Ok(cert) => Some(cert),
        Err(error) => {
            let detail =
                if cert_path.exists() { error } else { format!("{} is missing", cert_path.display()) };
            report.fail("workload.crt", detail, enroll_again);
            complete = false;
            None
        }
    };
    if let Err(error) = read_cert(&ca_path) {
        let detail = if ca_path.exists() { error } else { format!("{} is missing", ca_path.display()) };
        report.fail(
            "ca.crt",
            detail,
            format!(
                "copy the deployment's CA certificate (steward-data/ca.crt on the server) to {}",
                ca_path.display()
            ),
        );
        complete = false;
    } else {
        report.ok("ca.crt", format!("{} present", ca_path.display()));
    }
    let broker = resolve_broker_url(broker_url, dir);
    if broker.source.starts_with("the default") {
        report.warn(
            "broker_url",
            format!("no {} file; using {}", dir.join(steward_client::BROKER_URL_FILE).display(), broker.url),
            format!(
                "write Steward's public_base_url there: echo https://steward.example:8081 > {} \
                 (steward enroll does this)",
                dir.join(steward_client::BROKER_URL_FILE).display()
            ),
        );
    } else {
        report.ok("broker_url", format!("{} (from {})", broker.url, broker.source));
    }
    if !complete {
        return;
    }

    let Some(cert) = cert else { return };
    if !check_key(&key_path, &cert, report, enroll_again) {
        return;
    }
    check_expiry(report, "certificate", &cert, 1.0 / 3.0, enroll_again);
    match cert.uris.iter().find(|u| u.contains("/workloads/")) {
        Some(uri) => report.ok("workload", uri),
        None => report.fail("workload", "the certificate has no workload URI SAN", enroll_again),
    }

    let identity = match Identity::load(dir) {
        Ok(identity) => identity,
        Err(error) => return report.fail("identity files", error, enroll_again),
    };
    check_broker(&identity, &broker, report).await;
}

/// The key parses as PEM and is the certificate's key.
fn check_key(key_path: &Path, cert: &super::CertValidity, report: &mut Report, enroll_again: &str) -> bool {
    let pem = match std::fs::read(key_path) {
        Ok(pem) => pem,
        Err(error) => {
            report.fail(
                "key",
                format!("cannot read {}: {error}", key_path.display()),
                "check its owner and mode",
            );
            return false;
        }
    };
    let key = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => key,
        Err(error) => {
            report.fail("key", format!("workload.key is not a PEM private key: {error}"), enroll_again);
            return false;
        }
    };
    let format = match &key {
        PrivateKeyDer::Pkcs8(_) => "PKCS#8",
        PrivateKeyDer::Sec1(_) => "SEC1",
        PrivateKeyDer::Pkcs1(_) => "PKCS#1",
        _ => "PEM",
    };
    let signer = match rustls::crypto::aws_lc_rs::sign::any_supported_type(&key) {
        Ok(signer) => signer,
        Err(error) => {
            report.fail(
                "key",
                format!("workload.key: a {format} key that TLS cannot use: {error}"),
                enroll_again,
            );
            return false;
        }
    };
    match signer.public_key() {
        Some(spki) if spki.as_ref() != cert.spki.as_slice() => {
            report.fail(
                "key",
                "workload.key does not belong to workload.crt (another key's certificate)",
                enroll_again,
            );
            false
        }
        _ => {
            report.ok(
                "key",
                format!("workload.key loads ({}, {format} PEM) and matches workload.crt", cert.key_type),
            );
            true
        }
    }
}

async fn check_broker(identity: &Identity, broker: &crate::workload::BrokerUrl, report: &mut Report) {
    let url = &broker.url;
    let client = match BrokerClient::new(url, identity, None) {
        Ok(client) => client,
        Err(error) => return report.fail("broker", error, "check the identity files above"),
    };
    let url_fix = format!(
        "is steward serve running, and is {url} its public_base_url? (--broker-url, STEWARD_BROKER_URL or {})",
        identity.dir.join(steward_client::BROKER_URL_FILE).display()
    );
    match client.probe_health().await {
        Ok(probe) if probe.status == 200 => {
            report.ok("broker", format!("{url}/healthz answers 200 over mTLS with this identity"));
            check_skew(report, probe.date.as_deref(), "the broker");
        }
        Ok(probe) => {
            return report.fail("broker", format!("{url}/healthz answers {}", probe.status), url_fix);
        }
        Err(error) => {
            let text = error.to_string();
            let fix = if text.contains("UnknownIssuer") || text.contains("certificate") {
                "ca.crt is not the CA of this broker's deployment: copy steward-data/ca.crt from the server"
                    .to_owned()
            } else {
                url_fix
            };
            return report.fail("broker", format!("{url}: {text}"), fix);
        }
    }

    // A session tells whether the identity is accepted, and whether DPoP is required.
    let mut client = client;
    let mut dpop = false;
    if let Err(error) = client.session().await {
        if error.code() == Some("dpop_missing") {
            report.ok("dpop", "required for this workload: pass --dpop to steward call and steward manifest");
            dpop = true;
            let key = match steward_crypto::DpopKey::generate_es256() {
                Ok(key) => key,
                Err(error) => return report.fail("dpop", error, "report this as a bug"),
            };
            client = match BrokerClient::new(url, identity, Some(key)) {
                Ok(client) => client,
                Err(error) => return report.fail("broker", error, "check the identity files above"),
            };
            if let Err(error) = client.session().await {
                return session_failure(report, &error, url);
            }
        } else {
            return session_failure(report, &error, url);
        }
    }
    report.ok("session", "issued: the broker accepts this identity");

    let workload_id = match identity.workload_id() {
        Ok(id) => id,
        Err(error) => return report.fail("manifest", error, "enroll again"),
    };
    match client.manifest(&workload_id).await {
        Ok(manifest) => {
            if !dpop {
                if manifest.dpop_required {
                    report.ok("dpop", "required by the manifest: pass --dpop to steward call");
                } else {
                    report.ok("dpop", "not required (steward call works without --dpop)");
                }
            }
            let providers: Vec<&str> = manifest.match_rules.iter().map(|r| r.provider.as_str()).collect();
            report.ok(
                "manifest",
                format!(
                    "verified against the keyset: {} rule(s) ({}), expires {}",
                    manifest.match_rules.len(),
                    providers.join(", "),
                    manifest.expires_at
                ),
            );
            let execute = manifest.broker_execute_url.trim_end_matches("/v1/execute");
            if execute.trim_end_matches('/') != url.trim_end_matches('/') {
                report.warn(
                    "broker_url",
                    format!("the broker's public_base_url is {execute}, this identity uses {url}"),
                    format!(
                        "unless a proxy maps one to the other, use {execute}: echo {execute} > {}",
                        identity.dir.join(steward_client::BROKER_URL_FILE).display()
                    ),
                );
            }
        }
        Err(error) if error.code() == Some("manifest_no_rules") => report.warn(
            "manifest",
            "the tenant has no enabled integration yet, so there is nothing to route",
            "an operator creates one: steward admin integrations create --tenant T …",
        ),
        Err(error) => report.fail("manifest", error, "see the message; steward manifest shows the same"),
    }
}

fn session_failure(report: &mut Report, error: &ClientError, url: &str) {
    let fix = match error.code() {
        Some("certificate_revoked") | Some("mtls_required") => {
            "enroll again: steward admin workloads enrollment-token W, then steward enroll --token … --out NEW_DIR"
                .to_owned()
        }
        Some("workload_disabled") => "an operator enables it: steward admin workloads update W --enabled true".into(),
        Some("workload_ip_denied") => {
            "the workload's ip_allowlist does not cover this machine: steward admin workloads update W --ip CIDR"
                .into()
        }
        Some("dpop_htu_mismatch") => format!(
            "{url} is not the broker's public_base_url: use that URL (--broker-url or the broker_url file)"
        ),
        Some("session_rate_limited") | Some("rate_limited") => "wait a minute and run doctor again".into(),
        _ => match error {
            ClientError::Transport(_) => format!("is steward serve running at {url}?"),
            _ => "see the message (docs/errors.md lists every code)".into(),
        },
    };
    let detail = match error {
        ClientError::Transport(text) => text.clone(),
        other => other.to_string(),
    };
    report.fail("session", detail, fix);
}
