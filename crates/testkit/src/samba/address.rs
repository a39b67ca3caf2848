//! A loopback address of its own for each domain controller, leased with a lock file.
//!
//! Samba's AD ports (389, 636, 3268, 88, ...) cannot be moved, so two DCs on one machine need two
//! addresses. All of 127.0.0.0/8 reaches `lo` on Linux, but Samba listens only on addresses that
//! are on an interface, so the lease puts its address on `lo` (which needs root) and takes it off
//! again.
//!
//! The lock file of an address says whether roster put the address on `lo` and has not taken it
//! off yet: a DC that outlives its starter keeps its address until `stop`, and an address left by
//! a process that died is taken off by the next lease of it. Addresses that something else put on
//! `lo` are used but left there.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process::{require_program, run};

/// Candidates: `127.0.0.X` for X in this range. 127.0.0.1 stays out: other servers live there.
const HOSTS: std::ops::RangeInclusive<u8> = 10..=250;
/// Every TCP port a DC with `server services = ldap, cldap, kdc, rpc, ...` listens on at fixed
/// numbers. An address where one of them is taken (by a DC that outlived the process that
/// started it, or anything else) is skipped.
const DC_PORTS: [u16; 7] = [389, 636, 3268, 3269, 88, 464, 135];
/// Lock files live here for every process on the machine, whatever its `TMPDIR`: a lock only
/// excludes those who look for it in the same place.
const LOCK_DIR: &str = "/tmp";
/// What the lock file holds while roster's address is on `lo`.
const ON_LOOPBACK_MARK: &str = "on lo: put there by roster-testkit\n";

/// A loopback address held by this process until dropped: no other process that leases through
/// this module gets it meanwhile.
pub(super) struct AddressLease {
    ip: Ipv4Addr,
    /// Holds the exclusive `flock`, which the kernel releases when the process dies however it
    /// dies, and the mark.
    lock: File,
    /// Whether dropping the lease takes the address off `lo`.
    remove_on_release: bool,
    ip_program: PathBuf,
}

impl AddressLease {
    /// The first free address, trying `preferred` first: one whose lock file no other process
    /// holds, where none of the DC's ports is taken. Puts it on `lo` if it is not there.
    pub(super) fn take(preferred: Option<Ipv4Addr>) -> Result<AddressLease> {
        let ip_program = require_program("ip", "iproute2")?;
        let candidates = preferred.into_iter().chain(HOSTS.map(|host| Ipv4Addr::new(127, 0, 0, host)));
        let mut first_refusal = None;
        for ip in candidates {
            let Some(lock) = try_lock(ip)? else { continue };
            if let Err(refusal) = ports_free(ip) {
                first_refusal.get_or_insert(refusal);
                continue;
            }
            let mut lease = AddressLease { ip, lock, remove_on_release: false, ip_program };
            if on_loopback(&lease.ip_program, ip)? {
                lease.remove_on_release = lease.marked()?;
            } else {
                lease.put_on_loopback()?;
            }
            return Ok(lease);
        }
        let reason = first_refusal.map(|refusal| format!("; for one, {refusal:#}")).unwrap_or_default();
        bail!(
            "no free loopback address for a Samba DC among 127.0.0.{}-{}: all are locked by other \
             processes (lock files {LOCK_DIR}/roster-samba-127.0.0.X.lock) or have a DC port taken{reason}",
            HOSTS.start(),
            HOSTS.end()
        )
    }

    /// Takes `ip` to stop the DC running there, waiting for the lock if another process holds it
    /// for a moment (while it finds the ports taken and moves on). Dropping the lease takes the
    /// address off `lo` if roster put it there.
    pub(super) fn take_to_stop(ip: Ipv4Addr) -> Result<AddressLease> {
        let ip_program = require_program("ip", "iproute2")?;
        let path = lock_path(ip);
        let lock = open_lock_file(&path)?;
        lock.lock().with_context(|| format!("could not lock {}", path.display()))?;
        let mut lease = AddressLease { ip, lock, remove_on_release: false, ip_program };
        lease.remove_on_release = lease.marked()?;
        Ok(lease)
    }

    pub(super) fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Leaves the address on `lo` when the lease is dropped, for a DC that outlives this process;
    /// the mark stays for the `stop` that takes it off.
    pub(super) fn keep_on_loopback(&mut self) {
        self.remove_on_release = false;
    }

    /// Takes the address off `lo` if roster put it there, then drops the lock. Callers stop the
    /// DC first: a Samba whose address is gone would be left deaf.
    pub(super) fn release(mut self) -> Result<()> {
        let removed = self.remove_from_loopback();
        self.remove_on_release = false;
        removed
    }

