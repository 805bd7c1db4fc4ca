//! Private PostgreSQL clusters and Redis servers that a test may stop and start again without
//! disturbing any other test: each on its own free loopback port, each torn down on drop.
//!
//! [`PrivateRedis`] is a `redis-server` child without persistence. [`PrivatePostgres`] is a cluster
//! made with `initdb` in a temporary directory (the installed server's `bin` dir, found under
//! `/usr/lib/postgresql/*/bin` or on `PATH`), trust authentication, durability turned off for speed,
//! run as the `postgres` user when the tests run as root (PostgreSQL refuses to run as root).

// Test support: probes whether a private server on loopback is up; no upstream traffic.
// (`clippy.toml` bans `TcpStream::connect` outside steward-egress.)
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::free_port;

/// How long a server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `redis-server` of one test, on `127.0.0.1:<port>`, killed on drop.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` (no RDB, no AOF) on a free port and waits until it answers `PING`.
    pub async fn start() -> Result<Self> {
        let mut redis = Self { port: free_port()?, child: None };
        redis.start_again().await?;
        Ok(redis)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its in-memory data is lost, as in a real crash of a cache without
    /// persistence) and waits until the port no longer answers.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty) and waits until it answers `PING`.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let port = self.port.to_string();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut child = Command::new("redis-server")
                .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--protected-mode", "no", "--loglevel", "warning"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawn redis-server (is it installed?)")?;
            loop {
                if redis_answers(self.port).await {
                    self.child = Some(child);
                    return Ok(());
                }
                if let Ok(Some(_)) = child.try_wait() {
                    // Most likely the port was still held a moment after a stop: try again.
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("redis-server on port {port} did not answer within {START_TIMEOUT:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if Instant::now() > deadline {
                bail!("redis-server on port {port} kept exiting at start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn redis_answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream =
            tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"+PONG\r\n")
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Some(true)))
}

/// A PostgreSQL cluster of one test, in a temporary directory, on `127.0.0.1:<port>`; stopped with
/// `pg_ctl stop -m immediate` and removed on drop.
#[derive(Debug)]
pub struct PrivatePostgres {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    /// Holds the cluster's directory (removed on drop, after the server stopped).
    dir: tempfile::TempDir,
    running: bool,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// `initdb` (trust auth, no fsync) in a fresh temporary directory, then starts the cluster on a
    /// free port and waits until it accepts connections.
    pub async fn start() -> Result<Self> {
        let bin = postgres_bin_dir()?;
        let as_postgres = running_as_root();
        let dir = tempfile::Builder::new().prefix("steward-pg-").tempdir()?;
        if as_postgres {
            chown_to_postgres(dir.path())?;
        }
        let data = dir.path().join("data");
        let mut cluster = Self { port: free_port()?, bin, data, dir, running: false, as_postgres };
        let output = cluster
            .command("initdb")
            .arg("-D")
            .arg(&cluster.data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"])
            .stdin(Stdio::null())
            .output()
            .context("run initdb")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        cluster.start_again().await?;
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Another database of this cluster (create it first with [`PrivatePostgres::create_database`]).
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String> {
        use sqlx::Connection;
        let mut conn = sqlx::postgres::PgConnection::connect(&self.url()).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await?;
        conn.close().await.ok();
        Ok(self.url_for(name))
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`, as a crash would) and waits for it.
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "20", "stop"])
            .stdin(Stdio::null())
            .output()
            .context("run pg_ctl stop")?;
        if !output.status.success() {
            bail!("pg_ctl stop failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        self.running = false;
        Ok(())
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.running {
            return Ok(());
        }
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(options)
            .args(["-w", "-t", "20", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("run pg_ctl start")?;
        if !output.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("pg_ctl start failed: {}\n{log}", String::from_utf8_lossy(&output.stderr));
        }
        self.running = true;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            use sqlx::Connection;
            match sqlx::postgres::PgConnection::connect(&self.url()).await {
                Ok(conn) => {
                    conn.close().await.ok();
                    return Ok(());
                }
                Err(error) if Instant::now() > deadline => {
                    bail!("PostgreSQL on port {} does not accept connections: {error}", self.port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The newest installed server's `bin` directory (`/usr/lib/postgresql/<version>/bin`), else the
/// directory of `initdb` on `PATH`.
fn postgres_bin_dir() -> Result<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.split('.').next()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
        .context("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on PATH")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chown_to_postgres(path: &Path) -> Result<()> {
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .context("chown the cluster directory to postgres")?;
    if !status.success() {
        bail!("chown postgres {} failed (is there a postgres user?)", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn redis_stops_and_starts_again_on_the_same_port() {
        let started = Instant::now();
        let mut redis = PrivateRedis::start().await.unwrap();
        assert!(redis_answers(redis.port()).await);
        redis.stop();
        assert!(!redis_answers(redis.port()).await);
        redis.start_again().await.unwrap();
        assert!(redis_answers(redis.port()).await);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn postgres_stops_and_starts_again_on_the_same_port() {
        use sqlx::Connection;
        let started = Instant::now();
        let mut pg = PrivatePostgres::start().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "start took {:?}", started.elapsed());
        let url = pg.create_database("kept").await.unwrap();
        let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x int)").execute(&mut conn).await.unwrap();
        conn.close().await.ok();
        pg.stop().unwrap();
        assert!(sqlx::postgres::PgConnection::connect(&url).await.is_err());
        pg.start_again().await.unwrap();
        let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT x FROM t").execute(&mut conn).await.unwrap();
        conn.close().await.ok();
        let dir = pg.dir.path().to_path_buf();
        drop(pg);
        assert!(!dir.exists());
    }
}
