//! A throwaway PostgreSQL cluster for the integration tests and `hubctl bench`: `initdb` into a
//! temp dir, one postmaster on a free loopback port (its unix socket inside that dir),
//! databases made with `createdb`. It drives PostgreSQL's own binaries, so it needs no driver
//! and holds no SQL of the hub's.
//!
//! Binaries: `MCP_HUB_PG_BIN` when set, else the highest `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package), else `pg_config --bindir`. As root (CI, containers) the server
//! tools run as the `postgres` user, since `postgres` refuses to run as root.
//!
//! [`Cluster::shared`] is one cluster per process for tests that each want a fresh database;
//! statics are never dropped, so a watchdog process stops it once the test process is gone.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The user PostgreSQL's server tools run as when this process is root.
const SERVER_USER: &str = "postgres";
/// Attempts at a free port: another process may take the one we probed before the
/// postmaster binds it.
const PORT_ATTEMPTS: usize = 3;
const MISSING: &str = "install the postgresql package or set MCP_HUB_PG_BIN to the directory holding initdb and pg_ctl";

#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `false` (tests): fsync, synchronous commit and full-page writes off — a crash of the
    /// machine may lose the cluster, a crash of a process loses nothing. `true` (durability
    /// tests, benchmarks that should cost what production costs): PostgreSQL's defaults.
    pub durable: bool,
    /// Where `initdb`, `pg_ctl`, `createdb` and `psql` are; `None` looks them up.
    pub bin_dir: Option<PathBuf>,
    /// Extra `postgresql.conf` lines, after the defaults (a later line wins), e.g.
    /// `shared_preload_libraries = 'pg_stat_statements'` for `hubctl bench`'s per-call cost.
    pub settings: Vec<String>,
}

/// A running (or stopped) throwaway cluster. Dropping it stops the server at once and
/// removes its directory.
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `Some("postgres")` when this process is root.
    run_as: Option<&'static str>,
}

impl Cluster {
    /// initdb + start. Errors say which step failed, with the server log's tail.
    pub fn start(options: ClusterOptions) -> Result<Cluster, String> {
        let bin = match options.bin_dir {
            Some(dir) => checked_bin_dir(dir, "ClusterOptions.bin_dir")?,
            None => find_bin_dir(std::env::var_os("MCP_HUB_PG_BIN"))?,
        };
        let run_as = rustix::process::geteuid().is_root().then_some(SERVER_USER);
        let root = new_temp_dir()?;
        let mut cluster = Cluster {
            root,
            bin,
            port: 0,
            run_as,
        };
        // From here on Drop cleans up whatever step fails.
        cluster.init(options.durable, &options.settings)?;
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port()?;
            cluster.append_conf(&format!("port = {}\n", cluster.port))?;
            match cluster.start_again() {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// One cluster per process, not durable, started on first use. A watchdog stops it and
    /// removes its directory after this process exits (statics are never dropped).
    pub fn shared() -> Result<&'static Cluster, String> {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let cluster = Cluster::start(ClusterOptions::default())?;
                cluster.spawn_watchdog()?;
                Ok(cluster)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (`data/`, `sock/`, `postgres.log`).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SERVER_USER}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Creates an empty database and returns its URL. Names are lowercase letters, digits
    /// and `_` (no quoting games), at most 63 bytes (PostgreSQL's identifier limit).
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        check_database_name(name)?;
        let mut createdb = self.client("createdb");
        createdb.arg(name);
        run(&mut createdb, "createdb")?;
        Ok(self.url(name))
    }

