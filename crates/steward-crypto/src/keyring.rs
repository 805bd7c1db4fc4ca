//! The KEK keyring: the one root secret, `{"active":"k1","keys":{"k1":"<base64 of 32 bytes>",…}}`.
//!
//! It comes from `STEWARD_KEK_KEYRING` (whose value the caller passes in; it wins) or from the keyring
//! file. Keys are held in `Zeroizing` buffers; neither `Debug` nor any error message ever contains key
//! material, because keyring errors end up in start-up logs.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use crate::tokens::random_bytes;

/// Length of every KEK in bytes (AES-256).
pub const KEK_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// Only the position, never serde's message: serde quotes offending values, which could be keys.
    #[error(
        "the keyring is not JSON of the form {{\"active\": ID, \"keys\": {{ID: BASE64, …}}}} (line {line}, column {column})"
    )]
    Json { line: usize, column: usize },
    #[error("keyring key id {0:?} is invalid: ids are 1-64 characters of A-Z, a-z, 0-9, _ or -")]
    InvalidKeyId(String),
    #[error("keyring key {0:?} is not standard base64")]
    KeyNotBase64(String),
    #[error("keyring key {id:?} is {len} bytes long, expected 32")]
    KeyLength { id: String, len: usize },
    #[error("the keyring's active key {0:?} is not among its keys")]
    ActiveMissing(String),
    #[error("key {0:?} is not in the keyring")]
    UnknownKey(String),
    #[error("STEWARD_KEK_KEYRING: {0}")]
    InEnv(Box<KeyringError>),
    #[error("keyring file {path}: {source}")]
    InFile { path: PathBuf, source: Box<KeyringError> },
    #[error("no keyring: {path} does not exist and STEWARD_KEK_KEYRING is not set")]
    Missing { path: PathBuf },
    #[error("reading the keyring file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} already exists; refusing to overwrite a keyring")]
    AlreadyExists { path: PathBuf },
    #[error("writing the keyring file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// A parsed keyring: at least one key, and an active key that exists.
#[derive(Clone)]
pub struct Keyring {
    active: String,
    keys: BTreeMap<String, Zeroizing<[u8; KEK_LEN]>>,
}

/// Where a keyring was loaded from, so the server can enforce the production rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringSource {
    Env,
    /// `mode` is the file's permission bits (`st_mode & 0o7777`) as read when it was loaded.
    File {
        path: PathBuf,
        mode: u32,
    },
}

#[derive(Debug, Clone)]
pub struct LoadedKeyring {
    pub keyring: Keyring,
    pub source: KeyringSource,
}

impl KeyringSource {
    /// A file that neither group nor others may read, write or execute (what production requires).
    /// False for [`KeyringSource::Env`], which is not a file.
    pub fn is_private_file(&self) -> bool {
        matches!(self, KeyringSource::File { mode, .. } if mode & 0o077 == 0)
    }
}

impl LoadedKeyring {
    /// The production rule: the KEK comes from the environment or from a file only its owner can read.
    pub fn meets_production_rule(&self) -> bool {
        matches!(self.source, KeyringSource::Env) || self.source.is_private_file()
    }
}

impl Keyring {
    /// A fresh keyring with one random key, `k1`, active.
    pub fn generate() -> Keyring {
        let mut keys = BTreeMap::new();
        keys.insert("k1".to_owned(), Zeroizing::new(random_bytes::<KEK_LEN>()));
        Keyring { active: "k1".to_owned(), keys }
    }

    pub fn parse_json(json: &str) -> Result<Keyring, KeyringError> {
        let raw: RawKeyring = serde_json::from_str(json)
            .map_err(|e| KeyringError::Json { line: e.line(), column: e.column() })?;
        let mut keys = BTreeMap::new();
        for (id, encoded) in &raw.keys {
            validate_key_id(id)?;
            let decoded = Zeroizing::new(
                STANDARD.decode(encoded.0.as_bytes()).map_err(|_| KeyringError::KeyNotBase64(id.clone()))?,
            );
            if decoded.len() != KEK_LEN {
                return Err(KeyringError::KeyLength { id: id.clone(), len: decoded.len() });
            }
            let mut key = Zeroizing::new([0u8; KEK_LEN]);
            key.copy_from_slice(&decoded);
            keys.insert(id.clone(), key);
        }
        if !keys.contains_key(&raw.active) {
            return Err(KeyringError::ActiveMissing(raw.active));
        }
        Ok(Keyring { active: raw.active, keys })
    }

    /// The keyring as pretty JSON (operators edit `active` by hand), in a buffer zeroized on drop.
    pub fn to_json(&self) -> Zeroizing<String> {
        // Sized up front so the buffer never reallocates and leaves copies of keys in freed memory.
        let capacity = 64 + self.active.len() + self.keys.keys().map(|id| id.len() + 64).sum::<usize>();
        let mut out = Zeroizing::new(String::with_capacity(capacity));
        // Ids are validated to `[A-Za-z0-9_-]`, so they need no JSON escaping.
        out.push_str("{\n  \"active\": \"");
        out.push_str(&self.active);
        out.push_str("\",\n  \"keys\": {");
        for (i, (id, key)) in self.keys.iter().enumerate() {
            out.push_str(if i == 0 { "\n    \"" } else { ",\n    \"" });
            out.push_str(id);
            out.push_str("\": \"");
            STANDARD.encode_string(key.as_slice(), &mut out);
            out.push('"');
        }
        out.push_str("\n  }\n}\n");
        out
    }

