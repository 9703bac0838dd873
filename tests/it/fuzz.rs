//! The fuzz targets' smoke run on stable Rust: every parser of outside input (the entries of
//! `fuzz/src/entries.rs`, shared with the libFuzzer targets under `fuzz/`) over its seeds and a
//! few hundred deterministic mutations of them. The long campaign is `fuzz/run.sh` (see
//! fuzz/README.md); inputs it found that crashed a parser are the regression tests below.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::common::repo;

#[path = "../../fuzz/src/entries.rs"]
#[allow(dead_code)]
mod entries;

/// Mutated inputs per target, within [`BUDGET`] (`ETD_FUZZ_SMOKE_RUNS` sets the count, no budget).
const RUNS: usize = 400;
/// Time per target for the mutated inputs (a debug build decodes a 700x700 cutout slowly).
const BUDGET: std::time::Duration = std::time::Duration::from_millis(1500);

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Byte strings parsers care about (separators, numbers at the edges, markup).
const TOKENS: &[&[u8]] = &[
    b"\n",
    b",",
    b" ",
    b"\"",
    b"'",
    b"-",
    b".",
    b"0",
    b"nan",
    b"inf",
    b"-1",
    b"1e308",
    b"4294967296",
    b"18446744073709551616",
    b"\xff",
    b"\0",
    b"<",
    b">",
    b"&#0;",
    b"]]>",
    b"href=",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"*",
    b"&a",
    b"!!binary",
    b"NAXIS1  =               999999",
    b"END",
    b"ustar",
    b"\r\n",
];

/// One random edit of `input` (`other` is another seed, for splicing).
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let at = rng.below(v.len() + 1);
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 if !v.is_empty() => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                v.drain(at.min(end)..end);
            }
            4 if !v.is_empty() => {
                let from = rng.below(v.len());
                let end = (from + 1 + rng.below(256)).min(v.len());
                let chunk = v[from..end].to_vec();
                v.splice(at..at, chunk);
            }
            5 => v.truncate(at),
            6 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(512)).min(other.len());
                v.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let digits = format!("{}", rng.next() as i64 >> rng.below(60));
                v.splice(at..at, digits.bytes());
            }
        }
    }
    v
}

/// Run `entry` on `input`; on a panic, keep the input under target/ and say where.
fn run_one(name: &str, entry: fn(&[u8]), input: &[u8]) -> Result<(), String> {
    // An abort (in C code) cannot be caught: the input it died on is left here.
    let current = repo().join("target").join("fuzz-smoke-current.bin");
    let _ = fs_err::write(&current, [name.as_bytes(), b"\n", input].concat());
    catch_unwind(AssertUnwindSafe(|| entry(input))).map_err(|p| {
        let what = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let keep = repo().join("target").join(format!("fuzz-smoke-{name}.bin"));
        let _ = fs_err::write(&keep, input);
        format!("fuzz target {name} panicked ({what}); the input is in {}", keep.display())
    })
}

#[test]
fn every_fuzz_target_survives_its_seeds_and_mutations() {
    // ETD_FUZZ_SMOKE_RUNS=<n>: n mutated inputs per target whatever the time.
    let asked: Option<usize> = std::env::var("ETD_FUZZ_SMOKE_RUNS").ok().and_then(|v| v.parse().ok());
    let (runs, budget) = match asked {
        Some(n) => (n, std::time::Duration::MAX),
        None => (RUNS, BUDGET),
    };
    let mut failures = Vec::new();
    for (k, (name, entry)) in entries::TARGETS.iter().enumerate() {
        let started = std::time::Instant::now();
        let seeds = entries::seeds(name, &repo());
        assert!(!seeds.is_empty(), "fuzz target {name} has no seed");
        for seed in &seeds {
            failures.extend(run_one(name, *entry, seed).err());
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (k as u64 + 1));
        // Mutations start from the seeds a campaign takes whole (at most 64 KiB; fuzz/run.sh's
        // -max_len): a full cutout decodes slowly in a debug build.
        let small: Vec<&Vec<u8>> = seeds.iter().filter(|s| s.len() <= 1 << 16).collect();
        assert!(!small.is_empty(), "fuzz target {name} has no seed of at most 64 KiB");
        let mut done = 0;
        while done < runs && started.elapsed() < budget {
            done += 1;
            let input = small[rng.below(small.len())];
            let other = small[rng.below(small.len())];
            let mutated = mutate(&mut rng, input, other);
            if let Err(e) = run_one(name, *entry, &mutated) {
                failures.push(e);
                break;
            }
        }
        eprintln!("fuzz smoke: {name}: {} seeds and {done} mutations in {:.1?}", seeds.len(), started.elapsed());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fuzz_target_has_a_libfuzzer_file() {
    for (name, _) in entries::TARGETS {
        let path = repo().join("fuzz/fuzz_targets").join(format!("{name}.rs"));
        let text = fs_err::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("entries::{name}(")), "{} does not call entries::{name}", path.display());
    }
}

/// `ETD_FUZZ_CORPUS=<dir> cargo test --test it fuzz::write_seed_corpus -- --ignored` writes every
/// target's seeds to `<dir>/<target>/` (fuzz/run.sh does this before a campaign).
#[test]
#[ignore = "writes the fuzz seed corpus; run by fuzz/run.sh"]
fn write_seed_corpus() {
    let dir = std::env::var_os("ETD_FUZZ_CORPUS").expect("ETD_FUZZ_CORPUS names the corpus folder");
    entries::write_corpus(std::path::Path::new(&dir), &repo()).unwrap();
}

/// `ETD_FUZZ_TARGET=<target> ETD_FUZZ_INPUT=<file> cargo test --test tests fuzz::reproduce -- --ignored`
/// runs one input (a libFuzzer crash file, or `target/fuzz-smoke-*.bin` without its first line).
#[test]
#[ignore = "runs one input given in ETD_FUZZ_TARGET and ETD_FUZZ_INPUT"]
fn reproduce() {
    let target = std::env::var("ETD_FUZZ_TARGET").expect("ETD_FUZZ_TARGET names the fuzz target");
    let input = fs_err::read(std::env::var_os("ETD_FUZZ_INPUT").expect("ETD_FUZZ_INPUT names the input file")).unwrap();
    let (_, entry) = entries::TARGETS.iter().find(|(n, _)| *n == target).expect("a known fuzz target");
    entry(&input);
}
