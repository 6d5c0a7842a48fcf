//! A throw-away PostgreSQL cluster for tests (features `testsuite` and `postgres`).
//!
//! [`PgCluster::start`] runs the distribution's `initdb` into a new directory under the
//! system temporary directory (as the `postgres` user when the tests run as root, since
//! PostgreSQL refuses to run as root), then `pg_ctl start` on a free loopback port with
//! its Unix socket in that directory and trust authentication bound to 127.0.0.1. The
//! cluster stops and its directory is removed when the value is dropped, and also when
//! the test process ends without dropping it (a shared cluster in a `static`, a panic, a
//! kill): a small watchdog shell waits on a pipe from the test process and cleans up when
//! the pipe closes.
//!
//! [`PgCluster::shared`] is one cluster per test binary; [`PgCluster::database`] makes a
//! fresh, migrated database in it for each test. Both answer `None` (the test skips) when
//! PostgreSQL is not installed, unless `PRIVCA_INTEROP=1`, where a missing PostgreSQL is
//! a failure (scripts/test.sh installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::{PgOptions, PgStore, PgTls, Store};

/// A running throw-away cluster.
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    next_db: AtomicU32,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb` (Debian's layout),
/// or `$PRIVCA_PG_BIN`.
pub fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PRIVCA_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn interop_required() -> bool {
    std::env::var("PRIVCA_INTEROP").is_ok_and(|v| v == "1")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgCluster {
    /// One cluster for the whole test binary, started on first use; `None` when
    /// PostgreSQL is not installed and `PRIVCA_INTEROP` is not 1 (then it panics).
    pub fn shared() -> Option<&'static PgCluster> {
        static SHARED: OnceLock<Option<PgCluster>> = OnceLock::new();
        SHARED
            .get_or_init(|| match find_bin() {
                Some(bin) => Some(PgCluster::start_with(&bin)),
                None if interop_required() => panic!(
                    "PRIVCA_INTEROP=1 but PostgreSQL is not installed (no \
                     /usr/lib/postgresql/<version>/bin/initdb; apt-get install postgresql)"
                ),
                None => {
                    eprintln!(
                        "PostgreSQL tests skipped: PostgreSQL is not installed (set \
                         PRIVCA_INTEROP=1, or run scripts/test.sh, to run them)"
                    );
                    None
                }
            })
            .as_ref()
    }

    /// Starts a cluster of its own (a test that stops and starts it).
    pub fn start() -> Option<PgCluster> {
        match find_bin() {
            Some(bin) => Some(PgCluster::start_with(&bin)),
            None if interop_required() => {
                panic!("PRIVCA_INTEROP=1 but PostgreSQL is not installed")
            }
            None => None,
        }
    }

    /// Starts a cluster of its own that accepts TLS connections only: `cert_pem` and
    /// `key_pem` become its server certificate and key, and pg_hba.conf allows `hostssl`
    /// from 127.0.0.1 and nothing else, so a plaintext connection is refused.
    pub fn start_tls(cert_pem: &[u8], key_pem: &[u8]) -> Option<PgCluster> {
        let cluster = PgCluster::start()?;
        cluster.pause();
        let data = cluster.dir.join("data");
        let write = |name: &str, bytes: &[u8], mode: u32| {
            let path = data.join(name);
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(
                &path,
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode),
            )
            .unwrap();
            if cluster.as_postgres {
                let ok = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&path)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chown postgres {}", path.display());
            }
        };
        write("server.crt", cert_pem, 0o644);
        write("server.key", key_pem, 0o600);
        write(
            "pg_hba.conf",
            b"hostssl all all 127.0.0.1/32 trust\n",
            0o600,
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        cluster.resume();
        Some(cluster)
    }

    fn start_with(bin: &Path) -> PgCluster {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "privca-pg-{}-{}-{nanos}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "chown postgres {}: is the postgresql package installed?",
                dir.display()
            );
        }
        let mut cluster = PgCluster {
            dir,
            bin: bin.to_path_buf(),
            port: free_port(),
            as_postgres,
            watchdog: Mutex::new(None),
            next_db: AtomicU32::new(0),
        };
        let data = cluster.dir.join("data");
        cluster.pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "privca".as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-locale".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        cluster.watch();
        cluster.run_server("start");
        // The port was free when chosen; retry on another once if the start lost a race.
        if !cluster.answers() {
            cluster.port = free_port();
            cluster.run_server("start");
        }
        cluster
    }

    /// Runs `tool` of the PostgreSQL bin directory (as the postgres user when root);
    /// panics with its output when it fails.
    fn pg(&self, tool: &str, args: &[&std::ffi::OsStr]) {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_args(&self, action: &str) -> Vec<std::ffi::OsString> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on -c max_connections=300",
            self.port,
            self.dir.display()
        );
        let mut args: Vec<std::ffi::OsString> = vec![
            "-D".into(),
            data.into(),
            "-l".into(),
            log.into(),
            "-w".into(),
        ];
        args.extend(["-t".into(), "30".into()]);
        if action == "start" {
            args.extend(["-o".into(), opts.into()]);
        } else {
            args.extend(["-m".into(), "fast".into()]);
        }
        args.push(action.into());
        args
    }

    fn run_server(&self, action: &str) {
        let args = self.pg_ctl_args(action);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        self.pg("pg_ctl", &args);
    }

    /// Whether the server accepts TCP connections on its port.
    fn answers(&self) -> bool {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(2),
        )
        .is_ok()
    }

    /// Starts the watchdog that stops the cluster and removes its directory once the
    /// test process is gone (its stdin pipe closes).
    fn watch(&self) {
        let stop: Vec<String> = self
            .pg_ctl_args("stop")
            .iter()
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        let pg_ctl = format!("'{}'", self.bin.join("pg_ctl").display());
        let prefix = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "read _ignored; {prefix}{pg_ctl} {} >/dev/null 2>&1; rm -rf '{}'",
            stop.join(" "),
            self.dir.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the cluster watchdog");
        let stdin = child.stdin.take().expect("watchdog stdin");
        *self.watchdog.lock().unwrap() = Some((child, stdin));
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast shutdown); [`PgCluster::resume`] starts it again.
    pub fn pause(&self) {
        self.run_server("stop");
    }

    /// Starts the server again after [`PgCluster::pause`], on the same port.
    pub fn resume(&self) {
        self.run_server("start");
    }

    /// Options for `dbname` in this cluster: TCP to 127.0.0.1, user privca, small pool.
    pub fn options(&self, dbname: &str) -> PgOptions {
        PgOptions {
            host: Some("127.0.0.1".into()),
            port: Some(self.port),
            user: Some("privca".into()),
            dbname: Some(dbname.into()),
            pool_size: 8,
            tls: PgTls::Disable,
            node: "test".into(),
            ..PgOptions::default()
        }
    }

    /// Creates a new empty database and returns its name.
    pub fn create_database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        let port = self.port.to_string();
        self.pg(
            "createdb",
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "privca".as_ref(),
                name.as_ref(),
            ],
        );
        name
    }

    /// A new database with the schema applied, as a [`super::TestDatabase`].
    pub fn database(&self) -> PgDatabase {
        let options = self.options(&self.create_database());
        PgStore::migrate(&options).expect("migrating a test database");
        PgDatabase { options }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self.watchdog.lock().unwrap().take() {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// One migrated database of a [`PgCluster`].
#[derive(Debug, Clone)]
pub struct PgDatabase {
    /// How to reach it.
    pub options: PgOptions,
}

impl super::TestDatabase for PgDatabase {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(PgStore::open(&self.options).expect("opening the test database"))
    }
}

/// A fresh database in the binary's shared cluster, or `None` to skip (see the module
/// documentation): the factory for `store::store_suite!(skip_unless ...)`.
pub fn fresh_database() -> Option<PgDatabase> {
    PgCluster::shared().map(PgCluster::database)
}
