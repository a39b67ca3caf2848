//! `roster-bench`: makes realistic HR exports of any size (`generate`) and runs the benchmark
//! cases of docs/benchmarks.md against the real `roster` binary (`run`).

mod cases;
mod generate;
mod lab;
mod measure;
mod names;
mod rng;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use crate::cases::{Context, Figure};
use crate::generate::{Directory, Spec};

#[derive(Parser)]
#[command(name = "roster-bench", about = "Benchmarks for roster (docs/benchmarks.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a realistic HR export (hr.csv) and the roster configuration that reads it (roster.toml).
    Generate(GenerateArgs),
    /// Run benchmark cases and print each figure, with the target where it sets one.
    Run(RunArgs),
    /// List the cases.
    List,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Persons in the export.
    #[arg(long)]
    persons: u64,
    /// The same seed gives the same export.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// The day the dates are arranged around (joiners, pre-hires, leavers, leaves).
    #[arg(long, default_value = "2026-12-01", value_parser = parse_date)]
    as_of: NaiveDate,
    /// Records changed against the export of the same seed without changes (a tenth of them new joiners).
    #[arg(long, default_value_t = 0)]
    changes: u64,
    /// The directory the configuration points to.
    #[arg(long, default_value = "ldap://127.0.0.1:389")]
    ldap_url: String,
    #[arg(long, default_value = "dc=example,dc=org")]
    suffix: String,
    /// Default: cn=admin,SUFFIX.
    #[arg(long)]
    bind_dn: Option<String>,
    /// The environment variable that will hold the bind password.
    #[arg(long, default_value = "ROSTER_LDAP_PASSWORD")]
    password_variable: String,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Cases to run, comma-separated (see `list`); default all.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Multiplies every population, e.g. 0.01 for a quick try.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "2026-12-01", value_parser = parse_date)]
    as_of: NaiveDate,
    /// The roster binary; default: `roster` beside this program (build both with
    /// `cargo build --release -p roster -p roster-bench`).
    #[arg(long)]
    roster: Option<PathBuf>,
    /// Folder for the cases' temporary folders (they are removed afterwards).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    work: PathBuf,
    /// Days `daily-changes` times, each from the same copy of the loaded directory and store: one
    /// day is one sample on a machine whose pace varies from minute to minute.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Pairs of loads each first-load case measures, roster's and `ldapadd`'s side by side, which
    /// goes first alternating from pair to pair: the ratio is the pairs' median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pairs: u32,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("expected YYYY-MM-DD, found {s:?}: {e}"))
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Generate(args) => report(generate(args)),
        Command::Run(args) => report(run(args)),
        Command::List => {
            for case in cases::ALL {
                println!("{:<18} {}", case.name, case.about);
            }
            ExitCode::SUCCESS
        }
    }
}

fn report(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn generate(args: GenerateArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let spec = Spec { persons: args.persons, seed: args.seed, as_of: args.as_of, changes: args.changes };
    let rows = generate::write_export(&spec, &args.out.join(lab::EXPORT))?;
    let directory = Directory {
        url: args.ldap_url,
        bind_dn: args.bind_dn.unwrap_or_else(|| format!("cn=admin,{}", args.suffix)),
        suffix: args.suffix,
        password_variable: args.password_variable,
    };
    std::fs::write(args.out.join("roster.toml"), generate::config(&directory, lab::EXPORT))?;
    println!(
        "{rows} rows in {}, configuration in {}",
        args.out.join(lab::EXPORT).display(),
        args.out.join("roster.toml").display()
    );
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
    let roster = match args.roster {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("roster"),
    };
    if !roster.is_file() {
        bail!("{} not found: build it with `cargo build --release -p roster -p roster-bench`", roster.display());
    }
    // The cases run it from their own folders.
    let roster = std::path::absolute(&roster)?;
    let selected: Vec<&cases::Case> = if args.cases.is_empty() {
        cases::ALL.iter().collect()
    } else {
        args.cases
            .iter()
            .map(|name| {
                cases::ALL.iter().find(|c| c.name == name).with_context(|| {
                    let names: Vec<&str> = cases::ALL.iter().map(|c| c.name).collect();
                    format!("no case {name:?}; the cases are {}", names.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let cx = Context {
        roster,
        work: args.work,
        seed: args.seed,
        as_of: args.as_of,
        scale: args.scale,
        days: args.days,
        pairs: args.pairs,
    };
    println!("{} cores, {} memory; roster {}", cores(), memory(), cx.roster.display());
    let mut all = Vec::new();
    for case in selected {
        eprintln!("case {}: {}", case.name, case.about);
        let figures = (case.run)(&cx).with_context(|| format!("case {}", case.name))?;
        print_table(&figures);
        all.extend(figures);
    }
    if all.iter().any(|f| f.verdict() == "MISSED") {
        bail!("some targets were missed");
    }
    Ok(())
}

fn print_table(figures: &[Figure]) {
    let width = figures.iter().map(|f| f.name.chars().count()).max().unwrap_or(0);
    for f in figures {
        let value = if f.value.fract() == 0.0 { format!("{}", f.value) } else { format!("{:.2}", f.value) };
        let target = f.at_most.map(|t| format!("target <= {t} {}", f.unit)).unwrap_or_default();
        println!("{:<width$}  {:>10} {:<4} {:<24} {}", f.name, value, f.unit, target, f.verdict());
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

fn memory() -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0))
}