    fn put_on_loopback(&mut self) -> Result<()> {
        let ip = self.ip;
        let mut add = Command::new(&self.ip_program);
        add.args(["addr", "add", &format!("{ip}/8"), "dev", "lo"]);
        run(&mut add, None).with_context(|| {
            format!("could not put {ip} on lo, which Samba needs to listen there (this takes root: CAP_NET_ADMIN)")
        })?;
        self.remove_on_release = true;
        self.set_mark(ON_LOOPBACK_MARK)
    }

    fn remove_from_loopback(&mut self) -> Result<()> {
        if !self.remove_on_release {
            return Ok(());
        }
        let mut command = Command::new(&self.ip_program);
        command.args(["addr", "del", &format!("{}/8", self.ip), "dev", "lo"]);
        match run(&mut command, None) {
            Ok(_) => {}
            // Taken off by hand meanwhile: what was wanted.
            Err(_) if !on_loopback(&self.ip_program, self.ip)? => {}
            Err(error) => return Err(error).with_context(|| format!("could not take {} off lo", self.ip)),
        }
        self.set_mark("")
    }

    fn marked(&mut self) -> Result<bool> {
        let mut mark = String::new();
        self.lock.seek(SeekFrom::Start(0))?;
        self.lock
            .read_to_string(&mut mark)
            .with_context(|| format!("could not read {}", lock_path(self.ip).display()))?;
        Ok(mark == ON_LOOPBACK_MARK)
    }

    fn set_mark(&mut self, mark: &str) -> Result<()> {
        self.lock.set_len(0)?;
        self.lock.seek(SeekFrom::Start(0))?;
        self.lock
            .write_all(mark.as_bytes())
            .with_context(|| format!("could not write {}", lock_path(self.ip).display()))
    }
}

impl Drop for AddressLease {
    /// Also on the error paths of a start that failed half-way.
    fn drop(&mut self) {
        let _ = self.remove_from_loopback();
    }
}

fn lock_path(ip: Ipv4Addr) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("roster-samba-{ip}.lock"))
}

fn open_lock_file(path: &Path) -> Result<File> {
    // The files stay: removing a lock file lets a process that opened the old one and one that
    // creates a new one both hold "the" lock.
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("could not open the lock file {}", path.display()))
}

fn try_lock(ip: Ipv4Addr) -> Result<Option<File>> {
    let path = lock_path(ip);
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(error)) => Err(error).with_context(|| format!("could not lock {}", path.display())),
    }
}

/// Binds each DC port on `ip` for a moment. Binding works on any 127.x address, on `lo` or not,
/// and fails where something listens on that address or on all addresses.
fn ports_free(ip: Ipv4Addr) -> Result<()> {
    for port in DC_PORTS {
        TcpListener::bind((ip, port)).with_context(|| format!("{ip}:{port} is taken"))?;
    }
    Ok(())
}

fn on_loopback(ip_program: &Path, ip: Ipv4Addr) -> Result<bool> {
    let mut show = Command::new(ip_program);
    show.args(["-o", "-4", "addr", "show", "dev", "lo"]);
    Ok(has_address(&run(&mut show, None)?, ip))
}

/// Whether `ip -o -4 addr show` printed `ip` as one of the addresses (`inet 127.0.0.10/8 ...`).
fn has_address(listing: &str, ip: Ipv4Addr) -> bool {
    let wanted = ip.to_string();
    listing.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.any(|word| word == "inet") && words.next().and_then(|cidr| cidr.split('/').next()) == Some(&wanted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_address_in_the_listing_of_ip() {
        let listing = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                       1: lo    inet 127.0.0.12/8 scope host secondary lo\\       valid_lft forever\n";
        assert!(has_address(listing, Ipv4Addr::new(127, 0, 0, 12)));
        assert!(!has_address(listing, Ipv4Addr::new(127, 0, 0, 120)));
        assert!(!has_address(listing, Ipv4Addr::new(127, 0, 0, 2)));
    }

    #[test]
    fn a_held_address_is_not_leased_twice() -> Result<()> {
        // Only the locks are exercised here (127.0.0.251 is outside the leased range): the
        // addresses on lo are the integration tests' business.
        let first = try_lock(Ipv4Addr::new(127, 0, 0, 251))?.expect("nobody else uses 127.0.0.251");
        assert!(try_lock(Ipv4Addr::new(127, 0, 0, 251))?.is_none(), "a second open file description is refused");
        drop(first);
        assert!(try_lock(Ipv4Addr::new(127, 0, 0, 251))?.is_some(), "dropping the lease frees it");
        Ok(())
    }
}
