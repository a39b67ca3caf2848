//! What the daemon's tests share: hashing an API token as the config stores it, and starting
//! `roster serve` until it says where it listens.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `roster token hash` of `token`: the hex SHA-256 a `[[serve.token]]` holds.
pub fn token_sha256(token: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running roster token hash");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), token.as_bytes()).expect("writing the token");
    let output = child.wait_with_output().expect("roster token hash");
    assert!(output.status.success());
    String::from_utf8(output.stdout).expect("hex").trim().to_string()
}

/// Spawns `command` (a `roster … serve` the caller set up) with its output captured, waits for its
/// first line, `listening on ADDRESS`, and returns the child, `http://ADDRESS` and everything else
/// it prints (standard error, then the rest of standard output), gathered as it comes.
pub fn spawn_serve(mut command: Command) -> (Child, String, Arc<Mutex<String>>) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("starting roster serve");
    let log = Arc::new(Mutex::new(String::new()));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let mut first = String::new();
    stdout.read_line(&mut first).expect("reading the daemon's first line");
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        sink.lock().unwrap().push_str(&rest);
    });
    let Some(address) = first.trim().strip_prefix("listening on ").map(str::to_string) else {
        std::thread::sleep(Duration::from_millis(500));
        panic!("expected `listening on ADDRESS` first, found {first:?}; log:\n{}", log.lock().unwrap())
    };
    (child, format!("http://{address}"), log)
}
