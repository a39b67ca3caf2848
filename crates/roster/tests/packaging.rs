//! What ships beside the binary is generated from, or checked against, the real command line: the
//! shell completions and man pages come from the clap definition, and the systemd units are
//! verified by `systemd-analyze` and call commands the binary accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn roster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roster")).args(args).output().expect("the roster binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "roster failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root exists")
}

const COMMANDS: [&str; 8] = ["init", "check", "plan", "apply", "run", "reconcile", "audit", "release"];

#[test]
fn completions_know_every_command_in_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&roster(&["completions", shell]));
        for command in COMMANDS {
            assert!(script.contains(command), "{shell} completions do not mention `{command}`");
        }
        assert!(script.contains("as-of"), "{shell} completions do not offer the global --as-of");
    }
    let bash = stdout(&roster(&["completions", "bash"]));
    assert!(bash.contains("complete -F _roster"), "bash completions register no function:\n{bash}");
}

#[test]
fn a_man_page_per_command_with_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let listed = stdout(&roster(&["manpages", dir.path().to_str().unwrap()]));
    let page = |name: &str| {
        let path = dir.path().join(format!("{name}.1"));
        assert!(listed.contains(path.to_str().unwrap()), "{name}.1 is not listed in:\n{listed}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let top = page("roster");
    assert!(top.starts_with(".ie") || top.contains(".TH roster 1"), "not a roff page:\n{top}");
    for command in COMMANDS {
        assert!(top.contains(command), "roster.1 does not list `{command}`");
        page(&format!("roster-{command}"));
    }
    let plan = page("roster-plan");
    assert!(plan.contains(".TH roster-plan 1"), "roster-plan.1 has no title of its own");
    assert!(plan.contains("\\-\\-format") || plan.contains("--format"), "roster-plan.1 lacks --format");
    let verify = page("roster-audit-verify");
    assert!(verify.contains("head"), "roster-audit-verify.1 lacks --head");
}

/// The units pass `systemd-analyze verify` (with the binary path pointed at the one under test),
/// and the command each service runs is one the binary accepts.
#[test]
fn systemd_units_verify_and_run_a_real_command() {
    let dir = tempfile::tempdir().unwrap();
    let units = repo_root().join("packaging/systemd");
    for name in ["roster.service", "roster-serve.service"] {
        let service = std::fs::read_to_string(units.join(name)).unwrap();
        let exec = service.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("the service has an ExecStart");
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/bin/roster"), "{name}: ExecStart runs something else: {exec}");
        let args: Vec<&str> = words.collect();
        let mut help = args.clone();
        help.push("--help");
        let output = roster(&help);
        assert!(
            output.status.success(),
            "roster rejects the arguments {args:?} of {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(dir.path().join(name), service.replace("/usr/bin/roster", env!("CARGO_BIN_EXE_roster")))
            .unwrap();
    }
    std::fs::copy(units.join("roster.timer"), dir.path().join("roster.timer")).unwrap();
    let verify = Command::new("systemd-analyze")
        .current_dir(dir.path())
        .args(["verify", "--man=no", "./roster.service", "./roster.timer", "./roster-serve.service"])
        .output()
        .expect("systemd-analyze runs (scripts/install-test-deps.sh installs the systemd package)");
    let complaints = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success() && complaints.trim().is_empty(), "systemd-analyze verify:\n{complaints}");
}