    /// Runs one `psql -c` command on `database` and returns its unaligned, tuples-only
    /// output — for tests and operators checking the cluster, not for the hub's data.
    pub fn psql(&self, database: &str, command: &str) -> Result<String, String> {
        check_database_name(database)?;
        let mut psql = self.client("psql");
        psql.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
        ])
        .arg(command);
        run(&mut psql, "psql").map(|out| out.trim().to_string())
    }

    /// A clean shutdown (`pg_ctl stop -m fast`): sessions are ended, a checkpoint written.
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl_stop("fast")
    }

    /// The server exits at once without a checkpoint, as on a crash; the next start replays
    /// the WAL. Clients see their connections drop.
    pub fn kill_server(&self) -> Result<(), String> {
        self.pg_ctl_stop("immediate")
    }

    /// Starts the server again on the same port and directory (after [`stop`](Self::stop)
    /// or [`kill_server`](Self::kill_server)); waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let mut pg_ctl = self.server_tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "start"])
            // Its own process group: a Ctrl-C meant for the test runner does not kill the
            // postmaster before Drop or the watchdog can stop it cleanly.
            .process_group(0);
        run(&mut pg_ctl, "pg_ctl start").map(drop).map_err(|e| {
            format!(
                "{e}\n--- {} (tail)\n{}",
                self.log_path().display(),
                self.log_tail()
            )
        })
    }

    fn init(&self, durable: bool, settings: &[String]) -> Result<(), String> {
        std::fs::create_dir(self.socket_dir())
            .map_err(|e| format!("creating {}: {e}", self.socket_dir().display()))?;
        if let Some(user) = self.run_as {
            let mut chown = Command::new("chown");
            chown.arg("-R").arg(format!("{user}:")).arg(&self.root);
            run(&mut chown, "chown of the cluster dir to the postgres user")?;
        }
        let mut initdb = self.server_tool("initdb");
        initdb.arg("-D").arg(self.data_dir()).args([
            "--auth=trust",
            "-U",
            SERVER_USER,
            "--locale=C",
            "-E",
            "UTF8",
        ]);
        if !durable {
            initdb.arg("--no-sync");
        }
        run(&mut initdb, "initdb")?;
        let mut conf = String::new();
        let _ = writeln!(conf, "\n# hub-server pg_cluster");
        let _ = writeln!(conf, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(
            conf,
            "unix_socket_directories = '{}'",
            self.socket_dir().display()
        );
        // Two replicas with pools, the tests' clients and psql fit with room to spare.
        let _ = writeln!(conf, "max_connections = 300");
        let _ = writeln!(conf, "shared_buffers = 128MB");
        if !durable {
            let _ = writeln!(conf, "fsync = off");
            let _ = writeln!(conf, "synchronous_commit = off");
            let _ = writeln!(conf, "full_page_writes = off");
        }
        for setting in settings {
            let _ = writeln!(conf, "{setting}");
        }
        self.append_conf(&conf)
    }

    /// Appends to postgresql.conf; a later line overrides an earlier one (the port of a retry).
    fn append_conf(&self, text: &str) -> Result<(), String> {
        let path = self.data_dir().join("postgresql.conf");
        OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        let mut pg_ctl = self.server_tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "stop"]);
        run(&mut pg_ctl, "pg_ctl stop").map(drop)
    }

    /// `sh` polls this process with `kill -0` once a second; when it is gone it stops the
    /// server at once and removes the directory. Its own process group, so it outlives a
    /// Ctrl-C of the test runner (or of `hubctl bench`, whose Drop then never runs).
    pub fn spawn_watchdog(&self) -> Result<(), String> {
        const SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ -n "$5" ]; then runuser -u "$5" -- "$2" -D "$3" -m immediate -w stop
else "$2" -D "$3" -m immediate -w stop; fi
rm -rf "$4"
"#;
        Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("pg-cluster-watchdog")
            .arg(std::process::id().to_string())
            .arg(self.bin.join("pg_ctl"))
            .arg(self.data_dir())
            .arg(&self.root)
            .arg(self.run_as.unwrap_or(""))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map(drop)
            .map_err(|e| format!("starting the cluster watchdog (sh): {e}"))
    }

    /// A server tool (initdb, pg_ctl), as the postgres user when this process is root.
    fn server_tool(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        // The postgres user may not be able to read the caller's working directory.
        command.current_dir(&self.root).stdin(Stdio::null());
        command
    }

    /// A client tool (createdb, psql) over TCP as the `postgres` role; trust auth.
    fn client(&self, tool: &str) -> Command {
        let mut command = Command::new(self.bin.join(tool));
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SERVER_USER,
            ])
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .stdin(Stdio::null());
        command
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.root.join("sock")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = self.kill_server();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `MCP_HUB_PG_BIN` (the caller passes its value), else the highest
/// `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir` — the first that holds
/// `initdb` and `pg_ctl`.
fn find_bin_dir(from_env: Option<OsString>) -> Result<PathBuf, String> {
    if let Some(dir) = from_env.filter(|d| !d.is_empty()) {
        return checked_bin_dir(PathBuf::from(dir), "MCP_HUB_PG_BIN");
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<f64>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server_tools(bin))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, bin)| bin);
    if let Some(bin) = debian {
        return Ok(bin);
    }
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    match pg_config {
        Some(bin) if has_server_tools(&bin) => Ok(bin),
        _ => Err(format!(
            "no PostgreSQL server binaries found (looked in MCP_HUB_PG_BIN, /usr/lib/postgresql/*/bin, pg_config --bindir): {MISSING}"
        )),
    }
}