    /// Adds a random, inactive key and returns its id: `k<N>` with N one more than the highest N in
    /// use. Never the lowest free N: reusing the id of a removed key would turn an old envelope's
    /// clear `UnknownKek` into a puzzling decryption failure.
    pub fn add_generated_key(&mut self) -> String {
        let highest = self
            .keys
            .keys()
            .filter_map(|id| id.strip_prefix('k').and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        let mut n = highest.saturating_add(1);
        // Only reachable if someone hand-wrote an id like k18446744073709551615.
        while self.keys.contains_key(&format!("k{n}")) {
            n = n.wrapping_add(1);
        }
        let id = format!("k{n}");
        self.keys.insert(id.clone(), Zeroizing::new(random_bytes::<KEK_LEN>()));
        id
    }

    pub fn set_active(&mut self, id: &str) -> Result<(), KeyringError> {
        if !self.keys.contains_key(id) {
            return Err(KeyringError::UnknownKey(id.to_owned()));
        }
        id.clone_into(&mut self.active);
        Ok(())
    }

    pub fn active_id(&self) -> &str {
        &self.active
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub(crate) fn key(&self, id: &str) -> Option<&[u8; KEK_LEN]> {
        self.keys.get(id).map(|k| &**k)
    }

    pub(crate) fn active_key(&self) -> (&str, &[u8; KEK_LEN]) {
        // `parse_json`, `generate` and `set_active` all guarantee the active key exists, and keys
        // are never removed from a Keyring value.
        let key = self.keys.get(&self.active).expect("a Keyring's active key is always among its keys");
        (&self.active, key)
    }

    /// Loads the keyring: `env_value` (the content of `STEWARD_KEK_KEYRING`, if set) wins over
    /// `file`. The file's mode is reported, not judged: the server applies the production rule.
    /// `Some("")` is an invalid keyring, not "unset": deciding that an empty variable means unset is
    /// the caller's call.
    pub fn load(env_value: Option<&str>, file: &Path) -> Result<LoadedKeyring, KeyringError> {
        if let Some(json) = env_value {
            let keyring = Keyring::parse_json(json).map_err(|e| KeyringError::InEnv(Box::new(e)))?;
            return Ok(LoadedKeyring { keyring, source: KeyringSource::Env });
        }
        let read_err = |source: io::Error| match source.kind() {
            io::ErrorKind::NotFound => KeyringError::Missing { path: file.to_path_buf() },
            _ => KeyringError::Read { path: file.to_path_buf(), source },
        };
        let mut handle = File::open(file).map_err(read_err)?;
        // Mode from the open handle, so the bits reported belong to the bytes read (no swap between
        // a stat and an open).
        let mode = handle.metadata().map_err(read_err)?.permissions().mode() & 0o7777;
        let mut content = Zeroizing::new(String::new());
        handle.read_to_string(&mut content).map_err(read_err)?;
        let keyring = Keyring::parse_json(&content)
            .map_err(|e| KeyringError::InFile { path: file.to_path_buf(), source: Box::new(e) })?;
        Ok(LoadedKeyring { keyring, source: KeyringSource::File { path: file.to_path_buf(), mode } })
    }

    /// Creates `path` holding this keyring, mode 0600, for `steward init`. Refuses to replace an
    /// existing file, since that would destroy the only copy of the keys protecting a store. The file
    /// is written under a temporary name and then hard-linked into place, so `path` never exists
    /// half-written; where the filesystem has no hard links it is created in place with `create_new`.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyringError> {
        let write_err = |source: io::Error| KeyringError::Write { path: path.to_path_buf(), source };
        if path.exists() {
            return Err(KeyringError::AlreadyExists { path: path.to_path_buf() });
        }
        let json = self.to_json();
        let tmp = write_temp_file(path, json.as_bytes()).map_err(write_err)?;
        let linked = std::fs::hard_link(&tmp, path);
        // The temporary name goes whatever happened; a failure to remove it only leaves a stray 0600 file.
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(KeyringError::AlreadyExists { path: path.to_path_buf() });
            }
            Err(_) => {
                let mut file = create_private(path).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => KeyringError::AlreadyExists { path: path.to_path_buf() },
                    _ => write_err(e),
                })?;
                file.write_all(json.as_bytes()).and_then(|()| file.sync_all()).map_err(write_err)?;
            }
        }
        sync_parent(path).map_err(write_err)
    }

    /// Replaces `path` with this keyring (for `steward keys generate-kek`): a 0600 temporary file in
    /// the same directory, renamed over the old one, so a reader sees the old or the new keyring,
    /// never a partial one.
    pub fn rewrite_file(&self, path: &Path) -> Result<(), KeyringError> {
        let write_err = |source: io::Error| KeyringError::Write { path: path.to_path_buf(), source };
        let json = self.to_json();
        let tmp = write_temp_file(path, json.as_bytes()).map_err(write_err)?;
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(write_err(e));
        }
        sync_parent(path).map_err(write_err)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("active", &self.active).field("key_ids", &self.keys.keys()).finish()
    }
}

/// A base64 key as read from JSON, wiped when dropped.
#[derive(Deserialize)]
#[serde(transparent)]
struct SecretText(String);

impl Drop for SecretText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyring {
    active: String,
    keys: BTreeMap<String, SecretText>,
}

fn validate_key_id(id: &str) -> Result<(), KeyringError> {
    let ok = (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(KeyringError::InvalidKeyId(id.to_owned())) }
}

fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

/// Writes `content` to a new 0600 file next to `path` and syncs it; returns the temporary path.
fn write_temp_file(path: &Path, content: &[u8]) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| io::Error::other("the keyring path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", hex::encode(random_bytes::<8>())));
    let tmp = path.with_file_name(tmp_name);
    let mut file = create_private(&tmp)?;
    if let Err(e) = file.write_all(content).and_then(|()| file.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Makes the new directory entry durable, so a crash right after `steward init` cannot lose the keyring.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests;
