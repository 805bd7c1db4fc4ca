//! Opaque, prefixed identifiers. Each kind is its own type so a workload id can never be passed where
//! a tenant id is expected, and each parses strictly: the prefix, then 1–64 characters of
//! `[a-z0-9_-]`. New ids are the prefix plus a UUIDv7 in lowercase hex, so they sort by creation time.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must look like {prefix}<1-64 of a-z, 0-9, _ or ->, got {value:?}")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

fn valid_suffix(suffix: &str) -> bool {
    (1..=64).contains(&suffix.len())
        && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id: the prefix and a UUIDv7 in hex.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn parse(value: &str) -> Result<Self, IdError> {
                match value.strip_prefix($prefix) {
                    Some(suffix) if valid_suffix(suffix) => Ok(Self(value.to_owned())),
                    _ => Err(IdError { kind: $kind, prefix: $prefix, value: value.to_owned() }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(&value).map_err(serde::de::Error::custom)
            }
        }

        sqlx_text_id!($name);
    };
}

/// With the `sqlx` feature, an id is a text column for every sqlx backend whose `String` is (SQLite
/// and PostgreSQL): it binds as its text and decodes only if the text parses, so a stored value that
/// is not such an id is a decode error (never a panic, never an unchecked id).
#[cfg(feature = "sqlx")]
macro_rules! sqlx_text_id {
    ($name:ident) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode(
                self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode(self.0, buf)
            }

            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode_by_ref(&self.0, buf)
            }

            fn size_hint(&self) -> usize {
                <String as sqlx::Encode<'q, DB>>::size_hint(&self.0)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(Self::parse(text)?)
            }
        }
    };
}

#[cfg(not(feature = "sqlx"))]
macro_rules! sqlx_text_id {
    ($name:ident) => {};
}

prefixed_id!(/// A tenant.
    TenantId, "t_", "tenant id");
prefixed_id!(/// A workload (agent) of a tenant.
    WorkloadId, "w_", "workload id");
prefixed_id!(/// An integration: a tenant's connection to one provider.
    IntegrationId, "i_", "integration id");
prefixed_id!(/// A policy rule.
    PolicyId, "pol_", "policy id");
prefixed_id!(/// An approval.
    ApprovalId, "apr_", "approval id");
prefixed_id!(/// An audit event.
    EventId, "evt_", "event id");
prefixed_id!(/// A data-plane session.
    SessionId, "sess_", "session id");
prefixed_id!(/// An admin token.
    TokenId, "tok_", "token id");
prefixed_id!(/// A one-time enrollment token of a workload (its row, not the `stw_enr_` secret).
    EnrollmentTokenId, "enr_", "enrollment token id");
prefixed_id!(/// A manifest signing key (`kid`).
    SigningKeyId, "mk_", "manifest signing key id");
prefixed_id!(/// An audit checkpoint.
    CheckpointId, "ckpt_", "checkpoint id");

/// The server-generated id of one HTTP request (a UUIDv7), never chosen by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(uuid::Uuid);

impl RequestId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_carry_their_prefix() {
        let id = TenantId::generate();
        assert!(id.as_str().starts_with("t_"));
        assert_eq!(TenantId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn wrong_prefix_or_characters_are_refused() {
        assert!(TenantId::parse("w_abc").is_err());
        assert!(TenantId::parse("t_").is_err());
        assert!(TenantId::parse("t_ABC").is_err());
        assert!(TenantId::parse("t_a/b").is_err());
        assert!(WorkloadId::parse(&format!("w_{}", "a".repeat(65))).is_err());
    }

    #[test]
    fn serde_checks_the_prefix() {
        let err = serde_json::from_str::<WorkloadId>("\"t_x\"").unwrap_err();
        assert!(err.to_string().contains("workload id"));
    }
}