fn checked_bin_dir(dir: PathBuf, source: &str) -> Result<PathBuf, String> {
    if has_server_tools(&dir) {
        Ok(dir)
    } else {
        Err(format!(
            "{source}={} holds no initdb/pg_ctl: {MISSING}",
            dir.display()
        ))
    }
}

fn has_server_tools(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn check_database_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "database name {name:?}: use 1-63 of a-z, 0-9 and _, not starting with a digit"
        ))
    }
}

/// `<tmp>/hub-pg-<pid>-<n>-<random>`, created empty (fails rather than reuse a directory).
fn new_temp_dir() -> Result<PathBuf, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "hub-pg-{}-{}-{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    ));
    std::fs::create_dir(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    Ok(path)
}

/// A port nobody listens on right now (the kernel's pick for an ephemeral bind).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))
}

/// Runs a command to completion; a failure names the step, its exit status and stderr.
fn run(command: &mut Command, step: &str) -> Result<String, String> {
    let output = command.output().map_err(|e| {
        format!(
            "{step}: cannot run {:?}: {e} ({MISSING})",
            command.get_program()
        )
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{step} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_creates_databases_and_survives_restarts() {
        let cluster = Cluster::start(ClusterOptions::default()).expect("cluster starts");
        let one = cluster.create_database("first_db").unwrap();
        let two = cluster.create_database("second_db").unwrap();
        assert_eq!(
            one,
            format!("postgres://postgres@127.0.0.1:{}/first_db", cluster.port())
        );
        assert_ne!(one, two);
        assert_eq!(cluster.psql("first_db", "SELECT 1").unwrap(), "1");
        assert_eq!(cluster.psql("second_db", "SELECT 1").unwrap(), "1");
        cluster
            .psql(
                "first_db",
                "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)",
            )
            .unwrap();
        assert!(cluster.create_database("first_db").is_err(), "exists");

        cluster.stop().unwrap();
        assert!(cluster.psql("first_db", "SELECT 1").is_err(), "stopped");
        cluster.start_again().unwrap();
        assert_eq!(cluster.psql("first_db", "SELECT v FROM kept").unwrap(), "7");

        cluster.kill_server().unwrap();
        cluster.start_again().unwrap();
        assert_eq!(cluster.psql("first_db", "SELECT v FROM kept").unwrap(), "7");

        let dir = cluster.dir().to_path_buf();
        drop(cluster);
        assert!(!dir.exists(), "Drop removes the directory");
    }

    #[test]
    fn the_shared_cluster_is_one_per_process() {
        let a = Cluster::shared().expect("shared cluster");
        let b = Cluster::shared().unwrap();
        assert!(std::ptr::eq(a, b));
        a.create_database("shared_probe").unwrap();
        assert_eq!(b.psql("shared_probe", "SELECT 1").unwrap(), "1");
    }

    #[test]
    fn missing_binaries_and_bad_names_are_clear_errors() {
        let empty = std::env::temp_dir();
        let error = find_bin_dir(Some(empty.clone().into_os_string())).unwrap_err();
        assert!(error.contains("MCP_HUB_PG_BIN"), "{error}");
        assert!(error.contains("install the postgresql package"), "{error}");
        let error = Cluster::start(ClusterOptions {
            bin_dir: Some(empty),
            ..ClusterOptions::default()
        })
        .unwrap_err();
        assert!(error.contains("ClusterOptions.bin_dir"), "{error}");
        for bad in ["", "Upper", "1abc", "a-b", "a;drop", &"x".repeat(64)] {
            assert!(check_database_name(bad).is_err(), "{bad:?}");
        }
        check_database_name("hub_t1_2").unwrap();
    }
}
