//! The backends under test, fixtures and helpers shared by every conformance test.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use steward_store::audit::{AuditWriter, CheckpointSigner};
use steward_store::{
    AdminRole, AdminTokenRecord, EnvelopeRecord, NewDeployment, PostgresStore, SigningKeyRecord, SqliteStore,
    SqliteSynchronous, Store, StoreError,
};
use steward_testkit::TestDatabase;
use steward_types::{ManualClock, SigningKeyId, TenantId, Timestamp, TokenId};
use zeroize::Zeroizing;

/// Instantiates every listed test once per backend: `backend_suite!(a, b)` for test functions of the
/// invoking module, `backend_suite!(module::a, …)` for functions in top-level modules of the binary. Each takes a [`Harness`].
macro_rules! backend_suite {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    crate::$module::$name(crate::harness::Harness::sqlite().await?).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    crate::$module::$name(crate::harness::Harness::postgres().await?).await
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(crate::harness::Harness::sqlite().await?).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(crate::harness::Harness::postgres().await?).await
                }
            )*
        }
    };
}
pub const AUDIT_KEY: [u8; 32] = [7; 32];

/// One backend with a fresh, empty, migrated store. Dropping it removes the database.
pub enum Harness {
    Sqlite { store: Arc<SqliteStore>, _dir: tempfile::TempDir },
    Postgres { store: Arc<PostgresStore>, _db: TestDatabase },
}

impl Harness {
    pub async fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(&dir.path().join("steward.db"), SqliteSynchronous::Normal).await?;
        Ok(Harness::Sqlite { store: Arc::new(store), _dir: dir })
    }

    pub async fn postgres() -> anyhow::Result<Self> {
        let db = TestDatabase::create().await?;
        let store = PostgresStore::connect(&db.url).await?;
        Ok(Harness::Postgres { store: Arc::new(store), _db: db })
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Harness::Sqlite { store, .. } => store.clone(),
            Harness::Postgres { store, .. } => store.clone(),
        }
    }

    /// Raw SQL as any client of the database could send it (triggers active).
    pub async fn raw(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Harness::Sqlite { store, .. } => store.raw_sql_unchecked(sql).await,
            Harness::Postgres { store, .. } => store.raw_sql_unchecked(sql).await,
        }
    }

    /// Raw SQL by an attacker who controls the database and switched the append-only triggers off.
    pub async fn tamper(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            Harness::Sqlite { store, .. } => {
                store
                    .raw_sql_unchecked(&format!(
                        "DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete; {sql}"
                    ))
                    .await?
            }
            Harness::Postgres { store, .. } => {
                store
                    .raw_sql_unchecked(&format!("BEGIN; SET LOCAL session_replication_role = replica; {sql}; COMMIT;"))
                    .await?
            }
        }
        Ok(())
    }
}

pub fn at(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros).expect("test timestamps are in range")
}

/// A time with a non-zero microsecond part, so lost precision would show.
pub fn t0() -> Timestamp {
    at(1_795_000_000_123_457)
}

pub fn envelope(id: &str, kek_id: &str) -> EnvelopeRecord {
    EnvelopeRecord {
        envelope_id: id.to_owned(),
        kek_id: kek_id.to_owned(),
        aad: format!(r#"{{"id":"{id}","kind":"test"}}"#),
        body: format!(r#"{{"v":1,"kek_id":"{kek_id}","ciphertext":"{id}"}}"#),
    }
}

pub fn admin_token(hash_byte: u8, role: AdminRole) -> AdminTokenRecord {
    AdminTokenRecord {
        token_id: TokenId::generate(),
        name: format!("token-{hash_byte}"),
        role,
        tenant_ids: if role == AdminRole::Owner {
            vec![]
        } else {
            vec![TenantId::parse("t_one").expect("a valid id"), TenantId::parse("t_two").expect("a valid id")]
        },
        token_hash: [hash_byte; 32],
        created_at: t0(),
        expires_at: Some(t0().plus_seconds(3600)),
        revoked_at: None,
    }
}

/// A deployment whose every id carries `tag`, so two attempts are distinguishable.
pub fn new_deployment(tag: &str) -> NewDeployment {
    NewDeployment {
        ca_cert_pem: format!("-----BEGIN CERTIFICATE-----\n{tag}\n-----END CERTIFICATE-----\n"),
        ca_key: envelope(&format!("env_{tag}_ca"), "k1"),
        audit_key: envelope(&format!("env_{tag}_audit"), "k1"),
        signing_key: SigningKeyRecord {
            kid: SigningKeyId::generate(),
            public_key: vec![tag.len() as u8; 32],
            private_key: envelope(&format!("env_{tag}_mk"), "k1"),
            created_at: t0(),
            retired_at: None,
        },
        owner_token: AdminTokenRecord { token_hash: hash_for(tag), ..admin_token(0, AdminRole::Owner) },
        created_at: t0(),
    }
}

pub fn hash_for(tag: &str) -> [u8; 32] {
    steward_crypto::sha256(tag.as_bytes())
}

/// Signs checkpoints with a fresh Ed25519 key, as the server does with the manifest key.
#[derive(Debug)]
pub struct TestSigner {
    key: Ed25519KeyPair,
}

impl TestSigner {
    pub fn new() -> Arc<Self> {
        Arc::new(TestSigner { key: Ed25519KeyPair::generate().expect("Ed25519 key generation") })
    }

    pub fn verify(&self, jws: &str) -> anyhow::Result<Vec<u8>> {
        let mut parts = jws.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            anyhow::bail!("not a compact JWS");
        };
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ED25519,
            self.key.public_key().as_ref().to_vec(),
        );
        public
            .verify(format!("{header}.{payload}").as_bytes(), &URL_SAFE_NO_PAD.decode(signature)?)
            .map_err(|_| anyhow::anyhow!("bad signature"))?;
        Ok(URL_SAFE_NO_PAD.decode(payload)?)
    }
}

impl CheckpointSigner for TestSigner {
    fn sign(&self, payload: &[u8]) -> Result<(String, String), String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","kid":"mk_test"}"#);
        let body = URL_SAFE_NO_PAD.encode(payload);
        let signature = self.key.sign(format!("{header}.{body}").as_bytes());
        Ok(("mk_test".to_owned(), format!("{header}.{body}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))))
    }
}

pub fn writer(store: Arc<dyn Store>, signer: Arc<TestSigner>, checkpoint_every: Duration) -> AuditWriter {
    AuditWriter::start(
        store,
        Zeroizing::new(AUDIT_KEY),
        format!("wr_{}", TokenId::generate().as_str().trim_start_matches("tok_")),
        Arc::new(ManualClock::new(t0())),
        signer,
        checkpoint_every,
    )
}
