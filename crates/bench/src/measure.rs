//! Runs a program as a child process and measures it: wall time from spawn to exit, and the
//! child's peak resident memory as the kernel counted it (`ru_maxrss` from `wait4(2)` on that
//! one child, so other children of the bench do not count).

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size in bytes.
    pub peak_rss: u64,
    pub code: i32,
    /// Standard output, unless it was sent to a file.
    pub stdout: String,
    pub stderr: String,
}

impl Measured {
    pub fn seconds(&self) -> f64 {
        self.wall.as_secs_f64()
    }

    pub fn peak_mib(&self) -> f64 {
        self.peak_rss as f64 / (1024.0 * 1024.0)
    }
}

/// Runs `command` to its end. Standard output goes to `stdout_to` when given (a large plan), else
/// it is kept; standard error is kept.
pub fn run(mut command: Command, stdout_to: Option<&Path>) -> Result<Measured> {
    // The program and its arguments, never its environment: that holds the bind password.
    let what = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    match stdout_to {
        Some(path) => command.stdout(File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => command.stdout(Stdio::piped()),
    };
    command.stderr(Stdio::piped()).stdin(Stdio::null());
    let start = Instant::now();
    let mut child = command.spawn().with_context(|| format!("starting {what}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let pid = libc::pid_t::try_from(child.id()).context("a process id beyond pid_t")?;
    let mut status: libc::c_int = 0;
    // SAFETY: wait4 writes only into the two locals it is given; `rusage` is plain data for which
    // all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if waited != pid {
        bail!("waiting for {what}: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    // ru_maxrss is in kibibytes on Linux.
    let peak_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    Ok(Measured { wall, peak_rss, code, stdout, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_allocates_shows_its_memory_and_its_exit_code() {
        let mut command = Command::new("python3");
        command.args(["-c", "import sys; x = bytearray(200 * 1024 * 1024); print('done'); sys.exit(3)"]);
        let measured = run(command, None).unwrap();
        assert_eq!(measured.code, 3);
        assert_eq!(measured.stdout.trim(), "done");
        assert!(measured.peak_mib() >= 200.0, "{} MiB", measured.peak_mib());
    }
}
