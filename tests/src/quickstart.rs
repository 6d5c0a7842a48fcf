//! `privca quickstart` run as a user runs it: started on a data directory, its printed
//! URLs and commands read from its standard output, the commands run verbatim.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{ok, run};

/// A running `privca quickstart` and what it printed up to its "ready" line.
pub struct Quickstart {
    child: Child,
    /// Its standard output up to and with the ready line.
    pub stdout: String,
}

impl Quickstart {
    /// Starts `bin quickstart` on `data` with the two listener addresses (stderr to
    /// `log`) and reads its output up to its ready line.
    pub fn start(
        bin: &Path,
        data: &Path,
        listen: &str,
        tls_listen: &str,
        log: &Path,
    ) -> Quickstart {
        let mut child = Command::new(bin)
            .arg("quickstart")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", listen, "--tls-listen", tls_listen])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start privca quickstart");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    stdout.push_str(&line);
                    stdout.push('\n');
                    if line.contains("quickstart is ready") {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "quickstart printed no ready line:\n{stdout}\nlog:\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
            }
        }
        Quickstart { child, stdout }
    }

    /// The commands printed under `Commands to run (<what>):`, one per line.
    pub fn commands(&self, what: &str) -> Vec<String> {
        let mark = format!("{} ({what}):", privca_server::quickstart::COMMANDS_MARK);
        let mut lines = self.stdout.lines().skip_while(|l| *l != mark);
        assert!(lines.next().is_some(), "no {mark:?} in:\n{}", self.stdout);
        let cmds: Vec<String> = lines
            .take_while(|l| l.starts_with("    "))
            .map(|l| l[4..].to_string())
            .collect();
        assert!(!cmds.is_empty(), "no commands after {mark:?}");
        cmds
    }

    /// SIGTERM, then a clean exit.
    pub fn stop(mut self) {
        ok(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "quickstart exited with {status}");
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `commands` verbatim, as one `sh -e` script in `dir`; returns its output.
pub fn run_script(dir: &Path, commands: &[String]) -> String {
    std::fs::create_dir_all(dir).expect("dir");
    let script = commands.join("\n");
    let out = run(Command::new("sh")
        .args(["-e", "-c", &script])
        .current_dir(dir));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the printed commands failed ({}):\n{script}\n{text}",
        out.status
    );
    text
}
